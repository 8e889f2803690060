package access_test

import (
	"context"
	"net/netip"
	"testing"
	"time"
)

func TestCacheStats(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	iss := issueFor(t, e, time.Hour)
	h0, m0 := e.a.CacheStats()
	for range 3 {
		if _, _, err := e.a.Authenticate(context.Background(), iss.Text, netip.Addr{}); err != nil {
			t.Fatal(err)
		}
	}
	h, m := e.a.CacheStats()
	if h-h0 != 2 || m-m0 != 1 {
		t.Fatalf("after 3 authentications: %d hits, %d misses; want 2 and 1", h-h0, m-m0)
	}
	if n := e.a.CachedTokens(); n != 1 {
		t.Fatalf("CachedTokens = %d, want 1", n)
	}
}
