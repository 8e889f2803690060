package loadgen

import (
	"context"
	"testing"
)

// BenchmarkTargets drives each target with b.N requests over 64
// connections, for profiling one target at a time:
//
//	go test -run '^$' -bench 'Targets/gateway-audit-on' -cpuprofile cpu.out ./internal/loadgen
//
// The profile holds the clients as well as the servers; look at the
// callees of gateway.(*Handler).ServeHTTP.
func BenchmarkTargets(b *testing.B) {
	cfg := Config{Tokens: 1000, Dir: b.TempDir(), DPoP: true}
	if err := cfg.defaults(); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	r, err := newRig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer r.close()
	if _, err := r.warm(ctx); err != nil {
		b.Fatal(err)
	}
	for _, t := range r.targets {
		b.Run(t.name, func(b *testing.B) {
			b.ReportAllocs()
			before := t.errs.Load()
			auths := r.authsOf(t)
			t.each(ctx, cfg.Conns, b.N, auths[:min(b.N, len(auths))])
			if n := t.errs.Load() - before; n > 0 {
				b.Fatalf("%d requests failed, first: %s", n, *t.firstErr.Load())
			}
		})
	}
}
