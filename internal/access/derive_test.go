package access_test

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"latchkey/internal/access"
	"latchkey/internal/audit"
	"latchkey/internal/seal"
	"latchkey/internal/store"
	"latchkey/internal/store/sqlite"
)

// deriveEnv is env with a parent token of alice's and one child of it.
func deriveEnv(t *testing.T, e *env) (parent, child access.Issued) {
	t.Helper()
	e.seed(t)
	ctx := context.Background()
	parent, err := e.a.Issue(ctx, root, access.IssueRequest{Contractor: "alice", Scopes: []string{"billing:GET:/v1/**"}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	child, err = e.a.Derive(ctx, access.Actor{TokenID: parent.Token.ID, Name: "alice"},
		access.DeriveRequest{Scopes: []string{"billing:GET:/v1/x"}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return parent, child
}

// TestDeriveLeakFailClosed: with the audit log down, deriving, reporting
// a leak and revoking a parent are refused and change nothing.
func TestDeriveLeakFailClosed(t *testing.T) {
	e := newEnv(t)
	parent, child := deriveEnv(t, e)
	ctx := context.Background()
	before := e.snapshot(t)
	if err := e.log.Close(); err != nil {
		t.Fatal(err)
	}
	ops := map[string]func() error{
		"token.derive": func() error {
			_, err := e.a.Derive(ctx, access.Actor{TokenID: parent.Token.ID}, access.DeriveRequest{Scopes: []string{"billing:GET:/v1/y"}, TTL: time.Minute})
			return err
		},
		"token.derive refused": func() error {
			_, err := e.a.Derive(ctx, access.Actor{TokenID: parent.Token.ID}, access.DeriveRequest{Scopes: []string{"billing:GET:/v2"}, TTL: time.Minute})
			return err
		},
		"token.leak":         func() error { _, err := e.a.ReportLeak(ctx, access.Actor{}, parent.Text); return err },
		"token.leak unknown": func() error { _, err := e.a.ReportLeak(ctx, access.Actor{}, "nope"); return err },
		"token.revoke":       func() error { return e.a.Revoke(ctx, root, parent.Token.ID) },
		"leak.report":        func() error { return e.a.RecordLeakReport(ctx, access.Actor{}, "k", 1) },
	}
	for name, op := range ops {
		if err := op(); access.ReasonOf(err) != access.ReasonAuditUnavailable || !errors.Is(err, audit.ErrClosed) {
			t.Errorf("%s with the audit log down: %v, want audit_unavailable", name, err)
		}
	}
	if d := cmp.Diff(before, e.snapshot(t)); d != "" {
		t.Fatalf("changes without an audit record (-before +after):\n%s", d)
	}
	for _, text := range []string{parent.Text, child.Text} {
		if _, _, err := e.a.Authenticate(ctx, text, netip.Addr{}); err != nil {
			t.Errorf("token stopped working: %v", err)
		}
	}
}

// failing commits records until one's reason starts with prefix.
type failing struct {
	log    *audit.Log
	prefix string
}

func (f failing) Append(ctx context.Context, recs ...audit.Record) (int64, error) {
	for _, r := range recs {
		if strings.HasPrefix(r.Reason, f.prefix) {
			return 0, errors.New("disk full")
		}
	}
	return f.log.Append(ctx, recs...)
}

// TestCascadeAuditedFirst: if the records of the derived tokens cannot be
// committed, neither the parent nor its children are revoked.
func TestCascadeAuditedFirst(t *testing.T) {
	dir := t.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "latchkey.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	key, _ := seal.LoadOrCreateKey(filepath.Join(dir, "seal.key"))
	box, _ := seal.New(key)
	log := audit.New(st.Audit(sqlite.SyncNormal), audit.Config{})
	defer log.Close()
	c := &clock{t: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)}
	a, err := access.New(access.Config{Store: st, Box: box, Now: c.Now, Audit: failing{log, store.RevokeParent}})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{a: a, st: st, log: log, clock: c}
	parent, child := deriveEnv(t, e)
	ctx := context.Background()
	if err := a.Revoke(ctx, root, parent.Token.ID); access.ReasonOf(err) != access.ReasonAuditUnavailable {
		t.Fatalf("revoke: %v, want audit_unavailable", err)
	}
	for _, text := range []string{parent.Text, child.Text} {
		if _, _, err := a.Authenticate(ctx, text, netip.Addr{}); err != nil {
			t.Errorf("token revoked without its audit record: %v", err)
		}
	}
}

// TestReportLeakRefusals: texts that are not tokens of this server are
// refused with token_malformed or token_unknown and change nothing.
func TestReportLeakRefusals(t *testing.T) {
	e := newEnv(t)
	parent, _ := deriveEnv(t, e)
	ctx := context.Background()
	before := e.snapshot(t)
	wrongKind := "lka_" + strings.TrimPrefix(parent.Text, "lk_") // checksum covers the prefix: malformed
	tests := map[string]string{
		"":                               access.ReasonMalformed,
		"not a token":                    access.ReasonMalformed,
		parent.Text[:len(parent.Text)-1]: access.ReasonMalformed,
		wrongKind:                        access.ReasonMalformed,
		"lk_" + strings.Repeat("A", 50):  access.ReasonMalformed,
	}
	for text, want := range tests {
		if _, err := e.a.ReportLeak(ctx, access.Actor{}, text); access.ReasonOf(err) != want && access.ReasonOf(err) != access.ReasonUnknown {
			t.Errorf("ReportLeak(%.20q): %v, want %s", text, err, want)
		}
	}
	if d := cmp.Diff(before, e.snapshot(t)); d != "" {
		t.Fatalf("refused reports changed the store (-before +after):\n%s", d)
	}
	l, err := e.a.ReportLeak(ctx, access.Actor{}, parent.Text)
	if err != nil || !l.Revoked || len(l.Derived) != 1 {
		t.Fatalf("ReportLeak: %+v %v", l, err)
	}
}

// TestDeriveLiveLimit: the limit on live derived tokens holds for the
// whole tree (counted at its root, so a child cannot add its own 100),
// and an expired child no longer counts against it.
func TestDeriveLiveLimit(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	ctx := context.Background()
	parent, err := e.a.Issue(ctx, root, access.IssueRequest{Contractor: "alice", Scopes: []string{"billing:GET:/v1/**"}, TTL: 4 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	derive := func(from string) (access.Issued, error) {
		return e.a.Derive(ctx, access.Actor{TokenID: from, Name: "alice"},
			access.DeriveRequest{Scopes: []string{"billing:GET:/v1/x"}, TTL: time.Minute})
	}
	// 99 children of the root and one grandchild make 100.
	child, err := derive(parent.Token.ID)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 98; i++ {
		if _, err := derive(parent.Token.ID); err != nil {
			t.Fatalf("child %d: %v", i, err)
		}
	}
	if _, err := derive(child.Token.ID); err != nil {
		t.Fatalf("grandchild: %v", err)
	}
	for name, from := range map[string]string{"root": parent.Token.ID, "child": child.Token.ID} {
		if _, err := derive(from); access.ReasonOf(err) != access.ReasonForbidden || !strings.Contains(err.Error(), "live derived tokens") {
			t.Errorf("derive from the %s of a tree of 100 live derived tokens: %v, want forbidden", name, err)
		}
	}
	// All 100 expire: none is live, and the root derives again.
	e.clock.Add(2 * time.Minute)
	if _, err := derive(parent.Token.ID); err != nil {
		t.Fatalf("derive once the tree's derived tokens have expired: %v", err)
	}
	// Revoking the root still revokes the expired descendants too.
	if err := e.a.Revoke(ctx, root, parent.Token.ID); err != nil {
		t.Fatal(err)
	}
	tok, err := e.st.Token(ctx, child.Token.ID)
	if err != nil {
		t.Fatal(err)
	}
	if tok.RevokedAt.IsZero() || tok.RevokedReason != store.RevokeParent {
		t.Errorf("expired child after its root's revocation: revoked %v reason %q, want %s", tok.RevokedAt, tok.RevokedReason, store.RevokeParent)
	}
}

// TestRotateDerivedUses: the successor of a derived token with a use
// limit gets only the uses left, and one with none left is not rotated,
// so deriving and rotating never multiplies uses.
func TestRotateDerivedUses(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	ctx := context.Background()
	parent, err := e.a.Issue(ctx, root, access.IssueRequest{Contractor: "alice", Scopes: []string{"billing:GET:/v1/**"}, TTL: 4 * time.Hour, MaxUses: 10})
	if err != nil {
		t.Fatal(err)
	}
	by := access.Actor{TokenID: parent.Token.ID, Name: "alice"}
	use := func(id string, n int) error {
		for range n {
			tok, err := e.st.Token(ctx, id)
			if err != nil {
				return err
			}
			if _, err := e.a.Use(ctx, tok); err != nil {
				return err
			}
		}
		return nil
	}
	child, err := e.a.Derive(ctx, by, access.DeriveRequest{Scopes: []string{"billing:GET:/v1/x"}, TTL: time.Hour, MaxUses: 3})
	if err != nil {
		t.Fatal(err)
	}
	if err := use(child.Token.ID, 2); err != nil {
		t.Fatal(err)
	}
	next, err := e.a.Rotate(ctx, root, child.Token.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if next.Token.MaxUses != 1 || next.Token.Uses != 0 {
		t.Fatalf("successor of a derived token with 1 use left: MaxUses %d Uses %d, want 1 and 0", next.Token.MaxUses, next.Token.Uses)
	}
	if err := use(next.Token.ID, 1); err != nil {
		t.Fatal(err)
	}
	if err := use(next.Token.ID, 1); access.ReasonOf(err) != access.ReasonExpired {
		t.Fatalf("second use of the successor: %v, want token_expired", err)
	}
	if _, err := e.a.Rotate(ctx, root, next.Token.ID, 0); access.ReasonOf(err) != access.ReasonExpired || !strings.Contains(err.Error(), "used all 1 of its uses") {
		t.Fatalf("rotate a derived token with no uses left: %v, want token_expired", err)
	}
}
