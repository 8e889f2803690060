package server_test

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"latchkey/internal/adminapi"
	"latchkey/internal/token"
)

// children lists the ids of pid's child processes.
func children(t *testing.T, pid int) []int {
	t.Helper()
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the thread ended
		}
		for _, f := range strings.Fields(string(b)) {
			n, err := strconv.Atoi(f)
			if err != nil {
				t.Fatalf("%s: %q", f, b)
			}
			out = append(out, n)
		}
	}
	return out
}

// indexerOf waits for serve's one child process, the audit indexer, and
// returns its id.
func indexerOf(t *testing.T, serve int, not int) int {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		kids := children(t, serve)
		if len(kids) > 1 {
			t.Fatalf("serve has %d child processes, want 1: %v", len(kids), kids)
		}
		if len(kids) == 1 && kids[0] != not {
			return kids[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve has no indexer process (children %v) 15s after starting it", kids)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// niceOf reads the nice value and scheduling policy of every thread of
// pid, as "nice/policy".
func niceOf(t *testing.T, pid int) []string {
	t.Helper()
	stats, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// Fields after the command's closing parenthesis: the nice value
		// is field 19 of stat(5), the 17th after it, the policy field 41.
		rest := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		out = append(out, rest[16]+"/"+rest[38])
	}
	return out
}

// alive reports whether process pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	rest := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(rest) > 0 && rest[0] != "Z"
}

func waitGone(t *testing.T, pid int, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("%s (pid %d) still running after 10s", what, pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestIndexerProcess: serve on SQLite runs the audit search indexer as a
// child process, "audit index --follow", every thread at nice 19; the
// index fills from the log with no search asking for it; a killed indexer
// is restarted; and the indexer ends when serve is killed.
func TestIndexerProcess(t *testing.T) {
	bin := buildLatchkey(t)
	dir := filepath.Join(t.TempDir(), "data")
	p := startServe(t, bin, dir)
	found := regexp.MustCompile(token.Pattern).FindAllString(p.stdout.String(), -1)
	if len(found) != 1 {
		t.Fatalf("serve printed %d tokens, want 1:\n%s", len(found), p.stdout)
	}
	serve := p.cmd.Process.Pid
	ix := indexerOf(t, serve, 0)
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", ix))
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%s audit index --data %s --follow --background %d --integrate 20ms", bin, dir, serve)
	if got := strings.TrimSuffix(strings.ReplaceAll(string(cmdline), "\x00", " "), " "); got != want {
		t.Fatalf("indexer command line %q, want %q", got, want)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		nice := niceOf(t, ix)
		low := len(nice) > 0
		for _, n := range nice {
			low = low && n == "19/0" // SCHED_OTHER: it writes the store (indexer.Lower)
		}
		if low {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("indexer threads' nice values/policies %v, want all 19/0 (SCHED_OTHER)", nice)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Audited admin calls, then the index fills without a search.
	c := &adminapi.Client{Addr: p.url, Token: found[0], HTTP: &http.Client{Timeout: 10 * time.Second}}
	for i := range 50 {
		if _, err := c.AddService(t.Context(), adminapi.NewService{Name: fmt.Sprintf("svc%d", i), Upstream: "http://127.0.0.1:9"}); err != nil {
			t.Fatalf("service add: %v", err)
		}
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "latchkey-search.db")+"?_query_only=1")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	indexed := func() int {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM audit_keys`).Scan(&n); err != nil {
			t.Fatalf("count the index: %v", err)
		}
		return n
	}
	deadline = time.Now().Add(15 * time.Second)
	for indexed() < 50 {
		if time.Now().After(deadline) {
			t.Fatalf("the index holds %d records 15s after 50 audited calls", indexed())
		}
		time.Sleep(50 * time.Millisecond)
	}

	// A killed indexer is restarted, and indexes on: from serve's own
	// image, even though the binary's file has been replaced (an upgrade)
	// by one that would fail.
	if err := os.Rename(bin, bin+".old"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(ix, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ix2 := indexerOf(t, serve, ix)
	before := indexed()
	for i := range 20 {
		if _, err := c.AddService(t.Context(), adminapi.NewService{Name: fmt.Sprintf("more%d", i), Upstream: "http://127.0.0.1:9"}); err != nil {
			t.Fatalf("service add: %v", err)
		}
	}
	deadline = time.Now().Add(15 * time.Second)
	for indexed() < before+20 {
		if time.Now().After(deadline) {
			t.Fatalf("the restarted indexer indexed %d of 20 records in 15s", indexed()-before)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(p.stderr.String(), "audit indexer process exited; restarting it") {
		t.Errorf("serve did not log the indexer's restart:\n%s", p.stderr)
	}
	if n := strings.Count(p.stderr.String(), "restarting it"); n != 1 {
		t.Errorf("serve restarted its indexer %d times, want once:\n%s", n, p.stderr)
	}
	if err := os.Rename(bin+".old", bin); err != nil {
		t.Fatal(err)
	}

	p.signal(syscall.SIGKILL)
	waitGone(t, ix2, "the indexer of a killed serve")

	// A serve stopped by SIGTERM stops its indexer, without a restart.
	q := startServe(t, bin, dir)
	ix3 := indexerOf(t, q.cmd.Process.Pid, 0)
	q.signal(syscall.SIGTERM)
	if q.err != nil {
		t.Fatalf("serve ended with %v after SIGTERM\nstderr:\n%s", q.err, q.stderr)
	}
	waitGone(t, ix3, "the indexer of a stopped serve")
	if strings.Contains(q.stderr.String(), "restarting it") {
		t.Errorf("serve restarted its indexer while stopping:\n%s", q.stderr)
	}

	// audit index, one-shot, rebuilds a deleted index.
	db.Close()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(filepath.Join(dir, "latchkey-search.db") + suffix)
	}
	out, err := exec.Command(bin, "audit", "verify", "--data", dir, "--output", "json").Output()
	if err != nil {
		t.Fatalf("audit verify: %v", err)
	}
	var v struct{ Records int64 }
	if err := json.Unmarshal(out, &v); err != nil || v.Records < 70 {
		t.Fatalf("audit verify: %s (%v)", out, err)
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(filepath.Join(dir, "latchkey-search.db") + suffix)
	}
	out, err = exec.Command(bin, "audit", "index", "--data", dir).CombinedOutput()
	if want := fmt.Sprintf("audit search index holds %d records\n", v.Records); err != nil || string(out) != want {
		t.Fatalf("audit index: %q (%v), want %q", out, err, want)
	}
	for _, args := range [][]string{
		{"--data", filepath.Join(dir, "nothing")},
		{"--data", dir, "--follow", "--every", "0s"},
		{},
	} {
		cmd := exec.Command(bin, append([]string{"audit", "index"}, args...)...)
		out, err := cmd.CombinedOutput()
		if cmd.ProcessState.ExitCode() != 2 || strings.Count(string(out), "\n") != 1 {
			t.Errorf("audit index %q: exit %v, output %q; want status 2 and one line", args, err, out)
		}
	}
}

// TestAuditHelperProcess: serve's child process integrates the records
// serve journals (the audit helper), so that serve itself integrates
// fewer than reach the tree. (That serve integrates them all without a
// helper is sqlite.TestAuditHelperAbsent: stopping the helper here could
// stop it holding the store's write lock.)
func TestAuditHelperProcess(t *testing.T) {
	bin := buildLatchkey(t)
	dir := filepath.Join(t.TempDir(), "data")
	// The helper integrates every 100ms; serve holds records for 1s.
	p := startServe(t, bin, dir, "--audit-delay", "100ms")
	found := regexp.MustCompile(token.Pattern).FindAllString(p.stdout.String(), -1)
	if len(found) != 1 {
		t.Fatalf("serve printed %d tokens, want 1:\n%s", len(found), p.stdout)
	}
	indexerOf(t, p.cmd.Process.Pid, 0)
	c := &adminapi.Client{Addr: p.url, Token: found[0], HTTP: &http.Client{Timeout: 10 * time.Second}}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "latchkey.db")+"?_query_only=1")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	inTree := func() int64 {
		var n int64
		if err := db.QueryRow(`SELECT coalesce(sum(n), 0) FROM audit_leaf_runs`).Scan(&n); err != nil {
			t.Fatalf("count the tree: %v", err)
		}
		return n
	}
	byServe := func() int64 {
		resp, err := c.HTTP.Get(p.url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		if _, err := io.Copy(&b, resp.Body); err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`(?m)^latchkey_audit_integrated_records_total (\d+)$`).FindStringSubmatch(b.String())
		if m == nil {
			t.Fatalf("/metrics lacks latchkey_audit_integrated_records_total:\n%s", b.String())
		}
		n, _ := strconv.ParseInt(m[1], 10, 64)
		return n
	}
	// calls makes n audited admin calls and waits until the tree holds
	// their records; it returns how many records serve integrated.
	calls := func(prefix string, n int) int64 {
		t.Helper()
		tree0, serve0 := inTree(), byServe()
		for i := range n {
			if _, err := c.AddService(t.Context(), adminapi.NewService{Name: fmt.Sprintf("%s%d", prefix, i), Upstream: "http://127.0.0.1:9"}); err != nil {
				t.Fatalf("service add: %v", err)
			}
		}
		for deadline := time.Now().Add(15 * time.Second); inTree() < tree0+int64(n); {
			if time.Now().After(deadline) {
				t.Fatalf("the tree holds %d of %d new records after 15s", inTree()-tree0, n)
			}
			time.Sleep(20 * time.Millisecond)
		}
		return byServe() - serve0
	}
	if got := calls("helped", 40); got >= 40 {
		t.Errorf("serve integrated %d of 40 records itself: the helper integrated none", got)
	}
}
