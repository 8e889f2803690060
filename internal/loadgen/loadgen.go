// Package loadgen implements the gateway load test behind "latchkey bench
// gateway": it starts, on loopback in one process, an upstream, a bare
// httputil.ReverseProxy in front of it and the latchkey gateway in front
// of it (once with the audit log, once without), drives each with the same
// concurrent keep-alive load in interleaved rounds, and reports
// throughput and latency of each next to the bare proxy's.
//
// The load clients run, with Config.DriverProcess, in a process of their
// own (Drive, this binary's hidden "bench drive"), told what to drive round
// by round over its standard input and output (see driver): their
// allocations, collections and goroutines then do not share the servers'
// Go runtime. The DPoP target's clients stay in the servers' process,
// which signs their proofs. The upstream stays there too: in a process of
// its own, it did not lower the bare proxy's p99 on a two-core machine.
//
// The gateway is built as serve builds it: a SQLite store and a seal key in
// a data directory, a real audit log on that store, an access.Authority,
// a usage.Recorder and gateway.New. Its tokens are real tokens, created in
// the store and sent in "Authorization: Bearer"; every request is allowed
// by the token's scope. Requests to the upstream and the bare proxy carry
// the same header, so that every target reads requests of the same size.
// Absolute figures depend on the machine; the ratios to the bare proxy
// measured in the same run are what to compare.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"time"
)

// Target names, in the order Report.Targets lists them.
const (
	Upstream        = "upstream"          // the upstream, called directly
	Bare            = "bare"              // a bare httputil.ReverseProxy
	BareControl     = "bare-control"      // a second, identical bare proxy: the A/A control
	GatewayAudit    = "gateway-audit-on"  // the gateway, every request audited
	GatewayNoAudit  = "gateway-audit-off" // the gateway without an audit log
	defaultConns    = 64
	defaultDuration = 2 * time.Second
	defaultRounds   = 5
	defaultTokens   = 1000
	// MaxConns is the most Config.Conns allowed: a goroutine and a
	// connection each, per target.
	MaxConns = 1 << 14
)

// Config configures Run. The zero value runs the default load.
type Config struct {
	// IndexerProcess runs each SQLite store's audit search indexer in a
	// process of its own, as serve does (server.Config.IndexerProcess):
	// this binary's "audit index --follow", which the latchkey command is
	// and a test binary is not. False indexes in this process.
	IndexerProcess bool
	// DriverProcess runs the load clients in a process of their own: this
	// binary's hidden "bench drive" (Drive), which the latchkey command is
	// and a test binary is not. The clients' allocations, collections and
	// goroutines then no longer share this process's runtime with the
	// servers they measure, and Memory no longer counts them. The
	// clients of GatewayDPoP stay in this process, which signs their
	// proofs. False drives every target from this process.
	DriverProcess bool
	// Conns is how many connections drive a target at once: one
	// goroutine each, with one request in flight. Default 64.
	Conns int
	// Duration is how long each target is driven in each round. Default 2s.
	Duration time.Duration
	// Rounds is how many times every target is driven; each round drives
	// the targets one after the other, the order rotated by one target
	// from round to round. Default 5.
	Rounds int
	// Tokens is how many distinct tokens the requests to the gateway
	// spread over (each connection steps through them), so that its
	// token cache holds that many. Default 1000.
	Tokens int
	// Dir is the gateway's data directory (store and seal key); it should
	// be empty. Default: a new temporary directory that Run removes.
	Dir string
	// Store, if set, is a PostgreSQL connection string: the gateway's
	// store and audit log are then in a new database that Run creates on
	// that server (its role needs CREATEDB; the database the string names
	// is only connected to) and drops at the end, instead of SQLite in
	// Dir.
	Store string
	// Progress receives one line per setup step and per round. nil: none.
	Progress io.Writer
	// Log is the application log of the proxies and gateways. Default:
	// discard (failed requests are counted in the report regardless).
	Log *slog.Logger
	// AccessLog has the gateways log one line per request, as serve does
	// by default (--access-log), through a text handler like serve's that
	// writes to io.Discard: the records are built and formatted, but not
	// written to a terminal.
	AccessLog bool
	// AuditDelay is the audited gateway's audit.Config.IntegrateDelay, as
	// serve --audit-delay sets it (0: audit.DefaultIntegrateDelay).
	AuditDelay time.Duration
	// DPoP adds the target GatewayDPoP: the audited gateway called with
	// Tokens more tokens, each bound to its own ES256 key, every request
	// with a DPoP proof of its own (unique jti). Before each round, outside
	// the timed window, the proofs of the round are pre-signed, all with
	// iat the round's start: per connection, the requests expected from
	// the previous round's rate of GatewayDPoP (the first time, of
	// GatewayAudit) times Duration, times 1.5. A connection that runs out,
	// or is still sending 45 s after the round's start, signs on the fly
	// with iat now; Round.OnTheFly counts these.
	DPoP bool
	// DPoPInline has GatewayDPoP sign every proof on the fly inside the
	// timed window, as a real client does, instead of pre-signing them:
	// on a machine with few cores the signing then takes CPU time from
	// the gateway.
	DPoPInline bool
	// Paced, after the closed-loop rounds, drives every target but
	// GatewayDPoP for Rounds more rounds at a fixed total rate spread
	// evenly over the Conns connections: Rate requests per second, or
	// if Rate is zero PacedShare (default 0.5) times the bare proxy's
	// median closed-loop rate. Its latencies are measured from each
	// request's scheduled time, not its actual send (a request held up
	// by a slow one before it on its connection counts the wait): the
	// latency a client sees at that load, free of the queueing of a
	// saturated closed loop, where latency is only the inverse of
	// throughput.
	Paced      bool
	Rate       float64
	PacedShare float64
	// Together, with Paced, follows the paced rounds with Rounds rounds
	// that drive every paced target at once, on one schedule (the k-th
	// request of connection i due at the same instant on each), each at
	// the paced rate divided by their number: the machine carries the
	// same requests per second as in a paced round, but whatever slows it
	// meanwhile falls on every target alike. A target's added p99 is then
	// the median over the rounds of its p99 minus the bare proxy's in the
	// same round: the latency the gateway adds to a request on its own
	// path, free of the noise of a shared machine that differs from one
	// round to the next. It leaves out what a target's extra processor
	// time, its audit log's background work included, costs the queueing
	// of everything on the machine: the paced rounds of one target at a
	// time and the closed-loop throughput show that.
	Together bool
}

func (c *Config) defaults() error {
	if c.Conns == 0 {
		c.Conns = defaultConns
	}
	if c.Duration == 0 {
		c.Duration = defaultDuration
	}
	if c.Rounds == 0 {
		c.Rounds = defaultRounds
	}
	if c.Tokens == 0 {
		c.Tokens = defaultTokens
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Conns < 0 || c.Duration < 0 || c.Rounds < 0 || c.Tokens < 0 {
		return errors.New("loadgen: Conns, Duration, Rounds and Tokens must not be negative")
	}
	if c.Conns > MaxConns {
		return fmt.Errorf("loadgen: %d connections, the most is %d", c.Conns, MaxConns)
	}
	return nil
}

// Report is the result of a run. Latencies are measured by the client,
// from writing the request to reading the end of the response body.
type Report struct {
	Conns      int           `json:"conns"`
	Duration   time.Duration `json:"duration_ns"` // per target per round
	Rounds     int           `json:"rounds"`
	Tokens     int           `json:"tokens"`
	AccessLog  bool          `json:"access_log"`
	GOMAXPROCS int           `json:"gomaxprocs"`
	// DriverProcess is Config.DriverProcess: the load clients of every
	// target but gateway-dpop ran in a process of their own.
	DriverProcess bool `json:"driver_process"`
	// Targets are upstream, bare, gateway-audit-on and gateway-audit-off,
	// in this order, then gateway-dpop with Config.DPoP.
	Targets []Target `json:"targets"`
	Memory  Memory   `json:"memory"`
	// Paced is the fixed-rate phase, with Config.Paced.
	Paced *Paced `json:"paced,omitempty"`
	// Together is the phase of every paced target driven at once, with
	// Config.Together: Rate is each target's.
	Together *Paced `json:"together,omitempty"`
}

// Paced is what the fixed-rate rounds found: Targets has Name, RPS, P50,
// P99, AddedP99, Requests, Rounds (XBare is the rate kept as a multiple
// of the bare proxy's).
type Paced struct {
	Rate    float64  `json:"rate"` // requests per second asked of every target
	Targets []Target `json:"targets"`
}

// Errors returns the number of failed requests over every target, rounds
// and warm-up included.
func (r *Report) Errors() int64 {
	var n int64
	for _, t := range r.Targets {
		n += t.Errors
	}
	return n
}

// Target is what one target did over all rounds. Requests per second, p50
// and p99 are the medians of the rounds' figures.
type Target struct {
	Name  string        `json:"name"`
	RPS   float64       `json:"rps"`
	P50   time.Duration `json:"p50_ns"`
	P99   time.Duration `json:"p99_ns"`
	XBare float64       `json:"x_bare"` // RPS / bare RPS
	// XBearer and AddedP99Bearer compare gateway-dpop with the audited
	// gateway called with bearer tokens in the same run.
	XBearer        float64       `json:"x_bearer,omitempty"`
	AddedP99Bearer time.Duration `json:"added_p99_bearer_ns,omitempty"`
	// PreSigned and OnTheFly count gateway-dpop's proofs over all rounds:
	// pre-signed before the rounds, and signed inside the timed window.
	// Pre-signed proofs a round did not use are counted, not sent.
	PreSigned  int64         `json:"dpop_pre_signed,omitempty"`
	OnTheFly   int64         `json:"dpop_on_the_fly,omitempty"`
	AddedP99   time.Duration `json:"added_p99_ns"` // over bare's, paired by round (addedP99); negative when faster
	Requests   int64         `json:"requests"`     // in all rounds
	Errors     int64         `json:"errors"`       // transport errors and non-2xx answers, warm-up included
	FirstError string        `json:"first_error,omitempty"`
	// CacheHits and CacheMisses count a gateway's token authentications
	// during the rounds: answered from its cache, or read from the store.
	CacheHits   uint64  `json:"cache_hits,omitempty"`
	CacheMisses uint64  `json:"cache_misses,omitempty"`
	Rounds      []Round `json:"rounds"` // in round order
}

// Round is what one target did in one round.
type Round struct {
	Requests int64         `json:"requests"`
	Errors   int64         `json:"errors"`
	Elapsed  time.Duration `json:"elapsed_ns"`
	RPS      float64       `json:"rps"`
	P50      time.Duration `json:"p50_ns"`
	P99      time.Duration `json:"p99_ns"`
	// For gateway-dpop: the proofs pre-signed for the round and the time
	// that took (before the round, not in Elapsed), and the proofs its
	// connections signed inside the round.
	PreSigned   int64         `json:"dpop_pre_signed,omitempty"`
	PreSignTook time.Duration `json:"dpop_pre_sign_ns,omitempty"`
	OnTheFly    int64         `json:"dpop_on_the_fly,omitempty"`
}

// Memory is the process's memory, read from /proc/self/status (all zero
// where there is none), after the warm-up had the audited gateway
// authenticate, and so cache, every token once, and after a collection
// returned the free memory to the OS: a gateway's steady state with that
// many tokens, not the garbage of creating them in this process. The
// process holds more than a gateway would: the upstream, the bare proxy,
// the unaudited gateway and, without Config.DriverProcess or with
// Config.DPoP, load clients with their token texts, so this is an upper
// bound of a gateway's own.
type Memory struct {
	CachedTokens int   `json:"cached_tokens"`
	RSS          int64 `json:"rss_bytes"`       // VmRSS after the collection
	HWM          int64 `json:"hwm_bytes"`       // VmHWM, the peak RSS so far, setup included
	HeapLive     int64 `json:"heap_live_bytes"` // the Go heap live after the collection
	PeakEnd      int64 `json:"peak_end_bytes"`  // VmHWM at the end of the run
}

// Run sets up the targets, warms them up, drives them for cfg.Rounds
// interleaved rounds and returns the report. It fails if the setup fails
// or ctx ends; failed requests are not an error but counted in the
// report (see Report.Errors).
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	r, err := newRig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer r.close()
	rep := &Report{Conns: cfg.Conns, Duration: cfg.Duration, Rounds: cfg.Rounds, Tokens: cfg.Tokens,
		AccessLog: cfg.AccessLog, GOMAXPROCS: runtime.GOMAXPROCS(0),
		DriverProcess: cfg.DriverProcess}
	if rep.Memory, err = r.warm(ctx); err != nil {
		return nil, err
	}
	results := make([][]Round, len(r.targets))
	hits, misses := make([]uint64, len(r.targets)), make([]uint64, len(r.targets))
	for j, t := range r.targets {
		hits[j], misses[j] = t.cacheStats()
	}
	for i := range cfg.Rounds {
		line := fmt.Sprintf("round %d/%d:", i+1, cfg.Rounds)
		for k := range r.targets {
			j := (i + k) % len(r.targets)
			t := r.targets[j]
			var pre presigned
			if t.prove != nil && !cfg.DPoPInline {
				if pre, err = r.presign(ctx, t, results); err != nil {
					return nil, err
				}
			}
			res, err := r.round(ctx, t)
			if err != nil {
				return nil, err
			}
			res.PreSigned, res.PreSignTook = pre.n, pre.took
			res.OnTheFly = t.onTheFly(res.Requests)
			t.batch = nil
			results[j] = append(results[j], res)
			line += fmt.Sprintf(" %s %.0f/s p99 %v;", t.name, res.RPS, res.P99.Round(time.Microsecond))
			if t.prove != nil {
				line = line[:len(line)-1] + fmt.Sprintf(" (%d proofs pre-signed in %v, %d signed on the fly);",
					res.PreSigned, res.PreSignTook.Round(time.Millisecond), res.OnTheFly)
			}
		}
		fmt.Fprintln(cfg.Progress, line[:len(line)-1])
	}
	for j, t := range r.targets {
		s := summarize(t, results[j])
		h, m := t.cacheStats()
		s.CacheHits, s.CacheMisses = h-hits[j], m-misses[j]
		rep.Targets = append(rep.Targets, s)
	}
	compare(rep.Targets)
	if cfg.Paced {
		if rep.Paced, err = r.paced(ctx, cfg, rep.Targets); err != nil {
			return nil, err
		}
		if cfg.Together {
			if rep.Together, err = r.togetherPhase(ctx, cfg, rep.Paced.Rate); err != nil {
				return nil, err
			}
		}
	}
	rep.Memory.PeakEnd = readStatus().hwm
	return rep, nil
}

// pacedTargets are the targets the paced rounds drive: all but
// GatewayDPoP.
func (r *rig) pacedTargets() []*target {
	var targets []*target
	for _, t := range r.targets {
		if t.prove == nil {
			targets = append(targets, t)
		}
	}
	return targets
}

// togetherPhase runs the rounds of Config.Together, the paced targets sharing
// rate between them.
func (r *rig) togetherPhase(ctx context.Context, cfg Config, rate float64) (*Paced, error) {
	targets := r.pacedTargets()
	each := rate / float64(len(targets))
	results := make([][]Round, len(targets))
	for i := range cfg.Rounds {
		rounds, err := r.togetherRound(ctx, targets, each)
		if err != nil {
			return nil, err
		}
		line := fmt.Sprintf("together round %d/%d at %.0f/s each:", i+1, cfg.Rounds, each)
		for j, t := range targets {
			results[j] = append(results[j], rounds[j])
			line += fmt.Sprintf(" %s p99 %v;", t.name, rounds[j].P99.Round(time.Microsecond))
		}
		fmt.Fprintln(cfg.Progress, line[:len(line)-1])
	}
	return pacedReport(each, targets, results), nil
}

// paced runs the fixed-rate rounds (Config.Paced).
func (r *rig) paced(ctx context.Context, cfg Config, closed []Target) (*Paced, error) {
	rate := cfg.Rate
	if rate <= 0 {
		share := cfg.PacedShare
		if share <= 0 {
			share = 0.5
		}
		for _, t := range closed {
			if t.Name == Bare {
				rate = share * t.RPS
			}
		}
	}
	if rate <= 0 {
		return nil, errors.New("loadgen: paced: no rate")
	}
	targets := r.pacedTargets()
	results := make([][]Round, len(targets))
	for i := range cfg.Rounds {
		line := fmt.Sprintf("paced round %d/%d at %.0f/s:", i+1, cfg.Rounds, rate)
		for k := range targets {
			j := (i + k) % len(targets)
			t := targets[j]
			res, err := r.pacedRound(ctx, t, rate)
			if err != nil {
				return nil, err
			}
			results[j] = append(results[j], res)
			line += fmt.Sprintf(" %s p99 %v;", t.name, res.P99.Round(time.Microsecond))
		}
		fmt.Fprintln(cfg.Progress, line[:len(line)-1])
	}
	p := pacedReport(rate, targets, results)
	return p, nil
}

// pacedReport summarizes the fixed-rate rounds of targets (results[j]
// are those of targets[j]) and compares them with the bare proxy's. The
// failures counted are those of these rounds only (the closed-loop
// report counts them all).
func pacedReport(rate float64, targets []*target, results [][]Round) *Paced {
	p := &Paced{Rate: rate}
	for j, t := range targets {
		s := summarize(t, results[j])
		s.Errors, s.FirstError = 0, ""
		for _, r := range results[j] {
			s.Errors += r.Errors
		}
		p.Targets = append(p.Targets, s)
	}
	compare(p.Targets)
	return p
}

// summarize takes the medians of a target's rounds.
func summarize(t *target, rounds []Round) Target {
	s := Target{Name: t.name, Rounds: rounds, Errors: t.errs.Load()}
	if e := t.firstErr.Load(); e != nil {
		s.FirstError = *e
	}
	var rps []float64
	var p50, p99 []time.Duration
	for _, r := range rounds {
		s.Requests += r.Requests
		s.PreSigned += r.PreSigned
		s.OnTheFly += r.OnTheFly
		rps, p50, p99 = append(rps, r.RPS), append(p50, r.P50), append(p99, r.P99)
	}
	s.RPS, s.P50, s.P99 = median(rps), median(p50), median(p99)
	return s
}

// compare fills in each target's figures relative to the bare proxy.
// An added p99 is paired (addedP99).
func compare(ts []Target) {
	i := slices.IndexFunc(ts, func(t Target) bool { return t.Name == Bare })
	if i < 0 {
		return
	}
	bare := ts[i]
	for k := range ts {
		if bare.RPS > 0 {
			ts[k].XBare = ts[k].RPS / bare.RPS
		}
		ts[k].AddedP99 = addedP99(ts[k], bare)
	}
	i = slices.IndexFunc(ts, func(t Target) bool { return t.Name == GatewayAudit })
	for k := range ts {
		if ts[k].Name == GatewayDPoP && i >= 0 && ts[i].RPS > 0 {
			ts[k].XBearer = ts[k].RPS / ts[i].RPS
			ts[k].AddedP99Bearer = addedP99(ts[k], ts[i])
		}
	}
}

// addedP99 is the p99 t adds to base's: the median over the rounds of
// t's p99 minus base's in the same round, when both ran the same rounds
// (else the difference of their medians). The rounds interleave the
// targets, so that a round's pair saw the machine in about the same
// state: on a shared machine the p99 moves from one round to the next by
// more than a gateway adds, and the difference of the medians keeps that
// movement where the median of the differences cancels it.
func addedP99(t, base Target) time.Duration {
	if len(t.Rounds) == 0 || len(t.Rounds) != len(base.Rounds) {
		return t.P99 - base.P99
	}
	added := make([]time.Duration, len(t.Rounds))
	for k, rd := range t.Rounds {
		added[k] = rd.P99 - base.Rounds[k].P99
	}
	return median(added)
}

// median returns the median of s (the mean of the middle two for an even
// length), or zero for an empty s. It sorts s.
func median[T float64 | time.Duration](s []T) T {
	if len(s) == 0 {
		return 0
	}
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
