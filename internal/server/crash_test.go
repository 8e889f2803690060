package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"latchkey/internal/adminapi"
	"latchkey/internal/audit"
	"latchkey/internal/store"
	"latchkey/internal/store/sqlite"
	"latchkey/internal/token"
)

// lockedBuffer is a bytes.Buffer safe for a writer and a reader at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// buildLatchkey builds the latchkey command into a temporary directory.
func buildLatchkey(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go is not on PATH: cannot build latchkey")
	}
	bin := filepath.Join(t.TempDir(), "latchkey")
	out, err := exec.Command("go", "build", "-o", bin, "latchkey/cmd/latchkey").CombinedOutput()
	if err != nil {
		t.Fatalf("go build latchkey: %v\n%s", err, out)
	}
	return bin
}

// serveProc is a `latchkey serve` process.
type serveProc struct {
	t              *testing.T
	cmd            *exec.Cmd
	url            string // admin API base URL, from admin.url
	stdout, stderr *lockedBuffer
	done           chan struct{} // closed once the process has been waited for
	err            error         // what Wait returned, once done
}

// startServe starts `latchkey serve` on dir and a free port, and returns
// once it has written admin.url (a stale one is removed first). The
// process is killed when the test ends if it still runs.
func startServe(t *testing.T, bin, dir string, args ...string) *serveProc {
	t.Helper()
	addrPath := filepath.Join(dir, "admin.url")
	if err := os.Remove(addrPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	p := &serveProc{t: t, stdout: &lockedBuffer{}, stderr: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, append([]string{"serve", "--data", dir, "--admin-addr", "127.0.0.1:0", "--gateway-addr", "127.0.0.1:0"}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start latchkey serve: %v", err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-p.done:
			t.Fatalf("latchkey serve exited before listening: %v\nstdout:\n%s\nstderr:\n%s", p.err, p.stdout, p.stderr)
		default:
		}
		if b, err := os.ReadFile(addrPath); err == nil && bytes.HasSuffix(b, []byte("\n")) {
			p.url = strings.TrimSpace(string(b))
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not written within 15s\nstderr:\n%s", addrPath, p.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// signal sends sig to the process and waits for it to exit.
func (p *serveProc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := syscall.Kill(p.cmd.Process.Pid, sig); err != nil {
		p.t.Fatalf("kill -%v %d: %v", sig, p.cmd.Process.Pid, err)
	}
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.t.Fatalf("latchkey serve still running 20s after %v", sig)
	}
}

// auditIndex is a verified audit log, read back in full, indexed by what
// the checks look for.
type auditIndex struct {
	log   *audit.Log
	size  int64
	root  tlog.Hash
	recs  []audit.Record
	allow map[recKey]int // allow records by key
	// successors maps a token created by rotation to its parent, from the
	// allow records of token.rotate ("successor ID, ...").
	successors map[string]string
}

// recKey identifies an allow record for the checks: Detail is the Reason
// of a grant.revoke ("grant N") and the Method and Path of an
// admin.request; it is empty for every other action.
type recKey struct {
	Action, Contractor, TokenID, Service, Detail string
}

func keyOf(r audit.Record) recKey {
	k := recKey{Action: r.Action, Contractor: r.Contractor, TokenID: r.TokenID, Service: r.Service}
	switch r.Action {
	case "grant.revoke":
		k.Detail = r.Reason
	case "admin.request":
		k.Detail = r.Method + " " + r.Path
	}
	return k
}

var successorRE = regexp.MustCompile(`^successor ([0-9A-Za-z]+),`)

// openAudit opens the store of dir (no server may be running on it),
// verifies its audit log with Log.Verify, checks that every signed
// checkpoint in dir/checkpoints is a checkpoint of this log, and reads
// every record back. The store is closed when the test ends.
func openAudit(t *testing.T, dir string) (*sqlite.Store, *auditIndex) {
	t.Helper()
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "latchkey.db"))
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	storage := st.Audit(sqlite.SyncNormal)
	lg := audit.New(storage, audit.Config{})
	t.Cleanup(func() { lg.Close(); st.Close() })

	ix := &auditIndex{log: lg, allow: map[recKey]int{}, successors: map[string]string{}}
	ix.size, ix.root, err = lg.Verify(ctx, nil)
	if err != nil {
		t.Fatalf("audit log does not verify: %v", err)
	}
	checkCheckpoints(t, dir, ix)
	for next := int64(0); next < ix.size; {
		leaves, err := storage.ScanLeaves(ctx, next, 4096)
		if err != nil {
			t.Fatalf("ScanLeaves(%d): %v", next, err)
		}
		if len(leaves) == 0 {
			t.Fatalf("ScanLeaves(%d): no records, log size %d", next, ix.size)
		}
		for _, l := range leaves {
			r, err := audit.Decode(l.Data)
			if err != nil {
				t.Fatalf("record %d: %v", l.Index, err)
			}
			ix.add(r)
		}
		next = leaves[len(leaves)-1].Index + 1
	}
	return st, ix
}

func (ix *auditIndex) add(r audit.Record) {
	ix.recs = append(ix.recs, r)
	if r.Decision != audit.Allow {
		return
	}
	ix.allow[keyOf(r)]++
	if m := successorRE.FindStringSubmatch(r.Reason); r.Action == "token.rotate" && m != nil {
		ix.successors[m[1]] = r.TokenID
	}
}

// checkCheckpoints checks every checkpoint file serve wrote: signed by the
// data directory's key, and extended by the log as it is now (nothing
// committed before a checkpoint was lost or changed, crash or not).
func checkCheckpoints(t *testing.T, dir string, ix *auditIndex) {
	t.Helper()
	v, err := audit.LoadVerifier(filepath.Join(dir, audit.PubFile))
	if err != nil {
		t.Fatalf("LoadVerifier: %v", err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "checkpoints", "[0-9]*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Errorf("no checkpoint in %s/checkpoints", dir)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		checkExtends(t, filepath.Base(f), b, v, ix)
	}
}

// checkExtends checks that signed checkpoint b (called name) opens with v
// and that the verified log extends it.
func checkExtends(t *testing.T, name string, b []byte, v note.Verifier, ix *auditIndex) {
	t.Helper()
	cp, err := audit.OpenCheckpoint(b, v)
	if err != nil {
		t.Errorf("checkpoint %s: %v", name, err)
		return
	}
	prove := func(o, n int64) (tlog.TreeProof, error) { return ix.log.ProveTree(context.Background(), o, n) }
	if err := audit.CheckExtends(cp, ix.size, ix.root, prove); err != nil {
		t.Errorf("checkpoint %s (size %d): log of size %d does not extend it: %v", name, cp.Size, ix.size, err)
	}
}

// op is an admin operation the client saw succeed.
type op struct {
	kind       string // the audit action it must be recorded under
	contractor string
	tokenID    string
	parent     string // token.rotate: the rotated token (tokenID is the successor)
	grant      int64
	path       string // admin.request: method and path of a read
}

// ledger collects the operations the load saw succeed.
type ledger struct {
	mu          sync.Mutex
	ops         []op
	checkpoints []string // signed checkpoints returned by the API
	n           atomic.Int64
}

func (l *ledger) ok(o op) {
	l.mu.Lock()
	l.ops = append(l.ops, o)
	l.mu.Unlock()
	l.n.Add(1)
}

// loadWorker runs admin operations in a loop until one fails to reach
// the server (it was killed) or stop is closed. A refusal from a server
// that answered is a test failure: the load is all valid operations.
func loadWorker(t *testing.T, c *adminapi.Client, w int, led *ledger, stop <-chan struct{}) {
	ctx := context.Background()
	// call runs f and reports whether it succeeded; on failure the worker
	// stops.
	call := func(what string, f func() error) bool {
		err := f()
		if err == nil {
			return true
		}
		var refused *adminapi.APIError
		if errors.As(err, &refused) && refused.Problem.Error != "http_error" {
			t.Errorf("worker %d: %s refused under load: %v (HTTP %d %s)", w, what, err, refused.Status, refused.Problem.Error)
		}
		return false
	}
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		name := fmt.Sprintf("w%02d-c%05d", w, i)
		if !call("contractor add", func() error {
			_, err := c.AddContractor(ctx, adminapi.NewContractor{Name: name, Email: name + "@example.com", Sponsor: "sponsor@corp.example", Until: "10d"})
			return err
		}) {
			return
		}
		led.ok(op{kind: "contractor.add", contractor: name})

		path := "/v1/contractors/" + name
		if !call("contractor show", func() error { _, err := c.ShowContractor(ctx, name); return err }) {
			return
		}
		led.ok(op{kind: "admin.request", path: "GET " + path})

		var g adminapi.Grant
		if !call("grant add", func() (err error) {
			g, err = c.AddGrant(ctx, adminapi.NewGrant{Contractor: name, Scopes: []string{"svc:read:/x/**"}})
			return err
		}) {
			return
		}
		led.ok(op{kind: "grant.add", contractor: name, grant: g.ID})

		var iss adminapi.IssuedToken
		if !call("token issue", func() (err error) {
			iss, err = c.IssueToken(ctx, adminapi.NewToken{Contractor: name, Scopes: []string{"svc:read:/x/**"}, TTL: "1h"})
			return err
		}) {
			return
		}
		led.ok(op{kind: "token.issue", contractor: name, tokenID: iss.ID})

		var next adminapi.IssuedToken
		if !call("token rotate", func() (err error) {
			next, err = c.RotateToken(ctx, iss.ID, adminapi.Rotation{})
			return err
		}) {
			return
		}
		led.ok(op{kind: "token.rotate", contractor: name, tokenID: next.ID, parent: iss.ID})

		if !call("token revoke", func() error { _, err := c.RevokeToken(ctx, next.ID); return err }) {
			return
		}
		led.ok(op{kind: "token.revoke", contractor: name, tokenID: next.ID})

		switch i % 3 {
		case 0:
			if !call("grant revoke", func() error { _, err := c.RevokeGrant(ctx, g.ID); return err }) {
				return
			}
			led.ok(op{kind: "grant.revoke", contractor: name, grant: g.ID})
		case 1:
			if !call("offboard", func() error { _, err := c.Offboard(ctx, name); return err }) {
				return
			}
			led.ok(op{kind: "contractor.offboard", contractor: name})
		}
		if w == 0 && i%5 == 0 {
			var cp adminapi.SignedCheckpoint
			if !call("checkpoint", func() error { return c.Do(ctx, "GET", "/v1/audit/checkpoint", nil, nil, &cp) }) {
				return
			}
			led.mu.Lock()
			led.checkpoints = append(led.checkpoints, cp.Checkpoint)
			led.mu.Unlock()
		}
	}
}

// TestCrashRecovery runs a real `latchkey serve` under concurrent admin
// load, kills it with SIGKILL mid-load and restarts it on the same data
// directory. Then the audit log verifies, every checkpoint signed before
// the crash is extended by it, every operation the client saw succeed has
// its allow record, and everything the store holds was recorded: nothing
// acknowledged was lost and nothing was done unaudited.
func TestCrashRecovery(t *testing.T) {
	bin := buildLatchkey(t)
	dir := filepath.Join(t.TempDir(), "data")

	first := startServe(t, bin, dir)
	found := regexp.MustCompile(token.Pattern).FindAllString(first.stdout.String(), -1)
	if len(found) != 1 {
		t.Fatalf("first serve printed %d tokens, want 1:\n%s", len(found), first.stdout)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 32}
	defer tr.CloseIdleConnections()
	c := &adminapi.Client{Addr: first.url, Token: found[0], HTTP: &http.Client{Transport: tr, Timeout: 20 * time.Second}}
	ctx := t.Context()
	if _, err := c.AddService(ctx, adminapi.NewService{Name: "svc", Upstream: "http://127.0.0.1:9"}); err != nil {
		t.Fatalf("service add: %v", err)
	}

	const workers = 16
	led := &ledger{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() { loadWorker(t, c, w, led, stop) })
	}
	// Load for about a second, and at least until a few hundred
	// operations have succeeded, then kill the server mid-load.
	loadStart := time.Now()
	time.Sleep(time.Second)
	for led.n.Load() < 300 && time.Since(loadStart) < 20*time.Second {
		time.Sleep(10 * time.Millisecond)
	}
	atKill := led.n.Load()
	first.signal(syscall.SIGKILL)
	loadTime := time.Since(loadStart)
	close(stop)
	wg.Wait()
	if ws, ok := first.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("first serve ended with %v, want killed by SIGKILL", first.err)
	}
	if atKill < 300 {
		t.Fatalf("only %d operations succeeded in %v of load", atKill, loadTime)
	}
	t.Logf("killed serve after %v of load by %d workers: %d operations acknowledged (%d when the kill was sent)",
		loadTime.Round(time.Millisecond), workers, led.n.Load(), atKill)

	// The restarted server uses the same store and token, and works.
	second := startServe(t, bin, dir)
	if tok := regexp.MustCompile(token.Pattern).FindString(second.stdout.String()); tok != "" {
		t.Errorf("restarted serve printed a token: it initialized the data directory again")
	}
	c.Addr = second.url
	p, _ := token.Parse(found[0])
	if who, err := c.Whoami(ctx); err != nil || who.ID != p.ID {
		t.Fatalf("whoami after restart: %+v, %v; want token %s", who, err, p.ID)
	}
	led.ok(op{kind: "admin.request", path: "GET /v1/whoami"})
	if _, err := c.AddContractor(ctx, adminapi.NewContractor{Name: "after-crash", Email: "a@example.com", Sponsor: "s@corp.example", Until: "1d"}); err != nil {
		t.Fatalf("contractor add after restart: %v", err)
	}
	led.ok(op{kind: "contractor.add", contractor: "after-crash"})
	tr.CloseIdleConnections()
	second.signal(syscall.SIGINT)
	if second.err != nil {
		t.Fatalf("restarted serve after SIGINT: %v\nstderr:\n%s", second.err, second.stderr)
	}

	st, ix := openAudit(t, dir)
	v, err := audit.LoadVerifier(filepath.Join(dir, audit.PubFile))
	if err != nil {
		t.Fatal(err)
	}
	for i, cp := range led.checkpoints {
		checkExtends(t, fmt.Sprintf("%d from the API", i), []byte(cp), v, ix)
	}
	acked := checkAcknowledged(t, led.ops, ix)
	checkStoreAudited(t, st, ix)
	unacked := 0
	for _, r := range ix.recs {
		if r.Decision == audit.Allow && r.Action != "admin.request" && !acked[keyOf(r)] {
			unacked++
		}
	}
	t.Logf("audit log verifies: %d records, %d checkpoints from the API; %d acknowledged operations checked; "+
		"%d allow records of changes never acknowledged (init, service add, and those in flight at the kill)",
		ix.size, len(led.checkpoints), len(led.ops), unacked)
}

// checkAcknowledged checks that every operation the client saw succeed has
// its allow record.
// It returns the keys it found.
func checkAcknowledged(t *testing.T, ops []op, ix *auditIndex) map[recKey]bool {
	t.Helper()
	found := map[recKey]bool{}
	missing := 0
	for _, o := range ops {
		k := recKey{Action: o.kind}
		switch o.kind {
		case "contractor.add", "contractor.offboard", "grant.add":
			k.Contractor = o.contractor
		case "token.issue", "token.revoke":
			k.Contractor, k.TokenID = o.contractor, o.tokenID
		case "token.rotate":
			k.Contractor, k.TokenID = o.contractor, o.parent
			if ix.successors[o.tokenID] != o.parent {
				t.Errorf("no token.rotate allow record names successor %s of %s", o.tokenID, o.parent)
				missing++
			}
		case "grant.revoke":
			k.Contractor, k.Detail = o.contractor, fmt.Sprintf("grant %d", o.grant)
		case "admin.request":
			k.Detail = o.path
		default:
			t.Fatalf("unknown op %q", o.kind)
		}
		found[k] = true
		if ix.allow[k] == 0 {
			t.Errorf("acknowledged %s has no allow record %+v", o.kind, k)
			missing++
		}
		if missing > 20 {
			t.Fatal("too many missing records")
		}
	}
	return found
}

// checkStoreAudited checks that everything in the store has the allow
// records of the operations that made it so.
func checkStoreAudited(t *testing.T, st *sqlite.Store, ix *auditIndex) {
	t.Helper()
	ctx := t.Context()
	want := func(what string, keys ...recKey) {
		t.Helper()
		for _, k := range keys {
			if ix.allow[k] > 0 {
				return
			}
		}
		t.Errorf("%s, but no allow record of any of %+v", what, keys)
	}
	svcs, err := st.Services(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range svcs {
		want("service "+s.Name+" exists", recKey{Action: "service.add", Service: s.Name})
	}
	cs, err := st.Contractors(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		want("contractor "+c.Name+" exists", recKey{Action: "contractor.add", Contractor: c.Name})
		if c.Disabled {
			want("contractor "+c.Name+" is disabled", recKey{Action: "contractor.offboard", Contractor: c.Name})
		}
	}
	toks, err := st.Tokens(ctx, store.TokenFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range toks {
		what := "token " + tok.ID + " exists"
		if tok.Parent == "" {
			want(what, recKey{Action: "token.issue", Contractor: tok.Contractor, TokenID: tok.ID})
		} else if ix.successors[tok.ID] != tok.Parent {
			t.Errorf("%s as successor of %s, but no token.rotate allow record says so", what, tok.Parent)
		}
		if !tok.RevokedAt.IsZero() {
			want("token "+tok.ID+" is revoked",
				recKey{Action: "token.revoke", Contractor: tok.Contractor, TokenID: tok.ID},
				recKey{Action: "contractor.offboard", Contractor: tok.Contractor})
		}
	}
	gs, err := st.Grants(ctx, store.GrantFilter{})
	if err != nil {
		t.Fatal(err)
	}
	perContractor := map[string]int{}
	for _, g := range gs {
		perContractor[g.Contractor]++
		if !g.RevokedAt.IsZero() {
			want(fmt.Sprintf("grant %d is revoked", g.ID),
				recKey{Action: "grant.revoke", Contractor: g.Contractor, Detail: fmt.Sprintf("grant %d", g.ID)},
				recKey{Action: "contractor.offboard", Contractor: g.Contractor})
		}
	}
	for c, n := range perContractor {
		if got := ix.allow[recKey{Action: "grant.add", Contractor: c}]; got < n {
			t.Errorf("contractor %s has %d grants but only %d grant.add allow records", c, n, got)
		}
	}
	t.Logf("store after the crash: %d contractors, %d tokens, %d grants", len(cs), len(toks), len(gs))
}
