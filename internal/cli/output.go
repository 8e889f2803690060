package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// Output formats.
const (
	formatTable = "table" // aligned columns with capitalised headers
	formatJSON  = "json"  // an array of objects for listings, one object otherwise
	formatText  = "text"  // the bare result: a token text, an id, one line
)

// output is the value of a command's --output flag: one of the formats the
// command allows, the first being the default. An unknown format is a
// flag error, so a usage error (exit 2) before any request.
type output struct {
	value   string
	allowed []string
}

func (o *output) String() string { return o.value }
func (o *output) Type() string   { return "format" }

func (o *output) Set(s string) error {
	if !slices.Contains(o.allowed, s) {
		return fmt.Errorf("want %s", strings.Join(o.allowed, " or "))
	}
	o.value = s
	return nil
}

func (o *output) json() bool { return o.value == formatJSON }

// addOutput adds --output (-o) to c with the given formats, the first
// being the default.
func addOutput(c *cobra.Command, formats ...string) *output {
	o := &output{value: formats[0], allowed: formats}
	c.Flags().VarP(o, "output", "o", "output format: "+strings.Join(formats, " or "))
	_ = c.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(formats, cobra.ShellCompDirectiveNoFileComp))
	return o
}

// writeJSON writes v as indented JSON followed by a newline.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// nonNil returns s, or an empty slice if s is nil, so that JSON shows []
// rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// table writes aligned columns. Cells are made single-line; an empty cell
// prints as "-".
type table struct {
	tw *tabwriter.Writer
}

func newTable(w io.Writer, headers ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)}
	t.row(headers...)
	return t
}

func (t *table) row(cells ...string) {
	for i, c := range cells {
		if i > 0 {
			io.WriteString(t.tw, "\t")
		}
		io.WriteString(t.tw, cell(c))
	}
	io.WriteString(t.tw, "\n")
}

func (t *table) flush() error { return t.tw.Flush() }

// cell makes s fit in one table cell.
func cell(s string) string {
	s = oneLine(s)
	if s == "" {
		return "-"
	}
	return s
}

// fields writes one "KEY  value" line per pair, aligned: the table form of
// a single object.
func fields(w io.Writer, pairs ...[2]string) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, p := range pairs {
		fmt.Fprintf(tw, "%s\t%s\n", p[0], cell(p[1]))
	}
	return tw.Flush()
}

// when formats t in RFC 3339, UTC; the zero time is absent.
func when(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// whenPtr formats *t like when; nil is absent.
func whenPtr(t *time.Time) string {
	if t == nil {
		return ""
	}
	return when(*t)
}

// list joins values for one cell. Scopes may contain commas (GET,HEAD), so
// they are separated by spaces.
func list(s []string) string { return strings.Join(s, " ") }
