package access_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"latchkey/internal/access"
)

// TestAddDatabaseService: a postgres service's logins are sealed, opened
// only by DatabaseCredential, listed by role name only, and every bad
// input is refused without echoing a password or changing the store.
func TestAddDatabaseService(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	logins := access.DatabaseLogins{Read: access.DatabaseLogin{User: "app_ro", Password: "ro-pw-secret"}, Write: access.DatabaseLogin{User: "app_rw", Password: "rw-pw-secret"}}
	svc, err := e.a.AddDatabaseService(ctx, root, "appdb", "postgres://db.internal:5432?sslmode=verify-full", logins)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(svc.SealedCredential), "secret") {
		t.Fatal("the logins are stored in clear")
	}
	got, err := e.a.DatabaseCredential(svc)
	if err != nil || !cmp.Equal(got, logins) {
		t.Fatalf("DatabaseCredential = %+v, %v", got, err)
	}
	if names, err := e.a.CredentialNames(svc); err != nil || !cmp.Equal(names, []string{"read:app_ro", "write:app_rw"}) {
		t.Fatalf("CredentialNames = %v, %v", names, err)
	}
	if _, err := e.a.Credential(svc); err == nil {
		t.Fatal("a postgres service's logins opened as HTTP credential headers")
	}
	if addr, q, err := access.DatabaseAddress(svc.Upstream); err != nil || addr != "db.internal:5432" || q.Get("sslmode") != "verify-full" {
		t.Fatalf("DatabaseAddress = %q %v %v", addr, q, err)
	}
	if addr, _, _ := access.DatabaseAddress("postgresql://[::1]"); addr != "[::1]:5432" {
		t.Fatalf("default port: %q", addr)
	}
	ok := logins
	for _, tc := range []struct {
		name, svc, upstream string
		logins              access.DatabaseLogins
	}{
		{"http upstream", "db2", "https://x", ok},
		{"user in URL", "db2", "postgres://u:ro-pw-secret@h", ok},
		{"database in URL", "db2", "postgres://h/app", ok},
		{"other parameter", "db2", "postgres://h?user=x", ok},
		{"password parameter", "db2", "postgres://h?password=ro-pw-secret", ok},
		{"sslmode twice", "db2", "postgres://h?sslmode=require&sslmode=disable", ok},
		{"bad sslmode", "db2", "postgres://h?sslmode=yes", ok},
		{"bad port", "db2", "postgres://h:99999", ok},
		{"no host", "db2", "postgres:///", ok},
		{"fragment", "db2", "postgres://h#x", ok},
		{"no read user", "db2", "postgres://h", access.DatabaseLogins{Read: access.DatabaseLogin{Password: "ro-pw-secret"}, Write: ok.Write}},
		{"no write password", "db2", "postgres://h", access.DatabaseLogins{Read: ok.Read, Write: access.DatabaseLogin{User: "w"}}},
		{"NUL in password", "db2", "postgres://h", access.DatabaseLogins{Read: access.DatabaseLogin{User: "r", Password: "ro-pw-secret\x00"}, Write: ok.Write}},
		{"long user", "db2", "postgres://h", access.DatabaseLogins{Read: access.DatabaseLogin{User: strings.Repeat("r", 64), Password: "p"}, Write: ok.Write}},
		{"bad name", "Db2", "postgres://h", ok},
		{"taken name", "appdb", "postgres://h", ok},
	} {
		before := e.snapshot(t)
		_, err := e.a.AddDatabaseService(ctx, root, tc.svc, tc.upstream, tc.logins)
		if access.ReasonOf(err) == "" {
			t.Errorf("%s: err = %v, want a refusal", tc.name, err)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: error echoes a password: %v", tc.name, err)
		}
		if diff := cmp.Diff(before, e.snapshot(t)); diff != "" {
			t.Errorf("%s: refused AddDatabaseService changed the store:\n%s", tc.name, diff)
		}
	}
	// A postgres URL is not an HTTP service.
	if _, err := e.a.AddService(ctx, root, "db3", "postgres://h", nil); access.ReasonOf(err) != access.ReasonInvalid {
		t.Fatalf("AddService with a postgres upstream: %v", err)
	}
}
