package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"latchkey/internal/access"
)

// TestDatabaseLogins: the passwords of a postgres service come from files
// or stdin, and a refusal never echoes one.
func TestDatabaseLogins(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "ro")
	os.WriteFile(file, []byte("ro-secret\n"), 0o600)
	want := &access.DatabaseLogins{Read: access.DatabaseLogin{User: "ro", Password: "ro-secret"}, Write: access.DatabaseLogin{User: "rw", Password: "rw-secret"}}
	for _, tc := range []struct {
		name  string
		flags dbFlags
		stdin string
	}{
		{"file and stdin", dbFlags{"ro", "@" + file, "rw", "@-"}, "rw-secret\n"},
		{"both stdin", dbFlags{"ro", "@-", "rw", "@-"}, "ro-secret\nrw-secret\n"},
		{"both stdin crlf", dbFlags{"ro", "@-", "rw", "@-"}, "ro-secret\r\nrw-secret"},
	} {
		got, err := tc.flags.logins(strings.NewReader(tc.stdin))
		if err != nil || !cmp.Equal(got, want) {
			t.Errorf("%s: %+v, %v", tc.name, got, err)
		}
	}
	for _, tc := range []struct {
		name  string
		flags dbFlags
		stdin string
	}{
		{"no write user", dbFlags{"ro", "@-", "", "@-"}, "a\nb\n"},
		{"no read password", dbFlags{"ro", "", "rw", "@-"}, "b\n"},
		{"one line for two", dbFlags{"ro", "@-", "rw", "@-"}, "only-one-secret\n"},
		{"three lines", dbFlags{"ro", "@-", "rw", "@-"}, "a-secret\nb-secret\nc-secret\n"},
		{"empty file", dbFlags{"ro", "@" + filepath.Join(dir, "missing"), "rw", "@-"}, "x\n"},
		{"two lines in one", dbFlags{"ro", "@-", "rw", "@" + file}, "line1-secret\nline2-secret\n"},
	} {
		_, err := tc.flags.logins(strings.NewReader(tc.stdin))
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		if ExitCode(err) != ExitUsage || strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: %v (exit %d)", tc.name, err, ExitCode(err))
		}
	}
}

func TestRunServiceAddPostgresUsage(t *testing.T) {
	srv, seen := fakeAPI(t, 200, `{}`)
	for _, args := range [][]string{
		{"service", "add", "pg", "--upstream", "postgres://h:5432", "--read-user", "ro"},
		{"service", "add", "pg", "--upstream", "postgres://h:5432", "--read-user", "ro", "--read-password", "@-", "--write-user", "rw", "--write-password", "@-", "--credential-header", "A: b"},
	} {
		if code, _, _ := run(t, srv.URL, args...); code != ExitUsage {
			t.Errorf("%q: exit code %d, want %d", args, code, ExitUsage)
		}
	}
	if len(*seen) != 0 {
		t.Errorf("requests were sent: %q", *seen)
	}
}
