package loadgen

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestRun runs a tiny load end to end. It checks that every target served
// requests without a failure and that the report adds up; it asserts no
// timing.
func TestRun(t *testing.T) {
	var progress bytes.Buffer
	cfg := Config{Conns: 4, Duration: 200 * time.Millisecond, Rounds: 2, Tokens: 50, Dir: t.TempDir(), Progress: &progress, AccessLog: true}
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tg := range rep.Targets {
		names = append(names, tg.Name)
		if tg.Errors != 0 || tg.FirstError != "" {
			t.Errorf("%s: %d errors, first %q", tg.Name, tg.Errors, tg.FirstError)
		}
		if len(tg.Rounds) != cfg.Rounds {
			t.Errorf("%s: %d rounds, want %d", tg.Name, len(tg.Rounds), cfg.Rounds)
		}
		var n int64
		for _, r := range tg.Rounds {
			n += r.Requests
			if r.Requests == 0 || r.RPS <= 0 || r.P50 <= 0 || r.P99 < r.P50 || r.Elapsed < cfg.Duration {
				t.Errorf("%s: implausible round %+v", tg.Name, r)
			}
		}
		if n != tg.Requests || tg.RPS <= 0 || tg.P50 <= 0 || tg.P99 < tg.P50 || tg.XBare <= 0 {
			t.Errorf("%s: implausible summary %+v", tg.Name, tg)
		}
		gateway := strings.HasPrefix(tg.Name, "gateway")
		if lookups := tg.CacheHits + tg.CacheMisses; gateway && lookups < uint64(n) || !gateway && lookups != 0 {
			t.Errorf("%s: %d token lookups (%d hits), %d requests", tg.Name, lookups, tg.CacheHits, n)
		}
	}
	if diff := cmp.Diff([]string{Upstream, Bare, GatewayAudit, GatewayNoAudit, BareControl}, names); diff != "" {
		t.Errorf("targets (-want +got):\n%s", diff)
	}
	if rep.Targets[1].XBare != 1 || rep.Targets[1].AddedP99 != 0 {
		t.Errorf("bare against itself: x%v, %v added", rep.Targets[1].XBare, rep.Targets[1].AddedP99)
	}
	if rep.Errors() != 0 {
		t.Errorf("Errors() = %d", rep.Errors())
	}
	if m := rep.Memory; m.CachedTokens != 50 || m.RSS <= 0 || m.HWM < m.RSS || m.PeakEnd < m.HWM || m.HeapLive <= 0 {
		t.Errorf("implausible memory %+v", m)
	}
	if got := strings.Count(progress.String(), "round "); got != cfg.Rounds {
		t.Errorf("progress has %d round lines, want %d:\n%s", got, cfg.Rounds, progress.String())
	}
}

// TestRunCountsFailures checks that refused requests are reported: tokens
// that the gateway does not know are answered 401.
func TestRunCountsFailures(t *testing.T) {
	cfg := Config{Conns: 2, Duration: 500 * time.Millisecond, Rounds: 1, Tokens: 3, Dir: t.TempDir()}
	r := testRig(t, cfg)
	// First, so that connection 0 sends it first, however loaded the machine.
	r.auths = append([]string{"Bearer lk_unknown"}, r.auths...)
	gw := r.targets[2]
	res := gw.round(context.Background(), cfg.Conns, cfg.Duration, r.auths)
	if res.Errors == 0 || gw.errs.Load() != res.Errors {
		t.Errorf("round counted %d errors, target %d; want the same, above 0", res.Errors, gw.errs.Load())
	}
	if e := gw.firstErr.Load(); e == nil || !strings.Contains(*e, "401") || !strings.Contains(*e, "token_malformed") {
		t.Errorf("first error %v, want a 401 token_malformed", e)
	}
}

// TestRunSetupFails checks that a failed setup is an error, after what
// was started is closed again.
func TestRunSetupFails(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), Config{Dir: filepath.Join(file, "dir")}); err == nil {
		t.Error("Run with a data directory under a file: no error")
	}
}

func TestQuantile(t *testing.T) {
	s := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	tests := []struct {
		q    float64
		want time.Duration
	}{{0.5, 5}, {0.99, 10}, {0.1, 1}, {0.11, 2}, {1, 10}, {0, 1}}
	for _, tt := range tests {
		if got := quantile(s, tt.q); got != tt.want {
			t.Errorf("quantile(1..10, %v) = %v, want %v", tt.q, got, tt.want)
		}
	}
	if got := quantile(nil, 0.5); got != 0 {
		t.Errorf("quantile(nil) = %v", got)
	}
	if got := median([]float64{3, 1, 2, 10}); got != 2.5 {
		t.Errorf("median = %v, want 2.5", got)
	}
}

func TestReadStatus(t *testing.T) {
	s := readStatus()
	if s.rss < 0 || s.hwm < s.rss {
		t.Errorf("readStatus() = %+v", s)
	}
}

// TestRunDPoP: with DPoP, the gateway-dpop target serves every request
// with a proof pre-signed before the round, and is compared with the
// bearer gateway.
func TestRunDPoP(t *testing.T) {
	var progress bytes.Buffer
	cfg := Config{Conns: 4, Duration: 200 * time.Millisecond, Rounds: 1, Tokens: 20, Dir: t.TempDir(), DPoP: true, Progress: &progress}
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	last := rep.Targets[len(rep.Targets)-1]
	if last.Name != GatewayDPoP || last.Requests == 0 || last.Errors != 0 || last.XBearer <= 0 || last.XBare <= 0 {
		t.Fatalf("gateway-dpop: %+v", last)
	}
	// Whether a connection ran out depends on how fast the bearer round
	// went, so only TestPresign asserts that none did.
	if r := last.Rounds[0]; last.PreSigned == 0 || r.PreSigned != last.PreSigned || r.PreSignTook <= 0 || last.OnTheFly >= last.Requests {
		t.Errorf("gateway-dpop: %d pre-signed in %v, %d on the fly, %d requests", last.PreSigned, r.PreSignTook, last.OnTheFly, last.Requests)
	}
	if !strings.Contains(progress.String(), "proofs pre-signed") {
		t.Errorf("progress does not count the pre-signed proofs:\n%s", progress.String())
	}
	if rep.Errors() != 0 {
		t.Fatalf("%d errors", rep.Errors())
	}
}

// TestRunDPoPInline: with DPoPInline, every proof is signed in the round.
func TestRunDPoPInline(t *testing.T) {
	cfg := Config{Conns: 2, Duration: 100 * time.Millisecond, Rounds: 1, Tokens: 5, Dir: t.TempDir(), DPoP: true, DPoPInline: true}
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	last := rep.Targets[len(rep.Targets)-1]
	if last.Requests == 0 || last.Errors != 0 || last.PreSigned != 0 || last.OnTheFly != last.Requests {
		t.Errorf("gateway-dpop: %+v", last)
	}
}

// TestPresign drives a short round of gateway-dpop on proofs pre-signed
// for the fallback rate, more than a tiny round can send: every request
// is accepted, and none had to sign on the fly.
func TestPresign(t *testing.T) {
	cfg := Config{Conns: 4, Duration: 200 * time.Millisecond, Rounds: 1, Tokens: 10, Dir: t.TempDir(), DPoP: true}
	r := testRig(t, cfg)
	dp := r.targets[len(r.targets)-1]
	pre, err := r.presign(context.Background(), dp, make([][]Round, len(r.targets)))
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(cfg.Conns * proofsPerConn(proofFallbackRate, cfg.Duration, cfg.Conns)); pre.n != want {
		t.Errorf("pre-signed %d proofs, want %d", pre.n, want)
	}
	res := dp.round(context.Background(), cfg.Conns, cfg.Duration, r.authsOf(dp))
	if res.Requests == 0 || res.Errors != 0 {
		t.Errorf("round: %+v, first error %v", res, dp.firstErr.Load())
	}
	if n := dp.onTheFly(res.Requests); n != 0 {
		t.Errorf("%d proofs signed on the fly, want 0", n)
	}
}

func TestProofsPerConn(t *testing.T) {
	tests := []struct {
		rate  float64
		d     time.Duration
		conns int
		want  int
	}{
		{1000, 2 * time.Second, 10, 300},
		{0, 2 * time.Second, 10, proofMinPerConn},
		{1000, time.Hour, 1, 67500},    // only proofMaxAge counts
		{1e6, time.Second, 2, 1 << 17}, // capped at proofMaxTotal
		{1e6, time.Second, 1 << 20, 1}, // the cap leaves at least one
	}
	for _, tt := range tests {
		if got := proofsPerConn(tt.rate, tt.d, tt.conns); got != tt.want {
			t.Errorf("proofsPerConn(%v, %v, %d) = %d, want %d", tt.rate, tt.d, tt.conns, got, tt.want)
		}
	}
}

// TestPaced runs the fixed-rate phase: every target but gateway-dpop is
// driven at the rate asked, without failures, and the count of requests
// follows from the rate and duration (each connection sends on its
// schedule, not as fast as it can). It asserts no latency.
func TestPaced(t *testing.T) {
	cfg := Config{Conns: 4, Duration: 300 * time.Millisecond, Rounds: 1, Tokens: 20, Dir: t.TempDir(), Paced: true, Rate: 200}
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := rep.Paced
	if p == nil || p.Rate != 200 || len(p.Targets) != 5 {
		t.Fatalf("paced report %+v", p)
	}
	for _, tg := range p.Targets {
		// 200/s for 0.3 s over 4 connections: 15 requests each.
		if tg.Errors != 0 || tg.Requests != 60 || tg.P99 < tg.P50 || tg.P50 <= 0 {
			t.Errorf("%s: %d requests (want 60), %d errors, p50 %v p99 %v", tg.Name, tg.Requests, tg.Errors, tg.P50, tg.P99)
		}
	}
	if p.Targets[1].Name != Bare || p.Targets[1].AddedP99 != 0 {
		t.Errorf("bare against itself: %+v", p.Targets[1])
	}
}

// TestTogether runs the phase that drives every paced target at once:
// each gets its share of the rate, and the added p99 is the median of
// the rounds' differences with the bare proxy, round by round.
func TestTogether(t *testing.T) {
	cfg := Config{Conns: 4, Duration: 300 * time.Millisecond, Rounds: 3, Tokens: 20, Dir: t.TempDir(), Paced: true, Rate: 500, Together: true}
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := rep.Together
	if p == nil || p.Rate != 100 || len(p.Targets) != 5 {
		t.Fatalf("together report %+v", p)
	}
	bare := p.Targets[1]
	for _, tg := range p.Targets {
		// 100/s for 0.3 s, 3 rounds: 30 requests each.
		if tg.Errors != 0 || tg.Requests != 90 || len(tg.Rounds) != 3 {
			t.Errorf("%s: %d requests in %d rounds (want 90 in 3), %d errors", tg.Name, tg.Requests, len(tg.Rounds), tg.Errors)
			continue
		}
		var added []time.Duration
		for k, r := range tg.Rounds {
			added = append(added, r.P99-bare.Rounds[k].P99)
		}
		slices.Sort(added)
		if tg.AddedP99 != added[1] {
			t.Errorf("%s: added p99 %v, want the median of %v", tg.Name, tg.AddedP99, added)
		}
	}
}

// testRig starts the rig of cfg (defaults filled in), closed when tb ends.
func testRig(tb testing.TB, cfg Config) *rig {
	tb.Helper()
	if err := cfg.defaults(); err != nil {
		tb.Fatal(err)
	}
	r, err := newRig(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { r.close() })
	return r
}

// TestAddedP99: a target's added p99 is the median of its rounds' p99
// minus the bare proxy's in the same round, which cancels what moves the
// whole machine from one round to the next, and keeps one disturbed
// round from moving the figure; without rounds to pair, it is the
// difference of the medians.
func TestAddedP99(t *testing.T) {
	ms := func(v ...int) []Round {
		var rs []Round
		for _, x := range v {
			rs = append(rs, Round{P99: time.Duration(x) * time.Millisecond})
		}
		return rs
	}
	// The machine's p99 moves 10, 20, 30 ms; the gateway adds 1 ms, but
	// its second round met a 20 ms stall the bare proxy's did not.
	bare := Target{Name: Bare, Rounds: ms(10, 20, 30), P99: 20 * time.Millisecond, RPS: 100}
	gw := Target{Name: GatewayAudit, Rounds: ms(11, 40, 31), P99: 31 * time.Millisecond, RPS: 90}
	ts := []Target{bare, gw}
	compare(ts)
	if ts[1].AddedP99 != time.Millisecond || ts[0].AddedP99 != 0 || ts[1].XBare != 0.9 {
		t.Errorf("paired: added %v (bare %v), x%v; want 1ms (0), x0.9 (not 31ms - 20ms)", ts[1].AddedP99, ts[0].AddedP99, ts[1].XBare)
	}
	gw.Rounds = ms(11, 40)
	if got := addedP99(gw, bare); got != 11*time.Millisecond {
		t.Errorf("unpaired: added %v, want 31ms - 20ms", got)
	}
}
