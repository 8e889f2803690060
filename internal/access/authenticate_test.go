package access_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"latchkey/internal/access"
)

// TestCacheStatsHold: Hold looks the token up again, but the cache
// statistics count authentications only.
func TestCacheStatsHold(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	iss := issueFor(t, e, time.Hour)
	ctx := context.Background()
	h0, m0 := e.a.CacheStats()
	for range 2 {
		if _, _, err := e.a.Authenticate(ctx, iss.Text, netip.Addr{}); err != nil {
			t.Fatal(err)
		}
		_, release, err := e.a.Hold(ctx, iss.Token.ID)
		if err != nil {
			t.Fatal(err)
		}
		release()
	}
	if h, m := e.a.CacheStats(); h-h0 != 1 || m-m0 != 1 {
		t.Fatalf("after 2 authentications, each held: %d hits, %d misses; want 1 and 1", h-h0, m-m0)
	}
}

// TestAuthenticateRecord: the record Authenticate returns holds the fields
// its callers use, and the cache keeps nothing else of it (see
// Authenticate).
func TestAuthenticateRecord(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	ctx := context.Background()
	src := netip.MustParseAddr("10.1.2.3")
	for _, req := range []access.IssueRequest{
		{Contractor: "alice", Scopes: []string{"billing:GET:/v1/**"}, CIDRs: []string{"10.0.0.0/8"}, MaxUses: 5, Note: "ci", TTL: time.Hour},
		{Admin: true, Scopes: []string{"admin:tokens:read"}, Note: "ops", TTL: time.Hour},
	} {
		iss, err := e.a.Issue(ctx, root, req)
		if err != nil {
			t.Fatal(err)
		}
		want := iss.Token
		want.CreatedAt, want.CreatedBy = time.Time{}, ""
		if !want.Admin {
			want.Note = ""
		}
		got, set, err := e.a.Authenticate(ctx, iss.Text, src)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Authenticate record (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(want.Scopes, set.Strings()); diff != "" {
			t.Errorf("Authenticate scopes (-want +got):\n%s", diff)
		}
	}
}
