package auditfile

import (
	"errors"
	"strings"
	"testing"

	"latchkey/internal/audit"
)

// FuzzReadExport: reading an export never panics; a refusal names an
// index (a *audit.VerifyError); an accepted export re-verifies against
// its own root.
func FuzzReadExport(f *testing.F) {
	f.Add(strings.Join(export(3), ""))
	f.Add(`{"index":0,"leaf":"AQ=="}` + "\n")
	f.Add(`{"index":1}` + "\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		tr, err := ReadExport(strings.NewReader(s), nil)
		if err != nil {
			var ve *audit.VerifyError
			if !errors.As(err, &ve) && !strings.Contains(err.Error(), "read") {
				t.Fatalf("refusal %v names no index", err)
			}
			return
		}
		root, err := tr.TreeHash(tr.Size())
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.Check(audit.Checkpoint{Size: tr.Size(), Root: root}); err != nil {
			t.Fatalf("export does not match its own root: %v", err)
		}
	})
}
