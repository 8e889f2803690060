// Package metrics implements counters, histograms and function-backed
// gauges and counters, exposed in the Prometheus text exposition format
// 0.0.4 (https://prometheus.io/docs/instrumenting/exposition_formats/).
//
// It is a small replacement for prometheus/client_golang, which would link
// expvar and protobuf into the binary. Updates are lock-free atomics; a
// labelled child is found by a lock-free map read, without allocating.
//
// The exposition, line by line, for each family in name order (a family
// with no samples yet is left out):
//
//	# HELP <name> <help, with \ as \\ and newline as \n>
//	# TYPE <name> counter|gauge|histogram
//	<name>{<label>="<value>",...} <value>
//
// Label values escape \ as \\, " as \" and newline as \n; invalid UTF-8
// becomes U+FFFD. Samples of a family are sorted by their label values. A
// histogram writes, per child, one <name>_bucket sample per upper bound,
// le last among the labels, cumulative and ending with le="+Inf", then
// <name>_sum and <name>_count. Values are decimal integers for counters
// and bucket counts, and strconv 'g' floats (+Inf, -Inf, NaN) otherwise.
//
// Registration errors (an invalid or taken name, a bad label or bucket
// set) and calls to With with the wrong number of values are programming
// errors and panic.
package metrics

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// ContentType is the media type of the exposition.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Registry holds metric families and writes their exposition. The zero
// value is an empty registry, ready to use. It is safe for concurrent
// use.
type Registry struct {
	mu       sync.Mutex
	families []*family       // sorted by name
	taken    map[string]bool // every sample name in use
}

// family is one metric family: its header and what appends its samples.
type family struct {
	name, help, typ string
	samples         func(b []byte, name string) []byte
}

// register adds a family, reserving its sample names (the name and any
// suffixed names a histogram also writes).
func (r *Registry) register(f *family, labels []string, suffixes ...string) {
	if !validMetricName(f.name) {
		panic(fmt.Sprintf("metrics: invalid metric name %q", f.name))
	}
	checkLabels(f.name, labels, f.typ == "histogram")
	f.help = strings.ToValidUTF8(f.help, "\uFFFD")
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.taken == nil {
		r.taken = map[string]bool{}
	}
	names := []string{f.name}
	for _, s := range suffixes {
		names = append(names, f.name+s)
	}
	for _, n := range names {
		if r.taken[n] {
			panic(fmt.Sprintf("metrics: %q registered twice", n))
		}
	}
	for _, n := range names {
		r.taken[n] = true
	}
	i, _ := slices.BinarySearchFunc(r.families, f.name, func(g *family, name string) int { return strings.Compare(g.name, name) })
	r.families = slices.Insert(r.families, i, f)
}

func checkLabels(name string, labels []string, histogram bool) {
	for i, l := range labels {
		if !validLabelName(l) {
			panic(fmt.Sprintf("metrics: %s: invalid label name %q", name, l))
		}
		if histogram && l == "le" {
			panic(fmt.Sprintf("metrics: %s: label le is reserved in a histogram", name))
		}
		if slices.Contains(labels[:i], l) {
			panic(fmt.Sprintf("metrics: %s: label %q given twice", name, l))
		}
	}
}

// validMetricName reports whether name matches [a-zA-Z_:][a-zA-Z0-9_:]*.
func validMetricName(name string) bool {
	for i, c := range []byte(name) {
		if !(c == '_' || c == ':' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return name != ""
}

// validLabelName reports whether name matches [a-zA-Z_][a-zA-Z0-9_]* and
// does not start with the reserved __.
func validLabelName(name string) bool {
	return !strings.Contains(name, ":") && validMetricName(name) && !strings.HasPrefix(name, "__")
}

// NewGaugeFunc registers a gauge whose value is f's result at each
// exposition, for a value owned elsewhere (a queue depth). f must be safe
// for concurrent use and quick: it runs on every scrape.
func (r *Registry) NewGaugeFunc(name, help string, f func() float64) {
	r.newFunc(name, help, "gauge", f)
}

// NewCounterFunc registers a counter whose value is f's result at each
// exposition, for a count kept elsewhere (cache hits). f must never
// decrease, be safe for concurrent use, and be quick.
func (r *Registry) NewCounterFunc(name, help string, f func() float64) {
	r.newFunc(name, help, "counter", f)
}

func (r *Registry) newFunc(name, help, typ string, f func() float64) {
	if f == nil {
		panic(fmt.Sprintf("metrics: %s: nil function", name))
	}
	r.register(&family{name: name, help: help, typ: typ, samples: func(b []byte, name string) []byte {
		b = append(b, name...)
		b = append(b, ' ')
		return append(appendFloat(b, f()), '\n')
	}}, nil)
}

// WriteTo writes the exposition of every family to w in one Write.
// Registration may go on meanwhile: a family registered during the call
// may be left out.
func (r *Registry) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(r.AppendText(nil))
	return int64(n), err
}

// AppendText appends the exposition to b.
func (r *Registry) AppendText(b []byte) []byte {
	r.mu.Lock()
	fams := slices.Clone(r.families)
	r.mu.Unlock()
	for _, f := range fams {
		start := len(b)
		b = append(b, "# HELP "...)
		b = append(b, f.name...)
		b = append(b, ' ')
		b = appendEscaped(b, f.help, false)
		b = append(b, "\n# TYPE "...)
		b = append(b, f.name...)
		b = append(b, ' ')
		b = append(b, f.typ...)
		b = append(b, '\n')
		header := len(b)
		if b = f.samples(b, f.name); len(b) == header {
			b = b[:start]
		}
	}
	return b
}

// Handler serves the exposition to GET and HEAD.
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		b := r.AppendText(nil)
		w.Header().Set("Content-Type", ContentType)
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Write(b)
	})
}

// appendEscaped appends s escaped: \ and newline always, " too in a label
// value.
func appendEscaped(b []byte, s string, label bool) []byte {
	for i := range len(s) {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, `\\`...)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '"' && label:
			b = append(b, `\"`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

// appendSeries appends a sample's name and labels (then le, if not
// empty) and the space before its value.
func appendSeries(b []byte, name string, labels, values []string, le string) []byte {
	b = append(b, name...)
	if len(labels) > 0 || le != "" {
		b = append(b, '{')
		for i, l := range labels {
			b = appendLabel(b, l, values[i])
			b = append(b, ',')
		}
		if le != "" {
			b = appendLabel(b, "le", le)
			b = append(b, ',')
		}
		b[len(b)-1] = '}'
	}
	return append(b, ' ')
}

func appendLabel(b []byte, name, value string) []byte {
	b = append(b, name...)
	b = append(b, `="`...)
	b = appendEscaped(b, value, true)
	return append(b, '"')
}

func appendFloat(b []byte, v float64) []byte {
	switch {
	case math.IsInf(v, +1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	case math.IsNaN(v):
		return append(b, "NaN"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}
