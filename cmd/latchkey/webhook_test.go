package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"latchkey/internal/notify"
)

// cmdWebhookrecv: webhookrecv NAME
//
// starts a webhook receiver on 127.0.0.1 for the rest of the script and
// sets NAME to its URL. It checks every request with notify.Verify against
// the secret in $WORK/NAME.secret (read per request), answers 204 to a
// verified one and 401 otherwise, and appends one line per request to
// $WORK/NAME.log: "verified TYPE REASON TOKEN_ID CONTRACTOR", then
// " REQUEST_ID" if the payload names an access request, for a verified
// standard payload; "refused ERROR" otherwise.
func cmdWebhookrecv(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: webhookrecv NAME")
	}
	name := args[0]
	work := ts.Getenv("WORK")
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		secret, _ := os.ReadFile(filepath.Join(work, name+".secret"))
		line := ""
		if err := notify.Verify(strings.TrimSpace(string(secret)), r.Header, body, time.Now(), 0); err != nil {
			line = "refused " + err.Error()
			w.WriteHeader(http.StatusUnauthorized)
		} else {
			var p notify.Payload
			json.Unmarshal(body, &p)
			line = fmt.Sprintf("verified %s %s %s %s", p.Type, p.Data.Reason, p.Data.TokenID, p.Data.Contractor)
			if p.Data.RequestID != "" {
				line += " " + p.Data.RequestID
			}
			w.WriteHeader(http.StatusNoContent)
		}
		mu.Lock()
		defer mu.Unlock()
		f, err := os.OpenFile(filepath.Join(work, name+".log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err == nil {
			fmt.Fprintln(f, line)
			f.Close()
		}
	}))
	ts.Defer(srv.Close)
	ts.Setenv(name, srv.URL)
}

// cmdWaitlines: waitlines FILE N
//
// waits up to 10 s for FILE to hold at least N lines.
func cmdWaitlines(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: waitlines FILE N")
	}
	n, err := strconv.Atoi(args[1])
	ts.Check(err)
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(ts.MkAbs(args[0]))
		if strings.Count(string(b), "\n") >= n {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("%s has fewer than %d lines after 10s:\n%s", args[0], n, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
