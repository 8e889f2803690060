package access

import (
	"fmt"
	"testing"
	"time"

	"latchkey/internal/scope"
	"latchkey/internal/store"
)

// TestCacheLoadRacingInvalidation: a load that read the store before a
// revocation committed must not cache what it read.
func TestCacheLoadRacingInvalidation(t *testing.T) {
	c := newCache()
	now := time.Now()
	gen := c.generation() // load begins: reads the unrevoked row...
	c.drop("tok")         // ...revocation commits and invalidates...
	stale := &cached{id: "tok", terms: &terms{}, loaded: now}
	c.put(stale, gen) // ...then the load tries to cache its row.
	if c.get("tok", now) != nil {
		t.Fatal("a row read before an invalidation was cached")
	}
	gen = c.generation()
	c.put(stale, gen)
	if c.get("tok", now) == nil {
		t.Fatal("a load with no invalidation in between was not cached")
	}
	if c.get("tok", now.Add(cacheMaxAge+time.Millisecond)) != nil {
		t.Fatal("an entry older than cacheMaxAge was trusted")
	}
	gen = c.generation()
	c.dropContractor("someone")
	c.put(&cached{id: "other", terms: &terms{}, loaded: now}, gen)
	if c.get("other", now) != nil {
		t.Fatal("offboarding did not invalidate loads in flight")
	}
}

// TestCacheInternsTerms: tokens issued alike share one parsed scope set;
// anything that differs, even where the joined text is the same, does not.
func TestCacheInternsTerms(t *testing.T) {
	c := newCache()
	tok := func(contractor string, scopes ...string) store.Token {
		return store.Token{ID: "id", Contractor: contractor, Scopes: scopes, Note: "a note"}
	}
	must := func(tk store.Token) *terms {
		t.Helper()
		tm, err := c.intern(tk)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	a := must(tok("alice", "billing:GET:/a", "billing:GET:/b"))
	if b := must(tok("alice", "billing:GET:/a", "billing:GET:/b")); b != a {
		t.Error("equal terms were not shared")
	}
	if len(a.scopes) != 2 || !a.scopes.Covers(scope.MustParse("billing:GET:/b")) {
		t.Errorf("scopes %v, want both parsed", a.scopes.Strings())
	}
	if a.note != "" {
		t.Errorf("a contractor token's note %q was kept", a.note)
	}
	for _, other := range []store.Token{
		tok("bob", "billing:GET:/a", "billing:GET:/b"),
		tok("alice", "billing:GET:/a"),
		{ID: "id", Admin: true, Scopes: []string{"admin:*"}, Note: "ops"},
	} {
		if must(other) == a {
			t.Errorf("%+v shares the terms of different ones", other)
		}
	}
	if adm := must(store.Token{ID: "id", Admin: true, Scopes: []string{"admin:*"}, Note: "ops"}); adm.note != "ops" {
		t.Errorf("admin token's note %q, want ops", adm.note)
	}
	// The same key as a's, but one scope that does not parse.
	if _, err := c.intern(tok("alice", "billing:GET:/a\nbilling:GET:/b")); err == nil {
		t.Error("a stored scope list that does not parse was taken for an interned one")
	}
	bad := tok("alice", "billing:GET:/a")
	bad.CIDRs = []string{"10.0.0.1/33"}
	if _, err := c.intern(bad); err == nil {
		t.Error("an invalid stored CIDR was accepted")
	}
	for i := range maxTerms + 10 {
		must(tok(fmt.Sprintf("c%d", i), "billing:GET:/a"))
	}
	if n := len(c.terms); n > maxTerms {
		t.Errorf("%d terms held, want at most %d", n, maxTerms)
	}
}
