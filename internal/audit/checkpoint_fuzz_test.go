package audit_test

import (
	"encoding/base64"
	"errors"
	"fmt"
	"testing"

	"latchkey/internal/audit"
)

// FuzzParseCheckpoint: the checkpoint parsers never panic, and what
// ParseCheckpoint accepts is canonical: formatting it again gives the
// same text. ParseSigned agrees with ParseCheckpoint on the body.
func FuzzParseCheckpoint(f *testing.F) {
	f.Add("latchkey-audit-1\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n")
	f.Add("o\n12\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nextension\n")
	f.Add("o\n012\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")
	f.Add("o\n-1\nAAAA\n")
	f.Fuzz(func(t *testing.T, text string) {
		cp, err := audit.ParseCheckpoint(text)
		signed, serr := audit.ParseSigned([]byte(text + "\n— sig\n"))
		if err != nil {
			if !errors.Is(err, audit.ErrCheckpoint) {
				t.Fatalf("error %v does not wrap ErrCheckpoint", err)
			}
			return
		}
		if serr != nil || signed != cp {
			t.Fatalf("ParseSigned = %+v, %v; ParseCheckpoint = %+v", signed, serr, cp)
		}
		again := fmt.Sprintf("%s\n%d\n%s\n", cp.Origin, cp.Size, base64.StdEncoding.EncodeToString(cp.Root[:]))
		back, err := audit.ParseCheckpoint(again)
		if err != nil || back != cp {
			t.Fatalf("re-formatted %q: %+v, %v", again, back, err)
		}
	})
}
