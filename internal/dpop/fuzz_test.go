package dpop

import (
	"strings"
	"testing"
	"time"
)

// FuzzParse: parse never panics, and what it accepts is consistent: the
// jti within its limit, the htu in normal form (normalizing it again
// changes nothing), the thumbprint a base64url SHA-256, and parsing the
// same text again gives the same result.
func FuzzParse(f *testing.F) {
	f.Add(rfcProof)
	f.Add(strings.Replace(rfcProof, ".", "..", 1))
	f.Add("e30.e30.")
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	s := newSigner(f)
	f.Add(s.proof(f, "j", testURI, "lk_token", time.Unix(1, 0), "n"))
	f.Fuzz(func(t *testing.T, in string) {
		p, err := parse(in)
		if err != nil {
			return
		}
		if n, err := NormalizeURI(p.htu); err != nil || n != p.htu {
			t.Fatalf("htu %q not in normal form (%q, %v)", p.htu, n, err)
		}
		if len(p.claims.JTI) == 0 || len(p.claims.JTI) > MaxJTI || len(p.jkt) != 43 || p.claims.IAT == nil {
			t.Fatalf("accepted %+v", p)
		}
		q, err := parse(in)
		if err != nil || q.jkt != p.jkt || q.htu != p.htu || q.claims.JTI != p.claims.JTI {
			t.Fatal("parse is not deterministic")
		}
	})
}

// FuzzNormalizeURI: normal forms are fixed points.
func FuzzNormalizeURI(f *testing.F) {
	for _, s := range []string{"https://GW.example.com:443/%7e/%2f", "http://[::1]:80", "http://a/b?c#d", "https://a:0/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		n, err := NormalizeURI(in)
		if err != nil {
			return
		}
		m, err := NormalizeURI(n)
		if err != nil || m != n {
			t.Fatalf("NormalizeURI(%q) = %q, then %q, %v", in, n, m, err)
		}
	})
}
