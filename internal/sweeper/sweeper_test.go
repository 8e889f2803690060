package sweeper_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"latchkey/internal/access"
	"latchkey/internal/audit"
	"latchkey/internal/scope"
	"latchkey/internal/seal"
	"latchkey/internal/store"
	"latchkey/internal/store/sqlite"
	"latchkey/internal/sweeper"
)

const day = 24 * time.Hour

// clock is a settable test clock shared by replicas.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var root = access.Actor{TokenID: "root", Scopes: scope.Set{scope.MustParse("admin:*")}}

// replica is one server instance as serve builds it: its own store
// handle, audit log and Authority on the shared database file, and its
// sweeper.
type replica struct {
	st     *sqlite.Store
	log    *audit.Log
	a      *access.Authority
	sw     *sweeper.Sweeper
	mu     sync.Mutex
	events []access.Event
}

func (r *replica) eventTypes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, ev := range r.events {
		out = append(out, ev.Type+" "+ev.TokenID+" "+ev.Reason)
	}
	return out
}

func openReplica(t *testing.T, dir, holder string, c *clock) *replica {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "latchkey.db"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := seal.LoadOrCreateKey(filepath.Join(dir, "seal.key"))
	if err != nil {
		t.Fatal(err)
	}
	box, err := seal.New(key)
	if err != nil {
		t.Fatal(err)
	}
	r := &replica{st: st}
	r.log = audit.New(st.Audit(sqlite.SyncNormal), audit.Config{})
	t.Cleanup(func() { r.log.Close(); st.Close() })
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	r.a, err = access.New(access.Config{Store: st, Box: box, Now: c.Now, Audit: r.log, Log: quiet,
		Events: func(_ context.Context, ev access.Event) { r.mu.Lock(); r.events = append(r.events, ev); r.mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	r.sw, err = sweeper.New(sweeper.Config{Authority: r.a, Holder: holder, Every: 30 * time.Second, Now: c.Now, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// fixture is one replica on a fresh data directory with service billing
// and contractor alice (engagement 60 days, a grant of billing:read:/**).
type fixture struct {
	dir   string
	clock *clock
	r     *replica
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{dir: t.TempDir(), clock: &clock{t: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)}}
	f.r = openReplica(t, f.dir, "replica-1", f.clock)
	ctx := context.Background()
	if _, err := f.r.a.AddService(ctx, root, "billing", "http://127.0.0.1:9", []access.Header{{Name: "Authorization", Value: "Bearer x"}}); err != nil {
		t.Fatal(err)
	}
	f.contractor(t, "alice", 60*day)
	return f
}

func (f *fixture) contractor(t *testing.T, name string, until time.Duration) {
	t.Helper()
	ctx := context.Background()
	now := f.clock.Now()
	if _, err := f.r.a.AddContractor(ctx, root, access.NewContractor{Name: name, Email: name + "@example.com", Sponsor: "bob", Until: now.Add(until)}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.r.a.AddGrant(ctx, root, name, []string{"billing:read:/**"}, time.Time{}); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) issue(t *testing.T, contractor string, ttl time.Duration) string {
	t.Helper()
	iss, err := f.r.a.Issue(context.Background(), root, access.IssueRequest{Contractor: contractor, Scopes: []string{"billing:GET:/v1/x"}, TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	return iss.Token.ID
}

func (f *fixture) token(t *testing.T, id string) store.Token {
	t.Helper()
	tok, err := f.r.st.Token(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func pass(t *testing.T, r *replica, want sweeper.Counts) {
	t.Helper()
	got, err := r.sw.Pass(context.Background())
	if err != nil {
		t.Fatalf("Pass: %v", err)
	}
	if got != want {
		t.Errorf("Pass = %+v, want %+v", got, want)
	}
}

// records returns the audit records (read from the shared storage) that
// the sweeper wrote, as "action token contractor".
func records(t *testing.T, r *replica) []audit.Record {
	t.Helper()
	ctx := context.Background()
	n, err := r.log.Size(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []audit.Record
	for i := range n {
		rec, _, err := r.log.Record(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Actor == access.SweeperName {
			out = append(out, rec)
		}
	}
	return out
}

func setPolicy(t *testing.T, a *access.Authority, ch access.PolicyChange) {
	t.Helper()
	if _, err := a.SetPolicy(context.Background(), root, ch); err != nil {
		t.Fatal(err)
	}
}

func dur(d time.Duration) *time.Duration { return &d }
func str(s string) *string               { return &s }

func TestIdleReaping(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	t1 := f.issue(t, "alice", 20*day)
	t2 := f.issue(t, "alice", 20*day)
	pass(t, f.r, sweeper.Counts{}) // no idle policy: nothing to reap
	setPolicy(t, f.r.a, access.PolicyChange{Service: str("billing"), Idle: dur(3 * day)})

	f.clock.Add(2 * day)
	if err := f.r.st.RecordUse(ctx, []store.Use{{TokenID: t2, At: f.clock.Now(), Count: 1}}); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(day - time.Second)
	pass(t, f.r, sweeper.Counts{}) // t1 idle for 3d minus 1s
	f.clock.Add(time.Second)
	pass(t, f.r, sweeper.Counts{Idle: 1})
	pass(t, f.r, sweeper.Counts{})
	if tok := f.token(t, t1); tok.RevokedReason != store.RevokeIdle || tok.RevokedBy != access.SweeperName {
		t.Errorf("t1: reason %q by %q, want idle by %s", tok.RevokedReason, tok.RevokedBy, access.SweeperName)
	}
	if tok := f.token(t, t2); !tok.RevokedAt.IsZero() {
		t.Errorf("t2, used 1d ago, was revoked")
	}
	f.clock.Add(2 * day) // t2 now unused for 3d
	pass(t, f.r, sweeper.Counts{Idle: 1})
	if tok := f.token(t, t2); tok.RevokedReason != store.RevokeIdle {
		t.Errorf("t2: reason %q, want idle", tok.RevokedReason)
	}
	want := []string{
		"token.issued " + t1 + " ", "token.issued " + t2 + " ",
		"token.idle_reaped " + t1 + " idle", "token.idle_reaped " + t2 + " idle",
	}
	if d := cmp.Diff(want, f.r.eventTypes()); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}
	recs := records(t, f.r)
	if len(recs) != 2 || recs[0].TokenID != t1 || recs[0].Action != "token.revoke" || recs[0].Decision != audit.Allow ||
		recs[0].Contractor != "alice" || recs[0].Reason[:5] != "idle:" {
		t.Errorf("sweeper records: %+v", recs)
	}
}

func TestEngagementEnd(t *testing.T) {
	f := newFixture(t)
	f.contractor(t, "carol", 10*day)
	c1 := f.issue(t, "carol", 5*day)
	c2 := f.issue(t, "carol", 10*day)
	a1 := f.issue(t, "alice", 20*day)
	f.clock.Add(10*day - time.Millisecond)
	pass(t, f.r, sweeper.Counts{ExpiryNotices: 1}) // c2 expires with the engagement
	f.clock.Add(time.Millisecond)
	pass(t, f.r, sweeper.Counts{EngagementEnded: 1})
	pass(t, f.r, sweeper.Counts{})
	for _, id := range []string{c2} {
		if tok := f.token(t, id); tok.RevokedReason != store.RevokeEngagementEnd {
			t.Errorf("%s: reason %q, want engagement_ended", id, tok.RevokedReason)
		}
	}
	// c1 had expired: it is revoked too (nothing of carol's stays live).
	if tok := f.token(t, c1); tok.RevokedAt.IsZero() {
		t.Errorf("expired %s not revoked", c1)
	}
	if tok := f.token(t, a1); !tok.RevokedAt.IsZero() {
		t.Errorf("alice's token revoked by carol's engagement end")
	}
	c, err := f.r.st.Contractor(context.Background(), "carol")
	if err != nil || !c.Disabled {
		t.Errorf("carol after the engagement end: %+v, %v", c, err)
	}
	gs, _ := f.r.st.Grants(context.Background(), store.GrantFilter{Contractor: "carol", LiveAt: f.clock.Now().Add(-time.Hour)})
	if len(gs) != 0 {
		t.Errorf("carol keeps %d live grants", len(gs))
	}
	recs := records(t, f.r)
	if len(recs) != 2 || recs[1].Action != "contractor.engagement_end" || recs[1].Contractor != "carol" {
		t.Errorf("sweeper records: %+v", recs)
	}
}

func TestRotationGraceEnd(t *testing.T) {
	f := newFixture(t)
	old := f.issue(t, "alice", 10*day)
	next, err := f.r.a.Rotate(context.Background(), root, old, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Add(30 * time.Minute)
	pass(t, f.r, sweeper.Counts{})
	f.clock.Add(30 * time.Minute)
	pass(t, f.r, sweeper.Counts{Rotated: 1})
	pass(t, f.r, sweeper.Counts{})
	if tok := f.token(t, old); tok.RevokedReason != store.RevokeRotated || tok.RevokedBy != access.SweeperName {
		t.Errorf("old token: reason %q by %q", tok.RevokedReason, tok.RevokedBy)
	}
	if tok := f.token(t, next.Token.ID); !tok.Active(f.clock.Now()) {
		t.Errorf("successor not active")
	}
	recs := records(t, f.r)
	if len(recs) != 1 || recs[0].TokenID != old || recs[0].Reason[:8] != "rotated:" {
		t.Errorf("sweeper records: %+v", recs)
	}
}

func TestExpiryNoticeOnce(t *testing.T) {
	f := newFixture(t)
	id := f.issue(t, "alice", 30*time.Hour)
	far := f.issue(t, "alice", 10*day)
	pass(t, f.r, sweeper.Counts{})
	f.clock.Add(6 * time.Hour) // expires in 24h
	pass(t, f.r, sweeper.Counts{ExpiryNotices: 1})
	f.clock.Add(time.Hour)
	pass(t, f.r, sweeper.Counts{})
	var notices []string
	for _, ev := range f.r.eventTypes() {
		if ev[:len(access.EventTokenExpiring)] == access.EventTokenExpiring {
			notices = append(notices, ev)
		}
	}
	if d := cmp.Diff([]string{access.EventTokenExpiring + " " + id + " "}, notices); d != "" {
		t.Errorf("expiry notices (-want +got):\n%s", d)
	}
	_ = far
	recs := records(t, f.r)
	if len(recs) != 1 || recs[0].Action != "token.expiry_notice" || recs[0].TokenID != id {
		t.Errorf("sweeper records: %+v", recs)
	}
}

// TestLeaseOneAtATime: a second replica skips while the first holds the
// lease, and takes over once the lease expires.
func TestLeaseOneAtATime(t *testing.T) {
	f := newFixture(t)
	r2 := openReplica(t, f.dir, "replica-2", f.clock)
	pass(t, f.r, sweeper.Counts{})
	pass(t, r2, sweeper.Counts{Skipped: true})
	f.clock.Add(90 * time.Second) // the default lease: max(3 × 30s, 1m)
	pass(t, r2, sweeper.Counts{})
	pass(t, f.r, sweeper.Counts{Skipped: true})
}

// populate gives each of n contractors one token of each kind of sweep
// work: idle (3 days to live, or 2 with the engagement), rotated (grace
// 1h), expiring within a day, and ends every third contractor's
// engagement at 2 days.
func populate(t *testing.T, f *fixture, n int) (idle, rotated, expiring []string, ended []string) {
	t.Helper()
	ctx := context.Background()
	setPolicy(t, f.r.a, access.PolicyChange{Idle: dur(day)})
	for i := range n {
		name := fmt.Sprintf("c%02d", i)
		until := 60 * day
		if i%3 == 0 {
			until = 2 * day
			ended = append(ended, name)
		}
		f.contractor(t, name, until)
		idle = append(idle, f.issue(t, name, min(3*day, until)))
		old := f.issue(t, name, 36*time.Hour)
		if _, err := f.r.a.Rotate(ctx, root, old, time.Hour); err != nil {
			t.Fatal(err)
		}
		rotated = append(rotated, old)
		expiring = append(expiring, f.issue(t, name, 20*time.Hour))
	}
	return idle, rotated, expiring, ended
}

// TestTwoReplicasConcurrent: two replicas (two stores on one database
// file, two Authorities, two audit logs) sweep at once over many passes,
// the lease moving between them; every action happens exactly once, with
// exactly one audit record.
func TestTwoReplicasConcurrent(t *testing.T) {
	f := newFixture(t)
	r2 := openReplica(t, f.dir, "replica-2", f.clock)
	_, rotated, _, ended := populate(t, f, 9)
	var total [2]sweeper.Counts
	for round := range 40 {
		var wg sync.WaitGroup
		for i, r := range []*replica{f.r, r2} {
			wg.Go(func() {
				c, err := r.sw.Pass(context.Background())
				if err != nil {
					t.Errorf("round %d replica %d: %v", round, i+1, err)
				}
				total[i].Idle += c.Idle
				total[i].Rotated += c.Rotated
				total[i].EngagementEnded += c.EngagementEnded
				total[i].ExpiryNotices += c.ExpiryNotices
			})
		}
		wg.Wait()
		f.clock.Add(90 * time.Minute) // past the lease: either may take it next
	}
	checkOnce(t, f, r2, total[0], total[1], rotated, ended)
}

// TestTwoReplicasRaceActions: the backstop under the lease. Both replicas
// take every sweep action on the same subjects at the same instant; each
// is taken once and audited once, the loser writing nothing.
func TestTwoReplicasRaceActions(t *testing.T) {
	f := newFixture(t)
	r2 := openReplica(t, f.dir, "replica-2", f.clock)
	idle, rotated, expiring, ended := populate(t, f, 6)
	f.clock.Add(2 * day) // everything is due (expiring ones expire in the meantime, so notice first)
	ctx := context.Background()
	now := f.clock.Now()
	before := now.Add(-2*day + 5*time.Hour)
	var counts [2]sweeper.Counts
	replicas := []*replica{f.r, r2}
	// Each phase runs on both replicas at once; phases run in the order
	// of a pass's due dates, so that no action overtakes another.
	phase := func(do func(r *replica, holder string, c *sweeper.Counts)) {
		var wg sync.WaitGroup
		for i, r := range replicas {
			wg.Go(func() { do(r, fmt.Sprintf("replica-%d", i+1), &counts[i]) })
		}
		wg.Wait()
	}
	phase(func(r *replica, _ string, c *sweeper.Counts) {
		for _, id := range expiring {
			if ok, err := r.a.NoticeExpiry(ctx, id, before); err != nil {
				t.Error(err)
			} else if ok {
				c.ExpiryNotices++
			}
		}
	})
	phase(func(r *replica, holder string, c *sweeper.Counts) {
		for _, id := range rotated {
			if ok, err := r.a.FinishRotation(ctx, holder, id, now); err != nil {
				t.Error(err)
			} else if ok {
				c.Rotated++
			}
		}
	})
	phase(func(r *replica, holder string, c *sweeper.Counts) {
		for _, id := range idle {
			if ok, err := r.a.ReapIdle(ctx, holder, id, now); err != nil {
				t.Error(err)
			} else if ok {
				c.Idle++
			}
		}
	})
	phase(func(r *replica, holder string, c *sweeper.Counts) {
		for _, name := range ended {
			if _, ok, err := r.a.EndEngagement(ctx, holder, name, now); err != nil {
				t.Error(err)
			} else if ok {
				c.EngagementEnded++
			}
		}
	})
	checkOnce(t, f, r2, counts[0], counts[1], rotated, ended)
	if counts[0].Idle+counts[1].Idle != len(idle)-len(ended) || counts[0].ExpiryNotices+counts[1].ExpiryNotices != len(expiring) {
		t.Errorf("counts %+v %+v: want %d idle reaps and %d notices", counts[0], counts[1], len(idle)-len(ended), len(expiring))
	}
}

// checkOnce checks that every sweep action was taken exactly once across
// both replicas: each subject has one audit record and one event, the
// counts agree with the tokens' reasons, every rotation ended as rotated
// and every ended engagement was ended.
func checkOnce(t *testing.T, f *fixture, r2 *replica, c1, c2 sweeper.Counts, rotated, ended []string) {
	t.Helper()
	ctx := context.Background()
	sum := sweeper.Counts{Idle: c1.Idle + c2.Idle, Rotated: c1.Rotated + c2.Rotated,
		EngagementEnded: c1.EngagementEnded + c2.EngagementEnded, ExpiryNotices: c1.ExpiryNotices + c2.ExpiryNotices}
	if sum.Idle == 0 || sum.ExpiryNotices == 0 || sum.Rotated != len(rotated) || sum.EngagementEnded != len(ended) {
		t.Errorf("counts %+v: want idle reaps, notices, %d rotations and %d engagements ended", sum, len(rotated), len(ended))
	}
	toks, err := f.r.st.Tokens(ctx, store.TokenFilter{})
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]int{}
	for _, tok := range toks {
		reasons[tok.RevokedReason]++
	}
	if reasons[store.RevokeIdle] != sum.Idle || reasons[store.RevokeRotated] != sum.Rotated {
		t.Errorf("tokens revoked idle %d, rotated %d; counts say %+v", reasons[store.RevokeIdle], reasons[store.RevokeRotated], sum)
	}
	for _, id := range rotated {
		if tok, _ := f.r.st.Token(ctx, id); tok.RevokedReason != store.RevokeRotated {
			t.Errorf("rotated token %s: reason %q", id, tok.RevokedReason)
		}
	}
	for _, name := range ended {
		if c, _ := f.r.st.Contractor(ctx, name); !c.Disabled {
			t.Errorf("contractor %s not disabled", name)
		}
	}
	perSubject := map[string]int{}
	byAction := map[string]int{}
	for _, rec := range records(t, f.r) {
		if rec.Decision != audit.Allow {
			t.Errorf("sweeper record not an allow: %+v", rec)
		}
		key := rec.Action + " " + rec.TokenID
		if rec.Action == "contractor.engagement_end" {
			key = rec.Action + " " + rec.Contractor
		}
		perSubject[key]++
		byAction[rec.Action]++
	}
	for k, v := range perSubject {
		if v != 1 {
			t.Errorf("%d audit records for %s, want 1", v, k)
		}
	}
	want := map[string]int{"token.revoke": sum.Idle + sum.Rotated, "contractor.engagement_end": sum.EngagementEnded,
		"token.expiry_notice": sum.ExpiryNotices}
	if d := cmp.Diff(want, byAction); d != "" {
		t.Errorf("audited sweeper actions (-counts +records):\n%s", d)
	}
	events := map[string]int{}
	for _, r := range []*replica{f.r, r2} {
		for _, ev := range r.eventTypes() {
			events[ev]++
		}
	}
	for ev, k := range events {
		if k != 1 {
			t.Errorf("event %q emitted %d times", ev, k)
		}
	}
}

func TestNewRefusals(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name string
		cfg  sweeper.Config
	}{
		{"no authority", sweeper.Config{}},
		{"negative every", sweeper.Config{Authority: f.r.a, Every: -time.Second}},
		{"negative lease", sweeper.Config{Authority: f.r.a, Lease: -time.Second}},
		{"negative notice", sweeper.Config{Authority: f.r.a, ExpiryNotice: -time.Second}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := sweeper.New(tc.cfg); err == nil {
				t.Errorf("New(%+v): no error", tc.cfg)
			}
		})
	}
}

// TestRunStops: Run sweeps until its context ends.
func TestRunStops(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.r.sw.Run(ctx) }()
	cancel()
	<-done
}

// TestIdleReapingRevokesDerived: a token is idle only when it and its
// live derived tokens all are (a child's use updates only the child), so
// a child in use keeps its parent alive while an idle sibling is reaped
// alone; once the whole tree is idle the parent is reaped and its
// children are revoked with it.
func TestIdleReapingRevokesDerived(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	parent := f.issue(t, "alice", 20*day)
	var kids [2]string
	for i := range kids {
		child, err := f.r.a.Derive(ctx, access.Actor{TokenID: parent, Name: "alice"},
			access.DeriveRequest{Scopes: []string{"billing:GET:/v1/x"}, TTL: 10 * day})
		if err != nil {
			t.Fatalf("Derive: %v", err)
		}
		kids[i] = child.Token.ID
	}
	used, idle := kids[0], kids[1]
	setPolicy(t, f.r.a, access.PolicyChange{Service: str("billing"), Idle: dur(3 * day)})
	f.clock.Add(2 * day)
	if err := f.r.st.RecordUse(ctx, []store.Use{{TokenID: used, At: f.clock.Now(), Count: 1}}); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(day)
	pass(t, f.r, sweeper.Counts{Idle: 1})
	for id, want := range map[string]string{parent: "", used: "", idle: store.RevokeIdle} {
		if tok := f.token(t, id); tok.RevokedReason != want {
			t.Errorf("three days on, token %s: reason %q, want %q", id, tok.RevokedReason, want)
		}
	}
	f.clock.Add(2 * day) // three days since the last use of the tree
	pass(t, f.r, sweeper.Counts{Idle: 1})
	for id, want := range map[string]string{parent: store.RevokeIdle, used: store.RevokeParent, idle: store.RevokeIdle} {
		if tok := f.token(t, id); tok.RevokedReason != want {
			t.Errorf("once the tree is idle, token %s: reason %q, want %q", id, tok.RevokedReason, want)
		}
	}
	pass(t, f.r, sweeper.Counts{})
}

// TestTwoReplicasReapIdleTree: two replicas reaping the same idle tree at
// once revoke it once: one reap of the parent, its child revoked with it,
// one audit record each.
func TestTwoReplicasReapIdleTree(t *testing.T) {
	f := newFixture(t)
	r2 := openReplica(t, f.dir, "replica-2", f.clock)
	ctx := context.Background()
	parent := f.issue(t, "alice", 20*day)
	child, err := f.r.a.Derive(ctx, access.Actor{TokenID: parent, Name: "alice"},
		access.DeriveRequest{Scopes: []string{"billing:GET:/v1/x"}, TTL: 10 * day})
	if err != nil {
		t.Fatalf("Derive: %v", err)
	}
	setPolicy(t, f.r.a, access.PolicyChange{Service: str("billing"), Idle: dur(3 * day)})
	f.clock.Add(3 * day)
	now := f.clock.Now()
	replicas := []*replica{f.r, r2}
	var lists [2][]access.IdleToken
	for i, r := range replicas {
		if lists[i], err = r.a.IdleTokens(ctx, now); err != nil {
			t.Fatal(err)
		}
		if len(lists[i]) != 1 || lists[i][0].ID != parent {
			t.Errorf("replica %d: idle tokens %+v, want only the parent %s", i+1, lists[i], parent)
		}
	}
	var done [2]int
	var wg sync.WaitGroup
	for i, r := range replicas {
		wg.Go(func() {
			for _, it := range lists[i] {
				if ok, err := r.a.ReapIdle(ctx, fmt.Sprintf("replica-%d", i+1), it.ID, now); err != nil {
					t.Error(err)
				} else if ok {
					done[i]++
				}
			}
		})
	}
	wg.Wait()
	if done[0]+done[1] != 1 {
		t.Errorf("reaps %v, want one in all", done)
	}
	if tok := f.token(t, child.Token.ID); tok.RevokedReason != store.RevokeParent {
		t.Errorf("child: reason %q, want %s", tok.RevokedReason, store.RevokeParent)
	}
	per := map[string]int{}
	for _, rec := range records(t, f.r) {
		per[rec.Action+" "+rec.TokenID]++
	}
	want := map[string]int{"token.revoke " + parent: 1, "token.revoke " + child.Token.ID: 1}
	if d := cmp.Diff(want, per); d != "" {
		t.Errorf("sweeper audit records (-want +got):\n%s", d)
	}
}
