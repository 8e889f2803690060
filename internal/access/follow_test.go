package access_test

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"latchkey/internal/access"
	"latchkey/internal/seal"
	"latchkey/internal/store"
	"latchkey/internal/store/sqlite"
)

// peer is a second process on e's data directory: its own store (its own
// connections to the same database file) and its own Authority and cache,
// on e's clock, following the invalidation feed from now.
type peer struct {
	a *access.Authority
	f *access.Follower
}

func newPeer(t *testing.T, e *env, dir string) *peer {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "latchkey.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return newPeerOn(t, e, dir, st)
}

// newPeerOn is newPeer on the store st.
func newPeerOn(t *testing.T, e *env, dir string, st store.Store) *peer {
	t.Helper()
	key, err := seal.LoadOrCreateKey(filepath.Join(dir, "seal.key"))
	if err != nil {
		t.Fatal(err)
	}
	box, err := seal.New(key)
	if err != nil {
		t.Fatal(err)
	}
	a, err := access.New(access.Config{Store: st, Box: box, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	f, err := a.Follow(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return &peer{a: a, f: f}
}

// twoProcesses is env A, seeded, and a peer B on the same database.
func twoProcesses(t *testing.T) (*env, *peer) {
	t.Helper()
	dir := t.TempDir()
	e, err := openEnv(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.log.Close(); e.st.Close() })
	e.seed(t)
	return e, newPeer(t, e, dir)
}

// cached authenticates text on B, which caches it.
func (p *peer) cached(t *testing.T, text string) {
	t.Helper()
	if _, _, err := p.a.Authenticate(context.Background(), text, netip.Addr{}); err != nil {
		t.Fatalf("B: Authenticate: %v", err)
	}
}

// stale checks that B, not having followed yet, still trusts its cache:
// what the follower is for.
func (p *peer) stale(t *testing.T, text string) {
	t.Helper()
	if _, _, err := p.a.Authenticate(context.Background(), text, netip.Addr{}); err != nil {
		t.Fatalf("B refused before following (the test shows nothing): %v", err)
	}
}

// step runs one follower step on B, which must succeed and move on.
func (p *peer) step(t *testing.T) {
	t.Helper()
	before := p.f.Last()
	if err := p.f.Step(context.Background()); err != nil {
		t.Fatalf("B: Step: %v", err)
	}
	if p.f.Last() <= before {
		t.Fatalf("B: Step left Last at %d, want past %d", p.f.Last(), before)
	}
}

// refuses checks that B refuses text for reason.
func (p *peer) refuses(t *testing.T, text, reason string) {
	t.Helper()
	if _, _, err := p.a.Authenticate(context.Background(), text, netip.Addr{}); access.ReasonOf(err) != reason {
		t.Fatalf("B: Authenticate after following: err = %v, want %s", err, reason)
	}
}

func TestFollowRevoke(t *testing.T) {
	a, b := twoProcesses(t)
	iss := issueFor(t, a, time.Hour)
	other := issueFor(t, a, time.Hour)
	b.cached(t, iss.Text)
	b.cached(t, other.Text)
	if err := a.a.Revoke(context.Background(), root, iss.Token.ID); err != nil {
		t.Fatal(err)
	}
	b.stale(t, iss.Text)
	b.step(t)
	b.refuses(t, iss.Text, access.ReasonRevoked)
	b.cached(t, other.Text)
}

func TestFollowOffboard(t *testing.T) {
	a, b := twoProcesses(t)
	one, two := issueFor(t, a, time.Hour), issueFor(t, a, time.Hour)
	b.cached(t, one.Text)
	b.cached(t, two.Text)
	if _, err := a.a.Offboard(context.Background(), root, "alice"); err != nil {
		t.Fatal(err)
	}
	b.stale(t, one.Text)
	b.step(t)
	b.refuses(t, one.Text, access.ReasonRevoked)
	b.refuses(t, two.Text, access.ReasonRevoked)
}

// TestFollowRotate: a rotation moves the old token's expiry (to now, with
// no grace); B sees the new expiry.
func TestFollowRotate(t *testing.T) {
	a, b := twoProcesses(t)
	old := issueFor(t, a, time.Hour)
	b.cached(t, old.Text)
	next, err := a.a.Rotate(context.Background(), root, old.Token.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	b.stale(t, old.Text)
	b.step(t)
	b.refuses(t, old.Text, access.ReasonExpired)
	b.cached(t, next.Text)
}

// TestFollowRevokeTree: revoking a token on A revokes what was derived
// from it, on B too.
func TestFollowRevokeTree(t *testing.T) {
	a, b := twoProcesses(t)
	ctx := context.Background()
	parent := issueFor(t, a, time.Hour)
	child, err := a.a.Derive(ctx, access.Actor{TokenID: parent.Token.ID, Name: "alice"},
		access.DeriveRequest{Scopes: []string{"billing:GET:/v1/x"}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	b.cached(t, parent.Text)
	b.cached(t, child.Text)
	if err := a.a.Revoke(ctx, root, parent.Token.ID); err != nil {
		t.Fatal(err)
	}
	b.stale(t, child.Text)
	b.step(t)
	b.refuses(t, parent.Text, access.ReasonRevoked)
	b.refuses(t, child.Text, access.ReasonRevoked)
}

// TestFollowHold: a request held on B is cut when A revokes its token.
func TestFollowHold(t *testing.T) {
	a, b := twoProcesses(t)
	iss := issueFor(t, a, time.Hour)
	b.cached(t, iss.Text)
	held, release, err := b.a.Hold(context.Background(), iss.Token.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if err := a.a.Revoke(context.Background(), root, iss.Token.ID); err != nil {
		t.Fatal(err)
	}
	stillHeld(t, held)
	b.step(t)
	cutWithin(t, held, access.ErrTokenCut)
}

// TestFollowGap: entries pruned before B read them make B drop its whole
// cache, so the tokens they named are read again.
func TestFollowGap(t *testing.T) {
	a, b := twoProcesses(t)
	ctx := context.Background()
	missed, later := issueFor(t, a, time.Hour), issueFor(t, a, time.Hour)
	b.cached(t, missed.Text)
	if err := a.a.Revoke(ctx, root, missed.Token.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := a.st.PruneInvalidations(ctx, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := a.a.Revoke(ctx, root, later.Token.ID); err != nil {
		t.Fatal(err)
	}
	b.stale(t, missed.Text)
	b.step(t)
	b.refuses(t, missed.Text, access.ReasonRevoked)
}

// feedDown is a store whose invalidation feed cannot be read once down
// is set.
type feedDown struct {
	store.Store
	down atomic.Bool
}

func (s *feedDown) Invalidations(ctx context.Context, after int64, limit int) ([]store.Invalidation, error) {
	if s.down.Load() {
		return nil, errors.New("feed unavailable")
	}
	return s.Store.Invalidations(ctx, after, limit)
}

// TestFollowReadError: a step that cannot read the feed fails and drops
// the whole cache, so what it could not read about is read from the store.
func TestFollowReadError(t *testing.T) {
	dir := t.TempDir()
	a, err := openEnv(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.log.Close(); a.st.Close() })
	a.seed(t)
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "latchkey.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	down := &feedDown{Store: st}
	b := newPeerOn(t, a, dir, down)
	iss := issueFor(t, a, time.Hour)
	b.cached(t, iss.Text)
	if err := a.a.Revoke(context.Background(), root, iss.Token.ID); err != nil {
		t.Fatal(err)
	}
	down.down.Store(true)
	b.stale(t, iss.Text)
	if err := b.f.Step(context.Background()); err == nil {
		t.Fatal("Step with the feed down: no error")
	}
	b.refuses(t, iss.Text, access.ReasonRevoked)
}
