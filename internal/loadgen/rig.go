package loadgen

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"latchkey/internal/access"
	"latchkey/internal/audit"
	"latchkey/internal/gateway"
	"latchkey/internal/indexer"
	"latchkey/internal/metrics"
	"latchkey/internal/scope"
	"latchkey/internal/seal"
	"latchkey/internal/store"
	"latchkey/internal/store/postgres"
	"latchkey/internal/store/sqlite"
	"latchkey/internal/token"
	"latchkey/internal/usage"
)

// What the gateway serves and the tokens allow.
const (
	service    = "echo"
	tokenScope = "echo:GET:/v1/**"
	reqPath    = "/v1/items/42"
	contractor = "loadgen"
	body       = "ok\n"
)

// admin is the actor that sets the gateway up.
var admin = access.Actor{TokenID: "loadgen", Scopes: scope.Set{scope.MustParse("admin:*")}}

// rig is everything Run starts: the servers, their state, and one target
// per server.
type rig struct {
	cfg     Config
	targets []*target // in Report order
	auths   []string  // "Bearer TOKEN" for every token
	st      store.Store
	drv     *driver // the driver process, with Config.DriverProcess
	closers []func() error
}

// newRig starts the upstream, the bare proxy and both gateways, and
// creates the tokens. On error it closes what it started.
func newRig(ctx context.Context, cfg Config) (*rig, error) {
	r := &rig{cfg: cfg}
	if err := r.start(ctx); err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

// start does newRig's work, adding to r.closers how to undo each step.
func (r *rig) start(ctx context.Context) error {
	cfg := r.cfg
	dir := cfg.Dir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "latchkey-bench-"); err != nil {
			return fmt.Errorf("loadgen: %w", err)
		}
		r.closers = append(r.closers, func() error { return os.RemoveAll(dir) })
	}
	up, err := r.serve(http.HandlerFunc(answer))
	if err != nil {
		return err
	}
	proxy := bareProxy(up, cfg.Log)
	r.closers = append(r.closers, func() error { proxy.Transport.(*http.Transport).CloseIdleConnections(); return nil })
	bare, err := r.serve(proxy)
	if err != nil {
		return err
	}
	// The control is the bare proxy again, on a listener and transport of
	// its own: whatever it differs from bare by is the noise of the run.
	control := bareProxy(up, cfg.Log)
	r.closers = append(r.closers, func() error { control.Transport.(*http.Transport).CloseIdleConnections(); return nil })
	bare2, err := r.serve(control)
	if err != nil {
		return err
	}
	gws, err := r.gateways(ctx, dir, up)
	if err != nil {
		return err
	}
	for _, t := range []struct {
		name, url string
		cache     *access.Authority
	}{{Upstream, up + reqPath, nil}, {Bare, bare + reqPath, nil},
		{GatewayAudit, gws[0].url + "/" + service + reqPath, gws[0].a},
		{GatewayNoAudit, gws[1].url + "/" + service + reqPath, gws[1].a},
		{BareControl, bare2 + reqPath, nil}} {
		tg, err := newTarget(t.name, t.url, cfg.Conns)
		if err != nil {
			return err
		}
		tg.cache = t.cache
		r.targets = append(r.targets, tg)
		r.closers = append(r.closers, func() error { tg.tr.CloseIdleConnections(); return nil })
	}
	if cfg.DPoP {
		if err := r.dpopTarget(ctx, gws[0]); err != nil {
			return err
		}
	}
	if cfg.DriverProcess {
		return r.startDriver()
	}
	return nil
}

// startDriver starts the driver process (Config.DriverProcess) for every
// target but the DPoP one.
func (r *rig) startDriver() error {
	d, err := selfDriver(r.cfg.Progress, driverSetup{Conns: r.cfg.Conns, Auths: r.auths, Targets: driverDests(r.targets)})
	if err != nil {
		return err
	}
	r.drv = d
	r.closers = append(r.closers, d.close)
	return nil
}

// drives reports whether the driver process drives t.
func (r *rig) drives(t *target) bool { return r.drv != nil && t.prove == nil }

// round drives t for one closed-loop round (target.round), from the
// driver process if it drives t.
func (r *rig) round(ctx context.Context, t *target) (Round, error) {
	if r.drives(t) {
		return t.remote(ctx, r.drv, order{Op: opRound, Duration: r.cfg.Duration})
	}
	return t.round(ctx, r.cfg.Conns, r.cfg.Duration, r.authsOf(t)), ctx.Err()
}

// pacedRound drives t for one round at rate (target.pacedRound), from
// the driver process if it drives t.
func (r *rig) pacedRound(ctx context.Context, t *target, rate float64) (Round, error) {
	if r.drives(t) {
		return t.remote(ctx, r.drv, order{Op: opPaced, Duration: r.cfg.Duration, Rate: rate})
	}
	return t.pacedRound(ctx, r.cfg.Conns, r.cfg.Duration, r.authsOf(t), rate), ctx.Err()
}

// togetherRound drives ts at once for one round, each at rate (together),
// from the driver process if it drives them all, else from this one.
func (r *rig) togetherRound(ctx context.Context, ts []*target, rate float64) ([]Round, error) {
	if !slices.ContainsFunc(ts, func(t *target) bool { return !r.drives(t) }) {
		return remoteTogether(ctx, r.drv, ts, order{Duration: r.cfg.Duration, Rate: rate})
	}
	return together(ctx, ts, r.cfg.Conns, r.cfg.Duration, r.authsOf(ts[0]), rate), ctx.Err()
}

// each makes one request with each of the first n Authorization values
// of t, and at least atLeast in all (target.each), from the driver
// process if it drives t.
func (r *rig) each(ctx context.Context, t *target, atLeast, n int) error {
	if r.drives(t) {
		_, err := t.remote(ctx, r.drv, order{Op: opEach, AtLeast: atLeast, Auths: n})
		return err
	}
	t.each(ctx, r.cfg.Conns, atLeast, r.authsOf(t)[:n])
	return ctx.Err()
}

// dpopTarget adds the GatewayDPoP target: the audited gateway gw, called
// with DPoP-bound tokens and a fresh proof per request.
func (r *rig) dpopTarget(ctx context.Context, gw served) error {
	u := gw.url + "/" + service + reqPath
	start := time.Now()
	auths, p, err := dpopTokens(ctx, r.st, r.cfg.Tokens, u)
	if err != nil {
		return err
	}
	fmt.Fprintf(r.cfg.Progress, "created %d DPoP-bound tokens and keys in %v\n", len(auths), time.Since(start).Round(time.Millisecond))
	tg, err := newTarget(GatewayDPoP, u, r.cfg.Conns)
	if err != nil {
		return err
	}
	tg.cache, tg.auths, tg.prove = gw.a, auths, p
	r.targets = append(r.targets, tg)
	r.closers = append(r.closers, func() error { tg.tr.CloseIdleConnections(); return nil })
	return nil
}

// authsOf returns the Authorization values target t is driven with.
func (r *rig) authsOf(t *target) []string {
	if t.auths != nil {
		return t.auths
	}
	return r.auths
}

// close stops everything newRig started, latest first.
func (r *rig) close() error {
	var errs []error
	for i := len(r.closers) - 1; i >= 0; i-- {
		errs = append(errs, r.closers[i]())
	}
	r.closers = nil
	return errors.Join(errs...)
}

// answer is the upstream: a small 200 for every request.
func answer(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	io.WriteString(w, body)
}

// bareProxy is the baseline: an httputil.ReverseProxy to upstream that
// does what any proxy does (Rewrite with SetURL and SetXForwarded) over a
// transport pooled like the gateway's.
func bareProxy(upstream string, log *slog.Logger) *httputil.ReverseProxy {
	u, _ := url.Parse(upstream)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 0
	tr.MaxIdleConnsPerHost = 256
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.SetXForwarded()
		},
		Transport: tr,
		ErrorLog:  slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// serve serves h on a new loopback listener, as serve's gateway listener
// is configured, and returns its base URL.
func (r *rig) serve(h http.Handler) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("loadgen: %w", err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(r.cfg.Log.Handler(), slog.LevelWarn),
		Protocols:         new(http.Protocols),
	}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	go srv.Serve(ln)
	r.closers = append(r.closers, srv.Close)
	return "http://" + ln.Addr().String(), nil
}

// openStore opens the gateway's store: SQLite in dir, or, with
// Config.Store, PostgreSQL in a database of its own created on that
// server for the run and dropped after it.
func (r *rig) openStore(ctx context.Context, dir string) (store.Store, audit.Storage, error) {
	if r.cfg.Store == "" {
		db := filepath.Join(dir, "latchkey.db")
		var opts []sqlite.Option
		if r.cfg.IndexerProcess {
			opts = append(opts, sqlite.ExternalIndexer(sqlite.MaxIndexLag), sqlite.AuditHelper(sqlite.HelperHold))
		}
		st, err := sqlite.Open(ctx, db, opts...)
		if err != nil {
			return nil, nil, err
		}
		r.closers = append(r.closers, st.Close)
		if r.cfg.IndexerProcess {
			p, err := indexer.Beside(slog.New(slog.NewTextHandler(r.cfg.Progress, nil)), db, audit.DefaultIntegrateDelay)
			if err != nil {
				return nil, nil, err
			}
			r.closers = append(r.closers, func() error { p.Stop(); return nil })
		}
		q, err := st.QueuedAudit(ctx, sqlite.SyncNormal) // as serve has it
		if err != nil {
			return nil, nil, err
		}
		r.closers = append(r.closers, q.Close)
		return st, q, nil
	}
	dsn, drop, err := postgres.Scratch(ctx, r.cfg.Store, "latchkey_bench_")
	if err != nil {
		return nil, nil, err
	}
	r.closers = append(r.closers, func() error { return drop(context.Background()) })
	fmt.Fprintf(r.cfg.Progress, "created a scratch database on %s\n", postgres.Redact(r.cfg.Store))
	st, err := postgres.Open(ctx, dsn)
	if err != nil {
		return nil, nil, err
	}
	r.closers = append(r.closers, st.Close)
	q := st.QueuedAudit(postgres.SyncNormal) // as serve has it
	r.closers = append(r.closers, q.Close)
	return st, q, nil
}

// served is a gateway being served: its Authority and base URL.
type served struct {
	a   *access.Authority
	url string
}

// gateways opens a store in dir, registers the upstream as service echo,
// creates the tokens, and serves two gateways on it: first one whose
// Authority audits to a real audit log, then one whose Authority audits
// nothing.
func (r *rig) gateways(ctx context.Context, dir, upstream string) ([]served, error) {
	key, err := seal.LoadOrCreateKey(filepath.Join(dir, "seal.key"))
	if err != nil {
		return nil, err
	}
	box, err := seal.New(key)
	if err != nil {
		return nil, err
	}
	st, storage, err := r.openStore(ctx, dir)
	if err != nil {
		return nil, err
	}
	r.st = st
	log := audit.New(storage, audit.Config{IntegrateDelay: r.cfg.AuditDelay})
	r.closers = append(r.closers, log.Close)
	audited, err := access.New(access.Config{Store: st, Box: box, Log: r.cfg.Log, Audit: log})
	if err != nil {
		return nil, err
	}
	unaudited, err := access.New(access.Config{Store: st, Box: box, Log: r.cfg.Log})
	if err != nil {
		return nil, err
	}
	if err := setup(ctx, audited, upstream); err != nil {
		return nil, err
	}
	start := time.Now()
	if r.auths, err = createTokens(ctx, st, r.cfg.Tokens, start, nil); err != nil {
		return nil, err
	}
	fmt.Fprintf(r.cfg.Progress, "created %d tokens in %v\n", len(r.auths), time.Since(start).Round(time.Millisecond))
	rec := usage.New(usage.Config{Store: st, Log: r.cfg.Log})
	r.closers = append(r.closers, func() error { return rec.Close(context.Background()) })
	var gws []served
	for _, a := range []*access.Authority{audited, unaudited} {
		// As serve configures it, but for the per-token rate limit: the
		// default (100/s) would refuse a run spread over few tokens. The
		// limiter still runs on every request.
		gcfg := gateway.Config{Authority: a, Usage: rec, Log: r.cfg.Log,
			Metrics: gateway.NewMetrics(new(metrics.Registry)), TokenRate: 1e9, TokenBurst: 1 << 30}
		if r.cfg.AccessLog {
			gcfg.AccessLog = slog.New(slog.NewTextHandler(io.Discard, nil))
		}
		h, err := gateway.New(gcfg)
		if err != nil {
			return nil, err
		}
		u, err := r.serve(h)
		if err != nil {
			return nil, err
		}
		gws = append(gws, served{a, u})
	}
	return gws, nil
}

// setup registers the upstream as the service with a credential header,
// and onboards the contractor with a grant covering the tokens' scope.
func setup(ctx context.Context, a *access.Authority, upstream string) error {
	creds := []access.Header{{Name: "Authorization", Value: "Bearer upstream-secret"}}
	if _, err := a.AddService(ctx, admin, service, upstream, creds); err != nil {
		return fmt.Errorf("loadgen: add service: %w", err)
	}
	until := time.Now().Add(30 * 24 * time.Hour)
	nc := access.NewContractor{Name: contractor, Email: "loadgen@example.com", Sponsor: "loadgen", Until: until}
	if _, err := a.AddContractor(ctx, admin, nc); err != nil {
		return fmt.Errorf("loadgen: add contractor: %w", err)
	}
	if _, err := a.AddGrant(ctx, admin, contractor, []string{tokenScope}, until); err != nil {
		return fmt.Errorf("loadgen: add grant: %w", err)
	}
	return nil
}

// createTokens writes n contractor tokens straight into the store, as
// Authority.Issue would write them but without an audit record each (a
// record per token would make setup the slowest part of a run), and
// returns "Bearer TEXT" for each. With bind, each token i is bound to the
// DPoP key whose thumbprint bind(i, text) returns, and sent as "DPoP
// TEXT". Several goroutines generate and insert at once; the store
// serialises the inserts.
func createTokens(ctx context.Context, st store.Store, n int, now time.Time, bind func(i int, text string) (string, error)) ([]string, error) {
	auths := make([]string, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, runtime.GOMAXPROCS(0)*2)
	for w := range errs {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				text, p, err := token.Generate(token.Contractor, rand.Reader)
				scheme, jkt := "Bearer ", ""
				if err == nil && bind != nil {
					scheme = "DPoP "
					jkt, err = bind(i, text)
				}
				if err == nil {
					err = st.CreateToken(ctx, store.Token{ID: p.ID, Contractor: contractor, Scopes: []string{tokenScope},
						Hash: p.Hash(), ExpiresAt: now.Add(24 * time.Hour), CreatedAt: now, CreatedBy: admin.TokenID,
						Note: "latchkey bench", CnfJKT: jkt})
				}
				if err != nil {
					errs[w] = fmt.Errorf("loadgen: create token: %w", err)
					return
				}
				auths[i] = scheme + text
			}
		})
	}
	wg.Wait()
	if err := errors.Join(append(errs, ctx.Err())...); err != nil {
		return nil, err
	}
	return auths, nil
}

// warm drives every target until its connections are open, has the
// audited gateway authenticate every token once, and reads the memory
// right after (see memory). (The unaudited gateway meets the tokens in the rounds:
// warming it up as well would double the time a big run takes to start.)
func (r *rig) warm(ctx context.Context) (Memory, error) {
	start := time.Now()
	few := 8 * r.cfg.Conns
	for _, w := range []struct {
		t *target
		n int
	}{{r.targets[0], 1}, {r.targets[1], 1}, {r.targets[2], len(r.auths)}} {
		if err := r.each(ctx, w.t, few, w.n); err != nil {
			return Memory{}, err
		}
	}
	m := memory(len(r.auths))
	for _, t := range r.targets[3:] {
		if err := r.each(ctx, t, few, min(few, len(r.authsOf(t)))); err != nil {
			return Memory{}, err
		}
	}
	fmt.Fprintf(r.cfg.Progress, "warmed up in %v; with %d tokens cached, after a collection: RSS %.1f MiB, live heap %.1f MiB\n",
		time.Since(start).Round(time.Millisecond), m.CachedTokens, float64(m.RSS)/(1<<20), float64(m.HeapLive)/(1<<20))
	return m, nil
}

// presigned is what presign did: how many proofs, in how long.
type presigned struct {
	n    int64
	took time.Duration
}

// presign sets t.batch to the proofs of t's next round, with iat now. It
// expects the rate of t's last round in results (indexed as r.targets),
// or else of the audited bearer gateway's last, or else
// proofFallbackRate (see proofsPerConn).
func (r *rig) presign(ctx context.Context, t *target, results [][]Round) (presigned, error) {
	rate := float64(proofFallbackRate)
	bearer := slices.IndexFunc(r.targets, func(t *target) bool { return t.name == GatewayAudit })
	for _, j := range []int{slices.Index(r.targets, t), bearer} {
		if j >= 0 && len(results[j]) > 0 {
			rate = results[j][len(results[j])-1].RPS
			break
		}
	}
	start := time.Now()
	b, err := t.prove.presign(ctx, r.authsOf(t), r.cfg.Conns, proofsPerConn(rate, r.cfg.Duration, r.cfg.Conns), start)
	if err != nil {
		return presigned{}, err
	}
	t.batch = b
	return presigned{b.presigned(), time.Since(start)}, nil
}

// onTheFly returns how many DPoP proofs t signed inside its last round of
// requests requests: none for a bearer target, all of them without a
// batch.
func (t *target) onTheFly(requests int64) int64 {
	switch {
	case t.prove == nil:
		return 0
	case t.batch == nil:
		return requests
	}
	return t.batch.onTheFly.Load()
}
