package metrics_test

import (
	"bytes"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"latchkey/internal/metrics"
)

// parse parses an exposition strictly (legacy names, as Prometheus
// scrapes format 0.0.4).
func parse(t *testing.T, text []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, text)
	}
	return fams
}

func labelsOf(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

func TestGolden(t *testing.T) {
	var r metrics.Registry
	reqs := r.NewCounterVec("latchkey_requests_total", "Requests by service, decision and reason.", "service", "decision", "reason")
	reqs.With("billing", "allow", "").Add(3)
	reqs.With("billing", "deny", "scope_not_covered").Inc()
	reqs.With("auth", "allow", "").Inc()
	lat := r.NewHistogramVec("latchkey_request_duration_seconds", "Latency.", []float64{0.1, 1}, "service")
	lat.With("billing").Observe(0.05)
	lat.With("billing").Observe(0.1) // le is inclusive
	lat.With("billing").Observe(3)
	r.NewGaugeFunc("latchkey_audit_queue_depth", "Records waiting.", func() float64 { return 7 })
	r.NewCounterFunc("latchkey_cache_hits_total", "Cache hits.", func() float64 { return 1e6 })
	r.NewCounterVec("latchkey_unused_total", "Never incremented: left out.", "x")
	single := r.NewCounterVec("latchkey_single_total", "No labels.")
	single.With().Inc()

	var buf bytes.Buffer
	if _, err := r.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	want := `# HELP latchkey_audit_queue_depth Records waiting.
# TYPE latchkey_audit_queue_depth gauge
latchkey_audit_queue_depth 7
# HELP latchkey_cache_hits_total Cache hits.
# TYPE latchkey_cache_hits_total counter
latchkey_cache_hits_total 1e+06
# HELP latchkey_request_duration_seconds Latency.
# TYPE latchkey_request_duration_seconds histogram
latchkey_request_duration_seconds_bucket{service="billing",le="0.1"} 2
latchkey_request_duration_seconds_bucket{service="billing",le="1"} 2
latchkey_request_duration_seconds_bucket{service="billing",le="+Inf"} 3
latchkey_request_duration_seconds_sum{service="billing"} 3.15
latchkey_request_duration_seconds_count{service="billing"} 3
# HELP latchkey_requests_total Requests by service, decision and reason.
# TYPE latchkey_requests_total counter
latchkey_requests_total{service="auth",decision="allow",reason=""} 1
latchkey_requests_total{service="billing",decision="allow",reason=""} 3
latchkey_requests_total{service="billing",decision="deny",reason="scope_not_covered"} 1
# HELP latchkey_single_total No labels.
# TYPE latchkey_single_total counter
latchkey_single_total 1
`
	if diff := cmp.Diff(want, buf.String()); diff != "" {
		t.Errorf("exposition (-want +got):\n%s", diff)
	}
	fams := parse(t, buf.Bytes())
	if len(fams) != 5 {
		t.Errorf("parsed %d families, want 5", len(fams))
	}
	h := fams["latchkey_request_duration_seconds"].GetMetric()[0].GetHistogram()
	if h.GetSampleCount() != 3 || h.GetSampleSum() != 3.15 || len(h.GetBucket()) != 3 {
		t.Errorf("parsed histogram %v", h)
	}
}

// TestParsedValues checks every value round-trips through the reference
// parser.
func TestParsedValues(t *testing.T) {
	var r metrics.Registry
	c := r.NewCounterVec("c_total", "c", "a", "b")
	want := map[[2]string]uint64{}
	for i := range 20 {
		k := [2]string{fmt.Sprint("a", i%4), fmt.Sprint("b", i%5)}
		c.With(k[0], k[1]).Add(uint64(i + 1))
		want[k] += uint64(i + 1)
	}
	r.NewGaugeFunc("g", "g", func() float64 { return math.Inf(-1) })
	r.NewGaugeFunc("g_nan", "g", func() float64 { return math.NaN() })
	r.NewGaugeFunc("g_small", "g", func() float64 { return 1.5e-9 })
	fams := parse(t, r.AppendText(nil))
	got := map[[2]string]uint64{}
	for _, m := range fams["c_total"].GetMetric() {
		l := labelsOf(m)
		got[[2]string{l["a"], l["b"]}] = uint64(m.GetCounter().GetValue())
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
	if v := fams["g"].GetMetric()[0].GetGauge().GetValue(); !math.IsInf(v, -1) {
		t.Errorf("g = %v", v)
	}
	if v := fams["g_nan"].GetMetric()[0].GetGauge().GetValue(); !math.IsNaN(v) {
		t.Errorf("g_nan = %v", v)
	}
	if v := fams["g_small"].GetMetric()[0].GetGauge().GetValue(); v != 1.5e-9 {
		t.Errorf("g_small = %v", v)
	}
}

// TestHostileLabelValues checks that client-influenced label values are
// escaped, cannot inject lines or labels, and come back unchanged (or,
// for invalid UTF-8, with U+FFFD).
func TestHostileLabelValues(t *testing.T) {
	hostile := []struct{ in, want string }{
		{`a"b`, `a"b`},
		{`a\b`, `a\b`},
		{"a\nb", "a\nb"},
		{`x"} 1` + "\n" + `evil_total 666`, `x"} 1` + "\n" + `evil_total 666`},
		{`\"`, `\"`},
		{`\n`, `\n`},
		{`",other="x`, `",other="x`},
		{"tab\there\r", "tab\there\r"},
		{"bad\xffutf8", "bad\uFFFDutf8"},
		{"é日本", "é日本"},
		{"", ""},
		{strings.Repeat("long", 100), strings.Repeat("long", 100)}, // longer than the key buffer
	}
	var r metrics.Registry
	c := r.NewCounterVec("c_total", "help with \\ and \n newline and \"quotes\"", "service")
	h := r.NewHistogramVec("h_seconds", "h", nil, "service")
	for i, v := range hostile {
		c.With(v.in).Add(uint64(i + 1))
		h.With(v.in).Observe(float64(i))
	}
	text := r.AppendText(nil)
	fams := parse(t, text)
	if len(fams) != 2 {
		t.Fatalf("families %v: an injected line?\n%s", fams, text)
	}
	if got, want := fams["c_total"].GetHelp(), "help with \\ and \n newline and \"quotes\""; got != want {
		t.Errorf("help %q, want %q", got, want)
	}
	got := map[string]uint64{}
	for _, m := range fams["c_total"].GetMetric() {
		if len(m.GetLabel()) != 1 {
			t.Errorf("labels %v: injected?", m.GetLabel())
		}
		got[labelsOf(m)["service"]] = uint64(m.GetCounter().GetValue())
	}
	want := map[string]uint64{}
	for i, v := range hostile {
		want[v.want] = uint64(i + 1)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("values (-want +got):\n%s", diff)
	}
	if n := len(fams["h_seconds"].GetMetric()); n != len(hostile) {
		t.Errorf("%d histograms, want %d", n, len(hostile))
	}
}

// TestInvalidUTF8Merges checks that values that differ only in invalid
// bytes share one child, so the exposition never has a duplicate series.
func TestInvalidUTF8Merges(t *testing.T) {
	var r metrics.Registry
	c := r.NewCounterVec("c_total", "c", "v")
	c.With("a\xff").Inc()
	c.With("a\xfe").Inc()
	if c.With("a\xff") != c.With("a\uFFFD") {
		t.Error("invalid UTF-8 made a second child")
	}
	fams := parse(t, r.AppendText(nil))
	if m := fams["c_total"].GetMetric(); len(m) != 1 || m[0].GetCounter().GetValue() != 2 {
		t.Errorf("metrics %v", m)
	}
}

// TestKeysDoNotCollide checks that label values are not joined ambiguously.
func TestKeysDoNotCollide(t *testing.T) {
	var r metrics.Registry
	c := r.NewCounterVec("c_total", "c", "a", "b")
	pairs := [][2]string{{"ab", ""}, {"a", "b"}, {"", "ab"}, {"a\x01", "b"}, {"a", "\x01b"}, {"a\xffb", ""}}
	seen := map[*metrics.Counter]bool{}
	for _, p := range pairs {
		ch := c.With(p[0], p[1])
		if seen[ch] {
			t.Errorf("%q shares a child with another pair", p)
		}
		seen[ch] = true
		if c.With(p[0], p[1]) != ch {
			t.Errorf("%q: With is not stable", p)
		}
	}
}

func TestHistogramBuckets(t *testing.T) {
	var r metrics.Registry
	bounds := []float64{0.001, 0.01, 0.1, 1, math.Inf(+1)}
	h := r.NewHistogramVec("h_seconds", "h", bounds).With()
	obs := []float64{0, 0.001, 0.0011, 0.05, 0.1, 0.5, 1, 1.0001, 100, -1}
	for _, v := range obs {
		h.Observe(v)
	}
	fams := parse(t, r.AppendText(nil))
	got := fams["h_seconds"].GetMetric()[0].GetHistogram()
	var cum []uint64
	var upper []float64
	for _, b := range got.GetBucket() {
		cum = append(cum, b.GetCumulativeCount())
		upper = append(upper, b.GetUpperBound())
	}
	if diff := cmp.Diff([]float64{0.001, 0.01, 0.1, 1, math.Inf(+1)}, upper); diff != "" {
		t.Errorf("bounds (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]uint64{3, 4, 6, 8, 10}, cum); diff != "" {
		t.Errorf("cumulative counts (-want +got):\n%s", diff)
	}
	var sum float64
	for _, v := range obs {
		sum += v
	}
	if got.GetSampleCount() != uint64(len(obs)) || math.Abs(got.GetSampleSum()-sum) > 1e-9 {
		t.Errorf("count %d sum %v, want %d %v", got.GetSampleCount(), got.GetSampleSum(), len(obs), sum)
	}
	if text := string(r.AppendText(nil)); !strings.Contains(text, `h_seconds_bucket{le="+Inf"} 10`) {
		t.Errorf("no +Inf bucket:\n%s", text)
	}
}

func TestDefaultBuckets(t *testing.T) {
	var r metrics.Registry
	r.NewHistogramVec("h_seconds", "h", nil).With().Observe(0.0004)
	fams := parse(t, r.AppendText(nil))
	b := fams["h_seconds"].GetMetric()[0].GetHistogram().GetBucket()
	if len(b) != len(metrics.DefaultBuckets)+1 || b[0].GetUpperBound() != 0.0005 || b[len(b)-2].GetUpperBound() != 10 ||
		b[0].GetCumulativeCount() != 1 {
		t.Errorf("buckets %v", b)
	}
}

// TestConcurrent checks exact totals under many writers and concurrent
// scrapes (run with -race).
func TestConcurrent(t *testing.T) {
	var r metrics.Registry
	c := r.NewCounterVec("c_total", "c", "service")
	h := r.NewHistogramVec("h_seconds", "h", []float64{1, 2}, "service")
	const workers, each = 32, 2000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			svc := fmt.Sprint("s", w%4)
			for i := range each {
				c.With(svc).Inc()
				c.With("all").Add(2)
				h.With(svc).Observe(float64(i % 3)) // 0, 1, 2: bucket le=1 gets 2/3
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			parse(t, r.AppendText(nil))
		}
	})
	wg.Wait()
	fams := parse(t, r.AppendText(nil))
	for _, m := range fams["c_total"].GetMetric() {
		want := float64(workers / 4 * each)
		if labelsOf(m)["service"] == "all" {
			want = 2 * workers * each
		}
		if got := m.GetCounter().GetValue(); got != want {
			t.Errorf("%v = %v, want %v", labelsOf(m), got, want)
		}
	}
	for _, m := range fams["h_seconds"].GetMetric() {
		hist := m.GetHistogram()
		n := uint64(workers / 4 * each)
		var sum float64
		var le1 uint64
		for i := range each {
			sum += float64(i % 3)
			if i%3 <= 1 {
				le1++
			}
		}
		sum *= workers / 4
		le1 *= workers / 4
		if hist.GetSampleCount() != n || hist.GetSampleSum() != sum || hist.GetBucket()[0].GetCumulativeCount() != le1 {
			t.Errorf("%v: count %d sum %v le=1 %d; want %d %v %d", labelsOf(m), hist.GetSampleCount(), hist.GetSampleSum(),
				hist.GetBucket()[0].GetCumulativeCount(), n, sum, le1)
		}
	}
}

// TestConcurrentRegistration checks that children and families can be
// added while scrapes run.
func TestConcurrentRegistration(t *testing.T) {
	var r metrics.Registry
	c := r.NewCounterVec("c_total", "c", "n")
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			r.NewGaugeFunc(fmt.Sprint("g", w), "g", func() float64 { return 1 })
			for i := range 200 {
				c.With(fmt.Sprint(i)).Inc()
			}
		})
		wg.Go(func() { r.AppendText(nil) })
	}
	wg.Wait()
	fams := parse(t, r.AppendText(nil))
	if n := len(fams["c_total"].GetMetric()); n != 200 || len(fams) != 9 {
		t.Errorf("%d children, %d families", n, len(fams))
	}
	for _, m := range fams["c_total"].GetMetric() {
		if m.GetCounter().GetValue() != 8 {
			t.Errorf("%v = %v", labelsOf(m), m.GetCounter().GetValue())
		}
	}
}

func TestRegistrationPanics(t *testing.T) {
	tests := []struct {
		name     string
		register func(r *metrics.Registry)
	}{
		{"empty name", func(r *metrics.Registry) { r.NewCounterVec("", "h") }},
		{"name starts with digit", func(r *metrics.Registry) { r.NewCounterVec("1a", "h") }},
		{"name with dash", func(r *metrics.Registry) { r.NewCounterVec("a-b", "h") }},
		{"name with space", func(r *metrics.Registry) { r.NewGaugeFunc("a b", "h", func() float64 { return 0 }) }},
		{"name with newline", func(r *metrics.Registry) { r.NewCounterVec("a\nb", "h") }},
		{"name non-ASCII", func(r *metrics.Registry) { r.NewCounterVec("café", "h") }},
		{"label empty", func(r *metrics.Registry) { r.NewCounterVec("a", "h", "") }},
		{"label with colon", func(r *metrics.Registry) { r.NewCounterVec("a", "h", "x:y") }},
		{"label reserved", func(r *metrics.Registry) { r.NewCounterVec("a", "h", "__name__") }},
		{"label starts with digit", func(r *metrics.Registry) { r.NewCounterVec("a", "h", "0x") }},
		{"label twice", func(r *metrics.Registry) { r.NewCounterVec("a", "h", "x", "y", "x") }},
		{"histogram le", func(r *metrics.Registry) { r.NewHistogramVec("a", "h", nil, "le") }},
		{"buckets unsorted", func(r *metrics.Registry) { r.NewHistogramVec("a", "h", []float64{1, 0.5}) }},
		{"buckets repeated", func(r *metrics.Registry) { r.NewHistogramVec("a", "h", []float64{1, 1}) }},
		{"bucket NaN", func(r *metrics.Registry) { r.NewHistogramVec("a", "h", []float64{math.NaN()}) }},
		{"bucket -Inf", func(r *metrics.Registry) { r.NewHistogramVec("a", "h", []float64{math.Inf(-1), 1}) }},
		{"nil func", func(r *metrics.Registry) { r.NewGaugeFunc("a", "h", nil) }},
		{"duplicate", func(r *metrics.Registry) { r.NewCounterVec("a", "h"); r.NewCounterVec("a", "h") }},
		{"duplicate across kinds", func(r *metrics.Registry) {
			r.NewCounterVec("a", "h")
			r.NewGaugeFunc("a", "h", func() float64 { return 0 })
		}},
		{"histogram suffix taken", func(r *metrics.Registry) { r.NewCounterVec("a_count", "h"); r.NewHistogramVec("a", "h", nil) }},
		{"histogram takes suffix", func(r *metrics.Registry) { r.NewHistogramVec("a", "h", nil); r.NewCounterVec("a_bucket", "h") }},
		{"too few values", func(r *metrics.Registry) { r.NewCounterVec("a", "h", "x", "y").With("1") }},
		{"too many values", func(r *metrics.Registry) { r.NewHistogramVec("a", "h", nil).With("1") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("%s did not panic", tt.name)
				}
			}()
			var r metrics.Registry
			tt.register(&r)
		})
	}
	// A failed registration takes no name.
	var r metrics.Registry
	func() {
		defer func() { recover() }()
		r.NewHistogramVec("a", "h", nil, "le")
	}()
	r.NewHistogramVec("a", "h", nil)
}

func TestHandler(t *testing.T) {
	var r metrics.Registry
	r.NewCounterVec("c_total", "c").With().Inc()
	srv := httptest.NewServer(r.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/plain; version=0.0.4; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	format := expfmt.ResponseFormat(resp.Header)
	if format.FormatType() != expfmt.TypeTextPlain {
		t.Errorf("format %v", format)
	}
	dec := expfmt.NewDecoder(resp.Body, format)
	var mf dto.MetricFamily
	if err := dec.Decode(&mf); err != nil || mf.GetName() != "c_total" {
		t.Errorf("decode: %v %v", err, mf.GetName())
	}
	resp, err = http.Post(srv.URL, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", resp.StatusCode)
	}
}
