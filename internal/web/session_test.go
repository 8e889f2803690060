package web

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestSessionLifetime(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name     string
		tokExp   time.Time
		requests []time.Duration // after t0, each must find the session
		endsAt   time.Duration   // after t0, the session is gone
	}{
		{"idle", t0.Add(48 * time.Hour), []time.Duration{time.Hour}, time.Hour + IdleTimeout},
		{"absolute", t0.Add(48 * time.Hour), []time.Duration{4 * time.Hour, 8 * time.Hour, 11 * time.Hour}, MaxAge},
		{"token expiry", t0.Add(2 * time.Hour), []time.Duration{time.Hour}, 2 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ss sessions
			id := ss.add(&session{tokenID: "x", tokExpiry: tc.tokExp, created: t0, lastSeen: t0})
			if len(id) != 64 {
				t.Fatalf("session id %q: want 32 bytes in hex", id)
			}
			for _, d := range tc.requests {
				if ss.get(id, t0.Add(d)) == nil {
					t.Fatalf("session gone at +%v", d)
				}
			}
			if ss.get(id, t0.Add(tc.endsAt)) != nil {
				t.Fatalf("session alive at +%v", tc.endsAt)
			}
			if ss.get(id, t0.Add(tc.endsAt-time.Second)) != nil {
				t.Fatalf("an ended session came back")
			}
		})
	}
}

func TestSessionCookie(t *testing.T) {
	r := httptest.NewRequest("POST", "http://127.0.0.1/ui/login", nil)
	if c := sessionCookie(r, "v", 60); c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/ui/" {
		t.Errorf("plain HTTP cookie: %+v", c)
	}
	r = httptest.NewRequest("POST", "https://127.0.0.1/ui/login", nil)
	if c := sessionCookie(r, "v", 60); !c.Secure {
		t.Errorf("TLS cookie not Secure: %+v", c)
	}
}
