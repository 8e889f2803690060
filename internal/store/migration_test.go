package store_test

import (
	"strings"
	"testing"
	"testing/fstest"

	"latchkey/internal/store"
)

func TestMigrations(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	ms, err := store.Migrations(fstest.MapFS{
		"m/0002_b.sql": file("B"), "m/0001_a.sql": file("A"), "m/README": file("not sql"),
	}, "m")
	if err != nil || len(ms) != 2 || ms[0].Version != 1 || ms[0].SQL != "A" || ms[1].Name != "0002_b.sql" {
		t.Fatalf("Migrations = %+v, %v", ms, err)
	}
	for _, tc := range []struct {
		name string
		fsys fstest.MapFS
		want string
	}{
		{"gap", fstest.MapFS{"m/0001_a.sql": file(""), "m/0003_c.sql": file("")}, "want version 2"},
		{"misnamed", fstest.MapFS{"m/1_a.sql": file("")}, `bad migration name "1_a.sql"`},
		{"no number", fstest.MapFS{"m/abcd_a.sql": file("")}, "bad migration name"},
		{"no underscore", fstest.MapFS{"m/0001.sql": file("")}, "bad migration name"},
	} {
		if _, err := store.Migrations(tc.fsys, "m"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}
