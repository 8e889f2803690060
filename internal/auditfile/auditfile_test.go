package auditfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"latchkey/internal/audit"
)

func leaf(i int) []byte {
	return audit.Record{Time: time.Unix(1700000000, int64(i)), Action: "token.issue", Contractor: fmt.Sprint("c", i)}.Encode()
}

func export(n int) []string {
	var lines []string
	for i := range n {
		b, _ := json.Marshal(struct {
			Index int64  `json:"index"`
			Leaf  []byte `json:"leaf"`
		}{int64(i), leaf(i)})
		lines = append(lines, string(b)+"\n")
	}
	return lines
}

// TestRecordRoot checks RecordRoot against tlog.CheckRecord for every
// record of trees up to 33 records.
func TestRecordRoot(t *testing.T) {
	tr, err := ReadExport(strings.NewReader(strings.Join(export(33), "")), nil)
	if err != nil {
		t.Fatal(err)
	}
	for size := int64(1); size <= 33; size++ {
		want, _ := tr.TreeHash(size)
		for i := int64(0); i < size; i++ {
			p, err := tlog.ProveRecord(size, i, tr.hashes)
			if err != nil {
				t.Fatal(err)
			}
			got, err := RecordRoot(p, size, i, tlog.RecordHash(leaf(int(i))))
			if err != nil || got != want {
				t.Fatalf("RecordRoot(size %d, index %d) = %v, %v; want %v", size, i, got, err, want)
			}
			if len(p) > 0 {
				if r, err := RecordRoot(p[1:], size, i, tlog.RecordHash(leaf(int(i)))); err == nil && r == want {
					t.Fatalf("a proof missing a hash gives the root at size %d index %d", size, i)
				}
			}
		}
	}
}

func TestReadExportRejects(t *testing.T) {
	good := export(5)
	tr, err := ReadExport(strings.NewReader(strings.Join(good, "")), nil)
	if err != nil || tr.Size() != 5 {
		t.Fatalf("good export: %v, size %d", err, tr.Size())
	}
	root, _ := tr.TreeHash(5)
	swap := append([]string{}, good...)
	swap[1], swap[2] = swap[2], swap[1]
	tests := []struct {
		name  string
		lines []string
		index int64
	}{
		{"missing", append(append([]string{}, good[:2]...), good[3:]...), 2},
		{"reordered", swap, 1},
		{"repeated", append(append([]string{}, good[:3]...), good[2:]...), 3},
		{"not json", append(append([]string{}, good[:1]...), "x\n"), 1},
		{"unknown field", []string{`{"index":0,"leaf":"AQ==","x":1}` + "\n"}, 0},
		{"no leaf", []string{`{"index":0}` + "\n"}, 0},
		{"bad leaf", []string{`{"index":0,"leaf":"AQ=="}` + "\n"}, 0},
		{"trailing", []string{strings.TrimSuffix(good[0], "\n") + " {}\n"}, 0},
		{"wrong hash", []string{strings.TrimSuffix(good[0], "}\n") + `,"hash":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}` + "\n"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadExport(strings.NewReader(strings.Join(tt.lines, "")), nil)
			var ve *audit.VerifyError
			if !errors.As(err, &ve) || ve.Index != tt.index {
				t.Fatalf("err = %v, want a VerifyError at %d", err, tt.index)
			}
		})
	}
	if err := tr.Check(audit.Checkpoint{Size: 5, Root: root}); err != nil {
		t.Errorf("Check(own root) = %v", err)
	}
	if err := tr.Check(audit.Checkpoint{Size: 4, Root: root}); !errors.Is(err, audit.ErrNotExtend) {
		t.Errorf("Check(wrong root) = %v, want ErrNotExtend", err)
	}
	var ve *audit.VerifyError
	if err := tr.Check(audit.Checkpoint{Size: 6, Root: root}); !errors.As(err, &ve) || ve.Index != 5 {
		t.Errorf("Check(longer) = %v, want a VerifyError at 5", err)
	}
}
