package loadgen

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
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
	if diff := cmp.Diff([]string{Upstream, Bare, GatewayAudit, GatewayNoAudit}, names); diff != "" {
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
	if err := cfg.defaults(); err != nil {
		t.Fatal(err)
	}
	r, err := newRig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
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
// (each with a fresh proof) and is compared with the bearer gateway.
func TestRunDPoP(t *testing.T) {
	cfg := Config{Conns: 4, Duration: 200 * time.Millisecond, Rounds: 1, Tokens: 20, Dir: t.TempDir(), DPoP: true}
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	last := rep.Targets[len(rep.Targets)-1]
	if last.Name != GatewayDPoP || last.Requests == 0 || last.Errors != 0 || last.XBearer <= 0 {
		t.Fatalf("gateway-dpop: %+v", last)
	}
	if rep.Errors() != 0 {
		t.Fatalf("%d errors", rep.Errors())
	}
}
