package pgwire_test

import (
	"errors"
	"strings"
	"testing"

	"latchkey/internal/pgwire"
	"latchkey/internal/scope"
)

func TestParseDatabase(t *testing.T) {
	for _, s := range []string{"billing/invoices", "a/b", "pg-1/_x$1", "pg/" + strings.Repeat("a", 63), "a/A-b"} {
		tg, err := pgwire.ParseDatabase(s)
		if err != nil || tg.String() != s {
			t.Errorf("ParseDatabase(%q) = %v, %v", s, tg, err)
		}
	}
	for _, s := range []string{"", "billing", "billing/", "/inv", "Billing/inv", "admin/inv", "latchkey/inv",
		"billing/inv/x", "billing/1inv", "billing/-inv", "billing/in v", "billing/in.v", "billing/inv%2F", "billing/\x00",
		"billing/" + strings.Repeat("a", 64), "billing.inv", "billing/ïnv", "billing//inv", "billing/*", "billing/**"} {
		if tg, err := pgwire.ParseDatabase(s); !errors.Is(err, pgwire.ErrBadDatabase) {
			t.Errorf("ParseDatabase(%q) = %v, %v; want ErrBadDatabase", s, tg, err)
		}
	}
}

func FuzzParseDatabase(f *testing.F) {
	for _, s := range []string{"billing/invoices", "a/b", "a//b", "a/b/c", "é/x", "a/" + strings.Repeat("z", 70)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tg, err := pgwire.ParseDatabase(s)
		if err != nil {
			return
		}
		if tg.String() != s {
			t.Fatalf("%q parsed to %q", s, tg)
		}
		if !scope.ValidServiceName(tg.Service) || strings.ContainsAny(tg.Database, "/*%.") {
			t.Fatalf("%q: accepted %+v", s, tg)
		}
		// The database's scope path is one literal segment.
		if _, err := scope.Parse(tg.Service + ":read:" + tg.Path()); err != nil {
			t.Fatalf("%q: scope path %q: %v", s, tg.Path(), err)
		}
	})
}

func TestMode(t *testing.T) {
	tg := pgwire.Target{Service: "pg", Database: "app"}
	for _, tc := range []struct {
		scopes []string
		mode   string
		ok     bool
	}{
		{[]string{"pg:read:/app"}, pgwire.ModeRead, true},
		{[]string{"pg:write:/app"}, pgwire.ModeWrite, true},
		{[]string{"pg:read:/app", "pg:write:/app"}, pgwire.ModeWrite, true},
		{[]string{"pg:*:/**"}, pgwire.ModeWrite, true},
		{[]string{"*:read:/*"}, pgwire.ModeRead, true},
		{[]string{"pg:GET:/app"}, "", false},
		{[]string{"pg:GET,HEAD:/app"}, "", false},
		{[]string{"pg:POST,PUT,PATCH:/app"}, "", false},
		{[]string{"pg:read:/other"}, "", false},
		{[]string{"pg:read:/app/x"}, "", false},
		{[]string{"other:write:/app"}, "", false},
		{[]string{"admin:*"}, "", false},
		{[]string{"latchkey:request"}, "", false},
		{nil, "", false},
	} {
		var set scope.Set
		if tc.scopes != nil {
			var err error
			if set, err = scope.ParseSet(tc.scopes); err != nil {
				t.Fatal(err)
			}
		}
		mode, matched, ok := pgwire.Mode(set, tg)
		if ok != tc.ok || ok && mode != tc.mode {
			t.Errorf("Mode(%v) = %q, %v; want %q, %v", tc.scopes, mode, ok, tc.mode, tc.ok)
		}
		if ok && !matched.Match("pg", "GET", "/app") && !matched.Match("pg", "POST", "/app") {
			t.Errorf("Mode(%v): matched %v", tc.scopes, matched)
		}
	}
}
