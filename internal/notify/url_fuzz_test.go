package notify_test

import (
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"latchkey/internal/notify"
)

// FuzzCheckURL: CheckURL never panics; what it accepts is an absolute
// http(s) URL with a host and no user information, https unless the host
// is loopback, and its canonical form is accepted again, unchanged.
func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{
		"https://hooks.example.com/x", "http://127.0.0.1:8080/hook", "http://[::1]/x", "http://localhost/x",
		"http://hooks.example.com/x", "https://user:pw@h/x", "https://h/x#f", "https://h:99999/", "https://h:/x",
		"ftp://h/x", "javascript:alert(1)", "https:///x", "//h/x", "https://h/a%20b?q=1", "http://127.0.0.1.example.com/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := notify.CheckURL(raw)
		if err != nil {
			if u != nil {
				t.Fatal("a URL with an error")
			}
			return
		}
		if u.Scheme != "https" && u.Scheme != "http" || u.Hostname() == "" || u.User != nil || u.Fragment != "" {
			t.Fatalf("accepted %q: %#v", raw, u)
		}
		if u.Scheme == "http" {
			h := u.Hostname()
			ip, err := netip.ParseAddr(h)
			if !strings.EqualFold(h, "localhost") && (err != nil || !ip.IsLoopback()) {
				t.Fatalf("accepted plain http to %q", h)
			}
		}
		again, err := notify.CheckURL(u.String())
		if err != nil {
			t.Fatalf("canonical form %q of %q refused: %v", u.String(), raw, err)
		}
		if again.String() != u.String() {
			t.Fatalf("canonical form not stable: %q, %q", u.String(), again.String())
		}
		if _, err := url.Parse(u.String()); err != nil {
			t.Fatal(err)
		}
	})
}
