package server_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"latchkey/internal/adminapi"
	"latchkey/internal/audit"
	"latchkey/internal/server"
	"latchkey/internal/store/postgres/pgtest"
	"latchkey/internal/token"
)

// replicaSet is three `latchkey serve` processes, each with its own data
// directory (copies of the same keys), on one PostgreSQL database.
type replicaSet struct {
	t     *testing.T
	bin   string
	dsn   string
	procs []*serveProc
	dirs  []string
	gws   []string // gateway base URLs
	admin *adminapi.Client
	up    *httptest.Server
	// acked counts the upstream's answers by path: what the gateways
	// forwarded (each only after its audit record was acknowledged).
	mu    sync.Mutex
	paths map[string]int
}

// startReplicas starts the first replica (which initialises the store),
// copies its keys to two more data directories and starts those, and
// registers service billing, contractor alice and a grant through the
// first.
func startReplicas(t *testing.T) *replicaSet {
	rs := &replicaSet{t: t, bin: buildLatchkey(t), dsn: pgtest.DSN(t), paths: map[string]int{}}
	rs.up = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rs.mu.Lock()
		rs.paths[r.URL.Path]++
		rs.mu.Unlock()
		io.WriteString(w, "ok")
	}))
	t.Cleanup(rs.up.Close)
	for i := range 3 {
		dir := filepath.Join(t.TempDir(), fmt.Sprintf("replica%d", i))
		if i > 0 {
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{"seal.key", audit.KeyFile, audit.PubFile} {
				b, err := os.ReadFile(filepath.Join(rs.dirs[0], name))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}
		// No rate limit to speak of: the load shares one token, and the
		// revocation test's refusals all come from 127.0.0.1.
		p := startServe(t, rs.bin, dir, "--store", rs.dsn, "--audit-delay", "5ms", "--access-log=false",
			"--token-rate", "1000000", "--token-burst", "1000000", "--failure-rate", "1000000", "--failure-burst", "1000000")
		rs.procs, rs.dirs = append(rs.procs, p), append(rs.dirs, dir)
		// serve writes gateway.url just after admin.url.
		var gw string
		for deadline := time.Now().Add(15 * time.Second); gw == ""; time.Sleep(10 * time.Millisecond) {
			if b, err := os.ReadFile(filepath.Join(dir, "gateway.url")); err == nil && strings.HasSuffix(string(b), "\n") {
				gw = strings.TrimSpace(string(b))
			} else if time.Now().After(deadline) {
				t.Fatalf("%s/gateway.url not written within 15s", dir)
			}
		}
		rs.gws = append(rs.gws, gw)
	}
	tok := regexp.MustCompile(token.Pattern).FindString(rs.procs[0].stdout.String())
	if tok == "" {
		t.Fatalf("the first replica printed no admin token:\n%s", rs.procs[0].stdout)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	rs.admin = &adminapi.Client{Addr: rs.procs[0].url, Token: tok, HTTP: &http.Client{Transport: tr, Timeout: 20 * time.Second}}
	ctx := t.Context()
	if _, err := rs.admin.AddService(ctx, adminapi.NewService{Name: "billing", Upstream: rs.up.URL}); err != nil {
		t.Fatal(err)
	}
	if _, err := rs.admin.AddContractor(ctx, adminapi.NewContractor{Name: "alice", Email: "a@example.com", Sponsor: "s@corp.example", Until: "1d"}); err != nil {
		t.Fatal(err)
	}
	if _, err := rs.admin.AddGrant(ctx, adminapi.NewGrant{Contractor: "alice", Scopes: []string{"billing:read:/v1/**"}}); err != nil {
		t.Fatal(err)
	}
	return rs
}

func (rs *replicaSet) issue() adminapi.IssuedToken {
	rs.t.Helper()
	iss, err := rs.admin.IssueToken(rs.t.Context(), adminapi.NewToken{Contractor: "alice", Scopes: []string{"billing:read:/v1/**"}, TTL: "1h"})
	if err != nil {
		rs.t.Fatal(err)
	}
	return iss
}

// get asks gateway gw for path with tok and returns the status and body.
func get(c *http.Client, gw, tok, path string) (int, string, error) {
	req, _ := http.NewRequest("GET", gw+"/billing"+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// load sends requests to every gateway, workers per gateway, each to a
// path of its own, until stop is closed; it returns the number of
// answers 200 (a count of acknowledged audit appends).
func (rs *replicaSet) load(tok string, workers int, stop <-chan struct{}, skip func(i int) bool) *atomic.Int64 {
	var ok atomic.Int64
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}, Timeout: 10 * time.Second}
	for i, gw := range rs.gws {
		for w := range workers {
			go func() {
				for n := 0; ; n++ {
					select {
					case <-stop:
						return
					default:
					}
					if skip != nil && skip(i) {
						time.Sleep(5 * time.Millisecond)
						continue
					}
					if status, _, err := get(c, gw, tok, fmt.Sprintf("/v1/load/%d/%d/%d", i, w, n)); err == nil && status == 200 {
						ok.Add(1)
					}
				}
			}()
		}
	}
	return &ok
}

// TestReplicasRevocation: three serve processes on one PostgreSQL store
// under load on all three; each of 100 tokens, cached by the gateways of
// the second and third replicas, is revoked through the first, and each
// of the other two is polled until it refuses the token. The delay from
// the revocation's answer to the first refusal is logged (p50, p99 over
// the 200 replica-revocations; measured, not asserted: the assertion is
// that every one is refused, and within 10s). The feed is pushed with
// LISTEN/NOTIFY; the 1s poll only reconciles.
func TestReplicasRevocation(t *testing.T) {
	rs := startReplicas(t)
	ctx := t.Context()
	stop := make(chan struct{})
	defer close(stop)
	rs.load(rs.issue().Token, 2, stop, nil)
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}, Timeout: 10 * time.Second}
	const n = 100
	var delays []time.Duration
	nextRefused := 0
	for i := range n {
		iss := rs.issue()
		for _, gw := range rs.gws[1:] {
			if status, body, err := get(c, gw, iss.Token, "/v1/warm"); err != nil || status != 200 {
				t.Fatalf("token %d before its revocation: %d %s %v", i, status, body, err)
			}
		}
		if _, err := rs.admin.RevokeToken(ctx, iss.ID); err != nil {
			t.Fatal(err)
		}
		revoked := time.Now()
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, gw := range rs.gws[1:] {
			wg.Go(func() {
				for try := 0; ; try++ {
					status, body, err := get(c, gw, iss.Token, "/v1/after")
					if err == nil && status == 401 && strings.Contains(body, `"token_revoked"`) {
						mu.Lock()
						delays = append(delays, time.Since(revoked))
						if try == 0 {
							nextRefused++
						}
						mu.Unlock()
						return
					}
					if time.Since(revoked) > 10*time.Second {
						t.Errorf("token %d still answered %d %s on %s 10s after its revocation", i, status, body, gw)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	slices.Sort(delays)
	q := func(f float64) time.Duration { return delays[int(f*float64(len(delays)-1))] }
	t.Logf("revocation through replica 1 refused by replicas 2 and 3: %d replica-revocations, delay p50 %v, p99 %v, max %v; the very next request refused in %d of %d",
		len(delays), q(0.5).Round(10*time.Microsecond), q(0.99).Round(10*time.Microsecond), delays[len(delays)-1].Round(10*time.Microsecond), nextRefused, len(delays))
}

// sequencer returns the pid of the process holding the audit sequencer's
// lock (pg_locks, through the application_name latchkey-PID), or 0.
func sequencer(t *testing.T, conn *pgx.Conn) int {
	t.Helper()
	var name string
	err := conn.QueryRow(t.Context(), `SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1 AND l.objid = $2 AND l.objsubid = 1`,
		uint32(0x6c6b2d73), uint32(0x65716e63)).Scan(&name)
	if err == pgx.ErrNoRows {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	if _, err := fmt.Sscanf(name, "latchkey-%d", &pid); err != nil {
		t.Fatalf("sequencer application_name %q", name)
	}
	return pid
}

// TestReplicasSequencerKill: three serve processes on one PostgreSQL store
// under gateway load on all three; the one holding the audit sequencer's
// lock is killed with SIGKILL. Another takes the lock over; the load goes
// on on the other two; then they stop. Every request the upstream saw
// (forwarded only once its audit record was acknowledged), the killed
// replica's included, has its allow record in the log, and `latchkey audit
// verify` passes. The audit appends per second of the three replicas
// before the kill are logged.
func TestReplicasSequencerKill(t *testing.T) {
	rs := startReplicas(t)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, rs.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var seqPid int
	deadline := time.Now().Add(10 * time.Second)
	for seqPid = sequencer(t, conn); seqPid == 0; seqPid = sequencer(t, conn) {
		if time.Now().After(deadline) {
			t.Fatal("no replica holds the sequencer lock after 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	killed := slices.IndexFunc(rs.procs, func(p *serveProc) bool { return p.cmd.Process.Pid == seqPid })
	if killed < 0 {
		t.Fatalf("the sequencer lock is held by pid %d, not a replica", seqPid)
	}
	var dead atomic.Bool
	stop := make(chan struct{})
	ok := rs.load(rs.issue().Token, 8, stop, func(i int) bool { return i == killed && dead.Load() })
	time.Sleep(time.Second)
	before, t0 := ok.Load(), time.Now()
	time.Sleep(2 * time.Second)
	rate := float64(ok.Load()-before) / time.Since(t0).Seconds()
	t.Logf("audit appends acknowledged by the three replicas' gateways: %.0f/s (one record per request, 8 connections each)", rate)
	dead.Store(true)
	rs.procs[killed].signal(syscall.SIGKILL)
	t.Logf("killed replica %d (pid %d), the sequencer, with SIGKILL after %d acknowledged requests", killed+1, seqPid, ok.Load())
	var next int
	deadline = time.Now().Add(10 * time.Second)
	for next = sequencer(t, conn); next == 0 || next == seqPid; next = sequencer(t, conn) {
		if time.Now().After(deadline) {
			t.Fatal("no other replica took the sequencer lock over within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(time.Second)
	close(stop)
	time.Sleep(100 * time.Millisecond) // the last requests in flight
	for i, p := range rs.procs {
		if i != killed {
			p.signal(syscall.SIGTERM)
		}
	}
	var left int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM audit_queue`).Scan(&left); err != nil || left != 0 {
		t.Errorf("audit_queue holds %d rows after the replicas stopped (%v)", left, err)
	}
	out, err := exec.Command(rs.bin, "audit", "verify", "--data", rs.dirs[(killed+1)%3], "--store", rs.dsn).CombinedOutput()
	if err != nil {
		t.Fatalf("latchkey audit verify: %v\n%s", err, out)
	}
	// Every request the upstream saw has its allow record.
	st, storage, err := server.OpenStore(ctx, rs.dirs[(killed+1)%3], rs.dsn, "")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	defer storage.Close()
	size, err := storage.Size(ctx)
	if err != nil {
		t.Fatal(err)
	}
	recorded := map[string]int{}
	for next := int64(0); next < size; {
		leaves, err := storage.ScanLeaves(ctx, next, 4096)
		if err != nil || len(leaves) == 0 {
			t.Fatalf("ScanLeaves(%d) = %d, %v", next, len(leaves), err)
		}
		for _, l := range leaves {
			r, err := audit.Decode(l.Data)
			if err != nil {
				t.Fatal(err)
			}
			if r.Action == "gateway.request" && r.Decision == audit.Allow {
				recorded[r.Path]++
			}
		}
		next = leaves[len(leaves)-1].Index + 1
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	var missing []string
	for path := range rs.paths {
		if recorded[path] == 0 {
			missing = append(missing, path)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		t.Errorf("%d requests reached the upstream without an allow record, e.g. %v", len(missing), missing[:min(5, len(missing))])
	}
	t.Logf("sequencer passed from pid %d to pid %d; %d requests forwarded, %d records in the log, all verified: %s",
		seqPid, next, len(rs.paths), size, strings.TrimSpace(lastLine(string(out))))
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
