package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// cmdUpstream: upstream NAME
//
// starts an HTTP server on 127.0.0.1 for the rest of the script and sets
// NAME to its URL. It answers "hello from NAME" and appends one line per
// request to $WORK/NAME.log: method, request-target, then every header as
// Name=value, sorted, so that scripts can check what reached it.
func cmdUpstream(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: upstream NAME")
	}
	name := args[0]
	logPath := filepath.Join(ts.Getenv("WORK"), name+".log")
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var hs []string
		for k, vs := range r.Header {
			hs = append(hs, k+"="+strings.Join(vs, ","))
		}
		sort.Strings(hs)
		mu.Lock()
		f, err := os.OpenFile(logPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err == nil {
			fmt.Fprintf(f, "%s %s %s\n", r.Method, r.RequestURI, strings.Join(hs, " "))
			f.Close()
		}
		mu.Unlock()
		fmt.Fprintf(w, "hello from %s\n", name)
	}))
	ts.Defer(srv.Close)
	ts.Setenv(name, srv.URL)
}

// cmdWaitgateway: waitgateway DIR
//
// waits up to 10 s for DIR/gateway.url and sets LATCHKEY_GATEWAY to it.
func cmdWaitgateway(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waitgateway DIR")
	}
	path := filepath.Join(ts.MkAbs(args[0]), "gateway.url")
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if url := strings.TrimSpace(string(b)); err == nil && strings.HasSuffix(string(b), "\n") && url != "" {
			ts.Setenv("LATCHKEY_GATEWAY", url)
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("%s did not appear within 10s", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cmdGwcall: gwcall METHOD PATH [HEADER: VALUE ...]
//
// sends one request to $LATCHKEY_GATEWAY+PATH exactly as written (the
// client does not clean the path), or to PATH if it is a whole URL, and
// writes "STATUS BODY" to stdout, the body with its trailing newline.
// "Authorization: Bearer $T" and the like are given as header arguments.
func cmdGwcall(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: gwcall METHOD PATH [HEADER: VALUE ...]")
	}
	gwsend(ts, &http.Client{Timeout: 10 * time.Second}, args)
}

// gwsend is gwcall with client.
func gwsend(ts *testscript.TestScript, client *http.Client, args []string) {
	base, target := ts.Getenv("LATCHKEY_GATEWAY"), args[1]
	if strings.HasPrefix(target, "http://") || strings.HasPrefix(target, "https://") {
		base, target = target, ""
	}
	req, err := http.NewRequest(args[0], base, nil)
	ts.Check(err)
	if target != "" {
		req.URL.Opaque = target // sent as is, not re-escaped
		if p, q, ok := strings.Cut(target, "?"); ok {
			req.URL.Opaque, req.URL.RawQuery = p, q
		}
	}
	for _, h := range args[2:] {
		k, v, ok := strings.Cut(h, ":")
		if !ok {
			ts.Fatalf("header %q: want 'Name: value'", h)
		}
		req.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	resp, err := client.Do(req)
	ts.Check(err)
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	ts.Check(err)
	fmt.Fprintf(ts.Stdout(), "%d %s", resp.StatusCode, body)
}
