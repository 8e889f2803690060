package scope

import "testing"

func TestRequestScope(t *testing.T) {
	r, err := Parse(Request)
	if err != nil {
		t.Fatalf("Parse(%q): %v", Request, err)
	}
	if !r.IsRequest() || r.IsAdmin() || r.String() != Request || r.Path() != "" || r.Service() != "latchkey" {
		t.Errorf("request scope = %+v (String %q)", r, r)
	}
	for _, s := range []string{"*:*:/**", "latchkey:*:/**", "admin:*"} {
		if w, err := Parse(s); err == nil && (w.Covers(r) || r.Covers(w)) {
			t.Errorf("%q and the request scope cover one another", s)
		}
	}
	if !r.Covers(r) {
		t.Error("the request scope does not cover itself")
	}
	if r.Match("latchkey", "GET", "/") || (Set{r}).AllowsAdmin("requests", "write") {
		t.Error("the request scope allows a request or an admin operation")
	}
	for _, bad := range []string{"latchkey", "latchkey:", "latchkey:requests", "latchkey:request:/", "latchkey:GET:/"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) succeeded", bad)
		}
	}
	if ValidServiceName("latchkey") {
		t.Error(`"latchkey" is a valid service name`)
	}
}
