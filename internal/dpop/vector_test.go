package dpop

import (
	"testing"
)

// rfcProof is the example DPoP proof of RFC 9449 section 4.2 (figure 4),
// by the key whose thumbprint section 6.1 gives as rfcJKT.
const (
	rfcProof = "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwi" +
		"eCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5" +
		"IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JEQSIsImNy" +
		"diI6IlAtMjU2In19.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIjoiUE9TVCI" +
		"sImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0IjoxNTY" +
		"yMjYyNjE2fQ.2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg4PtFLbdLXiO" +
		"SsX0x7NVY-FNyJK70nfbV37xRZT3Lg"
	rfcJKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
)

// TestRFCVector: the RFC's example proof parses, its signature verifies
// with its jwk, its key's thumbprint is the RFC's jkt, and its claims are
// the RFC's (the time window, ath and nonce do not apply to it: it is a
// token request proof from 2019).
func TestRFCVector(t *testing.T) {
	p, err := parse(rfcProof)
	if err != nil {
		t.Fatal(err)
	}
	if p.jkt != rfcJKT {
		t.Errorf("jkt %s, want %s", p.jkt, rfcJKT)
	}
	c := p.claims
	if c.JTI != "-BwC3ESc6acc2lTc" || c.Method != "POST" || p.htu != "https://server.example.com/token" || c.IAT == nil || *c.IAT != 1562262616 || c.ATH != nil {
		t.Errorf("claims %+v, htu %s", c, p.htu)
	}
	bad := rfcProof[:len(rfcProof)-10] + "AAAAAAAAAg"
	if _, err := parse(bad); err == nil {
		t.Error("the example with another signature verified")
	}
}
