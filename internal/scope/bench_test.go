package scope

import (
	"fmt"
	"testing"
)

// benchSet returns a set of ten scopes whose only match for the request
// ("svc9", "DELETE", "/v1/things/123/notes/456") is the last one.
func benchSet(tb testing.TB) Set {
	var ss []string
	for i := range 9 {
		ss = append(ss, fmt.Sprintf("svc%d:read:/v1/things/*/notes/**", i))
	}
	ss = append(ss, "svc9:GET,DELETE:/v1/things/*/notes/*")
	return mustSet(tb, ss...)
}

func BenchmarkSetMatch(b *testing.B) {
	set := benchSet(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := set.Match("svc9", "DELETE", "/v1/things/123/notes/456"); !ok {
			b.Fatal("no match")
		}
	}
}

func BenchmarkSetMatchMiss(b *testing.B) {
	set := mustSet(b,
		"*:write:/v1/things/*/notes/**", "a:*:/**", "b:*:/**", "c:write:/v1/*/*/*/x",
		"*:GET:/v2/**", "*:GET:/v1/things/*/notes", "*:GET:/v1/things/*/notes/*/x",
		"*:GET:/v1/things/1/notes/*", "*:HEAD:/**", "*:GET:/v1/things/*/notes/*/y/**",
	)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := set.Match("svc9", "GET", "/v1/things/123/notes/456"); ok {
			b.Fatal("unexpected match")
		}
	}
}

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("billing:GET,POST:/v1/invoices/*/notes/**"); err != nil {
			b.Fatal(err)
		}
	}
}
