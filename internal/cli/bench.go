package cli

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/pprof"
	"time"

	"github.com/spf13/cobra"

	"latchkey/internal/audit"
	"latchkey/internal/loadgen"
	"latchkey/internal/pgload"
)

func benchCmd() *cobra.Command {
	return group("bench", "Measure latchkey on this machine", benchGatewayCmd(), benchPGCmd(), benchDriveCmd())
}

// benchDriveCmd is the load clients' process that bench gateway starts
// (loadgen.Drive): hidden, it speaks JSON lines on stdin and stdout.
func benchDriveCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "drive",
		Short:  "Drive bench gateway's targets as told on standard input (bench gateway starts it)",
		Args:   cobra.NoArgs,
		Hidden: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return loadgen.Drive(cmd.Context(), cmd.InOrStdin(), cmd.OutOrStdout())
		},
	}
}

func benchGatewayCmd() *cobra.Command {
	var cfg loadgen.Config
	var inProcessIndex, inProcessDrive bool
	c := &cobra.Command{
		Use:   "gateway [--store DSN] [--conns N] [--duration D] [--rounds N] [--tokens N] [--access-log=false] [--dpop [--dpop-inline]] [--paced=false | --rate N | --rate-share F] [--together=false] [--drive-in-process] [--output json]",
		Short: "Load the gateway against a bare reverse proxy and print the ratios",
		Long: `Start on loopback, in this process, an upstream, a bare httputil.ReverseProxy
in front of it and the gateway in front of it, once with the audit log and
once without, each on a fresh store in a temporary directory. Then drive
each with the same load: --conns keep-alive connections with one request in
flight each, for --duration per target per round, the targets one after the
other, the order rotated every round. The load clients run in a process of
their own (this binary, hidden command "bench drive", ending with this
one), so that their allocations, garbage collections and goroutines do not
share the servers' Go runtime; --drive-in-process runs them in this
process instead. Requests to the gateway spread over
--tokens distinct tokens. With --dpop, the audited gateway is also driven
(target gateway-dpop) with --tokens more tokens, each bound to its own
ES256 key, every request carrying a DPoP proof of its own (unique jti).
So that the clients' signing does not take the gateway's CPU time, the
proofs are pre-signed before each round, outside the timed window, with
iat the round's start: per connection, the previous round's requests
(the first time, those of the audited bearer gateway) times 1.5. A
connection that runs out, or is still sending 45 s into a round (the
gateway accepts an iat up to 60 s old), signs on the fly; the progress
line counts these. With --dpop-inline, every proof is signed on the fly
inside the timed window instead, as a real client does. The table is
followed by gateway-dpop's throughput as a multiple of the audited bearer
gateway's (gateway-audit-on) and of the bare proxy's, its p99 added to
the audited gateway's, and how its proofs were signed. gateway-dpop's
clients always run in this process, which signs their proofs: its
comparison with the other targets is not like for like unless
--drive-in-process.

The table shows, per target, requests per second, p50 and p99 latency (the
medians over the rounds), failed requests, throughput as a multiple of the
bare proxy's, p99 added to the bare proxy's, and for the gateways the share
of token authentications their cache answered (the rest read the store).
In every table, ADDED P99 is the median over the rounds of the target's
p99 minus the bare proxy's in the same round: the rounds interleave the
targets, and pairing them cancels what moves the whole machine from one
round to the next. Target bare-control is a second bare proxy, the same
code on a listener of its own, driven as one more target: its ADDED P99
is the A/A control, what the table cannot tell from noise on this
machine, in this run.
These closed-loop rounds saturate the machine: there, latency is mostly
queueing, the inverse of throughput.

With --paced (the default), the same rounds follow at one fixed rate for
every target but gateway-dpop, --rate requests per second or --rate-share
(0.5) of the bare proxy's closed-loop throughput, spread evenly over the
connections, each request sent at its scheduled time (or at once if the
one before it on its connection is late). Latency is measured from the
scheduled time, so that a stall counts for every request it holds up
(no coordinated omission): the latency a client sees at that load. A
second table shows it, with the p99 added to the bare proxy's.

On a shared machine those rounds differ from one to the next by more
than a gateway adds (a collection, another process, the host): with
--together (the default), --rounds more rounds then drive every paced
target at once, on one schedule (the k-th request of each connection due
at the same instant on every target), each at the paced rate divided by
their number, so that the machine carries as many requests per second as
in a paced round. Whatever slows the machine then falls on every target
alike. A third table shows them; its ADDED P99 is the latency the gateway
adds to a request on its own path. It leaves out what
the gateway's extra processor time, its audit log's background work
included, costs the queueing of everything on the machine: the paced
rounds of one target at a time and the closed-loop throughput show that.

Below it, the process's memory once the audited gateway has cached every
token: to show the steady state rather than the garbage of creating the
tokens in this process, it first collects garbage and returns free memory
to the OS (runtime.GC, debug.FreeOSMemory), then reads the resident set
(VmRSS) and the live Go heap. The peak (VmHWM) includes the setup; it is
shown as read then and at the end of the run. The process also holds the
upstream, the bare proxy and the other gateway (and, with
--drive-in-process or --dpop, load clients), so the figures are an upper
bound of one gateway's.
Progress goes to stderr, one line per round.

With --store, the gateway's store and audit log are in PostgreSQL instead of
SQLite: bench creates a scratch database, latchkey_bench_ and random hex, on
the server DSN connects to (its role needs CREATEDB; the database DSN names
is only connected to, never changed) and drops it at the end. Run once
without and once with --store to compare the engines on this machine.

It fails (exit status 1) after printing the results if any request failed.`,
		Args: cobra.NoArgs,
	}
	out := addOutput(c, formatTable, formatJSON)
	f := c.Flags()
	f.IntVar(&cfg.Conns, "conns", 64, "concurrent connections per target")
	f.DurationVar(&cfg.Duration, "duration", 2*time.Second, "how long each target is driven per round")
	f.IntVar(&cfg.Rounds, "rounds", 5, "rounds of interleaved load")
	f.IntVar(&cfg.Tokens, "tokens", 1000, "distinct tokens the gateway requests spread over")
	f.DurationVar(&cfg.AuditDelay, "audit-delay", audit.DefaultIntegrateDelay, "the audited gateway's --audit-delay, as serve's")
	f.BoolVar(&cfg.DPoP, "dpop", false, "also drive the audited gateway with DPoP-bound tokens, a proof per request, pre-signed before each round")
	f.BoolVar(&cfg.DPoPInline, "dpop-inline", false, "with --dpop, sign every proof inside the timed window instead of pre-signing")
	f.BoolVar(&cfg.Paced, "paced", true, "after the closed-loop rounds, drive every target at one fixed rate (--rate, or --rate-share of the bare proxy's throughput) and measure latency from each request's scheduled time")
	f.Float64Var(&cfg.Rate, "rate", 0, "with --paced: requests per second asked of every target (default: --rate-share of the bare proxy's)")
	f.BoolVar(&cfg.Together, "together", true, "with --paced, then drive every paced target at once on one schedule, sharing the paced rate, and compare their p99 round by round")
	f.Float64Var(&cfg.PacedShare, "rate-share", 0.5, "with --paced and no --rate: the fixed rate as a share of the bare proxy's closed-loop throughput")
	f.StringVar(&cfg.Store, "store", "", "PostgreSQL connection string of a server to run the gateway's store on, in a scratch database created and dropped by the run (default: SQLite in a temporary directory)")
	f.BoolVar(&inProcessIndex, "index-in-process", false, "index the SQLite stores' audit logs for search in this process, instead of in processes beside it at the lowest priority, as serve's --index-in-process")
	f.BoolVar(&inProcessDrive, "drive-in-process", false, "run the load clients in this process, sharing its Go runtime with the servers, instead of in a process of their own")
	f.BoolVar(&cfg.AccessLog, "access-log", true, "have the gateways format an access log line per request, as serve does by default (the lines are discarded)")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg.IndexerProcess = !inProcessIndex
		cfg.DriverProcess = !inProcessDrive
		if cfg.Conns < 1 || cfg.Rounds < 1 || cfg.Tokens < 1 || cfg.Duration <= 0 {
			return usagef("--conns, --rounds, --tokens and --duration must be positive")
		}
		if cfg.Conns > loadgen.MaxConns {
			return usagef("--conns %d: the most is %d", cfg.Conns, loadgen.MaxConns)
		}
		if cfg.Rate < 0 || cfg.PacedShare <= 0 || cfg.PacedShare > 1 {
			return usagef("--rate must not be negative, --rate-share must be in (0, 1]")
		}
		if err := checkStore(cfg.Store); err != nil {
			return err
		}
		if cfg.DPoPInline && !cfg.DPoP {
			return usagef("--dpop-inline needs --dpop")
		}
		if cfg.AuditDelay < time.Millisecond || cfg.AuditDelay > time.Second {
			return usagef("--audit-delay %s: want 1ms to 1s", cfg.AuditDelay)
		}
		stderr := cmd.ErrOrStderr()
		cfg.Progress = stderr
		cfg.Log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		rep, err := loadgen.Run(cmd.Context(), cfg)
		if err != nil {
			return err
		}
		if out.json() {
			err = writeJSON(cmd.OutOrStdout(), rep)
		} else {
			err = benchTable(cmd.OutOrStdout(), rep)
		}
		if err != nil {
			return err
		}
		if n := rep.Errors(); n > 0 {
			return fmt.Errorf("%d requests failed; the first: %s", n, firstError(rep))
		}
		return nil
	}
	return c
}

// benchTable prints a report as a table and a few lines below it.
func benchTable(w io.Writer, rep *loadgen.Report) error {
	t := newTable(w, "TARGET", "REQ/S", "P50", "P99", "ERRORS", "X BARE", "ADDED P99", "CACHE HITS")
	for _, tg := range rep.Targets {
		var hits string
		if n := tg.CacheHits + tg.CacheMisses; n > 0 {
			hits = fmt.Sprintf("%.1f%%", 100*float64(tg.CacheHits)/float64(n))
		}
		t.row(tg.Name, fmt.Sprintf("%.0f", tg.RPS), ms(tg.P50), ms(tg.P99), fmt.Sprint(tg.Errors),
			fmt.Sprintf("%.2f", tg.XBare), ms(tg.AddedP99), hits)
	}
	if err := t.flush(); err != nil {
		return err
	}
	for _, tg := range rep.Targets {
		if tg.Name == loadgen.GatewayDPoP {
			if err := dpopLines(w, tg); err != nil {
				return err
			}
		}
	}
	if p := rep.Paced; p != nil {
		if err := pacedTable(w, fmt.Sprintf("at a fixed %.0f requests/s (latency from each request's scheduled time)", p.Rate), p); err != nil {
			return err
		}
	}
	if p := rep.Together; p != nil {
		if err := pacedTable(w, fmt.Sprintf("all at once, %.0f requests/s each", p.Rate), p); err != nil {
			return err
		}
	}
	m := rep.Memory
	_, err := fmt.Fprintf(w, "\nmemory with %d tokens cached, after a collection: RSS %s, live heap %s; peak with setup %s (%s at the end of the run)\n"+
		"%d connections, %d rounds of %v per target, %d tokens, access log %s, GOMAXPROCS %d\n%s\n"+
		"ADDED P99: the median over the rounds of a target's p99 minus the bare proxy's in the same round;\n"+
		"bare-control is the bare proxy again: its ADDED P99 is the noise of the table\n",
		m.CachedTokens, mib(m.RSS), mib(m.HeapLive), mib(m.HWM), mib(m.PeakEnd),
		rep.Conns, rep.Rounds, rep.Duration, rep.Tokens, onOff(rep.AccessLog), rep.GOMAXPROCS, drivenBy(rep))
	return err
}

// pacedTable prints the table of fixed-rate rounds under a heading.
func pacedTable(w io.Writer, heading string, p *loadgen.Paced) error {
	fmt.Fprintf(w, "\n%s:\n", heading)
	t := newTable(w, "TARGET", "REQ/S", "P50", "P99", "ERRORS", "ADDED P99")
	for _, tg := range p.Targets {
		t.row(tg.Name, fmt.Sprintf("%.0f", tg.RPS), ms(tg.P50), ms(tg.P99), fmt.Sprint(tg.Errors), ms(tg.AddedP99))
	}
	return t.flush()
}

// dpopLines prints gateway-dpop's comparison with the audited bearer
// gateway and the bare proxy, and how its proofs were signed.
func dpopLines(w io.Writer, tg loadgen.Target) error {
	how := fmt.Sprintf("pre-signed before each round, outside the timed window (%d pre-signed; %d signed on the fly in the window when a connection ran out)",
		tg.PreSigned, tg.OnTheFly)
	if tg.PreSigned == 0 {
		how = fmt.Sprintf("signed on the fly in the timed window (%d), sharing the cores with the gateway", tg.OnTheFly)
	}
	_, err := fmt.Fprintf(w, "\nDPoP (same run): throughput x%.2f of %s (bearer), x%.2f of %s; p99 %s added to %s's\nDPoP proofs %s\n",
		tg.XBearer, loadgen.GatewayAudit, tg.XBare, loadgen.Bare, ms(tg.AddedP99Bearer), loadgen.GatewayAudit, how)
	return err
}

// drivenBy says where the report's load clients ran.
func drivenBy(rep *loadgen.Report) string {
	if !rep.DriverProcess {
		return "load clients in this process (--drive-in-process)"
	}
	for _, tg := range rep.Targets {
		if tg.Name == loadgen.GatewayDPoP {
			return "load clients in a process of their own, but " + loadgen.GatewayDPoP + "'s in this process (it signs their proofs)"
		}
	}
	return "load clients in a process of their own"
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// firstError returns the first failure the report holds.
func firstError(rep *loadgen.Report) string {
	for _, tg := range rep.Targets {
		if tg.FirstError != "" {
			return tg.FirstError
		}
	}
	return ""
}

// ms formats d in milliseconds with microsecond precision.
func ms(d time.Duration) string { return fmt.Sprintf("%.3fms", float64(d)/float64(time.Millisecond)) }

// mib formats a size in bytes in MiB.
func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func benchPGCmd() *cobra.Command {
	var cfg pgload.Config
	var inProcessIndexPG bool
	c := &cobra.Command{
		Use:   "pg --dsn postgres://SUPERUSER@HOST:PORT/postgres [--clients N] [--duration D] [--rounds N] [--scale N] [--protocol simple|extended|prepared] [--output json]",
		Short: "Run pgbench straight to PostgreSQL and through the PostgreSQL gateway, and print the ratios",
		Long: `On the PostgreSQL server of --dsn (a superuser), create a throwaway database
filled by pgbench -i --scale, a read role and a write role (dropped at the
end). In this process, start the PostgreSQL gateway on loopback on a fresh
store in a temporary directory with the audit log, and a second one without
an audit log (target gateway-audit-off: what the per-statement audit commit
costs). Then run pgbench (-n -c --clients -T --duration -M --protocol)
against each target (and a bare TCP relay, tcp-relay: the cost of any proxy
on this machine), select-only (-S, read role or read token) and the
default TPC-B-like transaction (write role or write token), the targets
in rotated order every round. With --reference HOST:PORT, a PostgreSQL
proxy of yours (PgBouncer, say, with a "*" database entry pointing at the
server) is one more target, reference, driven with the same credentials:
what a proxy built for speed, without an audit, costs on this machine.
The table shows each target's median TPS and its share of the direct
TPS. Progress goes to stderr, one line per run.`,
		Args: cobra.NoArgs,
	}
	out := addOutput(c, formatTable, formatJSON)
	f := c.Flags()
	f.StringVar(&cfg.DSN, "dsn", "", "PostgreSQL superuser URL, e.g. postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
	f.StringVar(&cfg.PGBench, "pgbench", "", "pgbench binary (default: on PATH, else /usr/lib/postgresql/*/bin/pgbench)")
	f.IntVar(&cfg.Clients, "clients", 8, "pgbench -c: concurrent sessions")
	f.IntVar(&cfg.Jobs, "jobs", 4, "pgbench -j: client threads")
	f.DurationVar(&cfg.Duration, "duration", 10*time.Second, "pgbench -T per target per round (whole seconds)")
	f.IntVar(&cfg.Rounds, "rounds", 3, "rounds of interleaved runs")
	f.IntVar(&cfg.Scale, "scale", 10, "pgbench -i scale factor")
	f.StringVar(&cfg.Protocol, "protocol", "simple", "pgbench -M: simple, extended or prepared")
	f.DurationVar(&cfg.AuditDelay, "audit-delay", audit.DefaultIntegrateDelay, "the audited gateway's --audit-delay, as serve's")
	f.BoolVar(&inProcessIndexPG, "index-in-process", false, "index the audited gateway's audit log for search in this process, instead of in a process beside it at the lowest priority, as serve's --index-in-process")
	f.StringVar(&cfg.Reference, "reference", "", "HOST:PORT of a PostgreSQL proxy (e.g. PgBouncer) to drive as one more target, reference")
	var profile string
	f.StringVar(&profile, "cpu-profile", "", "write a CPU profile of this process (the gateways) over the whole run to this file (go tool pprof)")
	_ = c.MarkFlagRequired("dsn")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg.IndexerProcess = !inProcessIndexPG
		if profile != "" {
			pf, err := os.Create(profile)
			if err != nil {
				return err
			}
			defer pf.Close()
			if err := pprof.StartCPUProfile(pf); err != nil {
				return err
			}
			defer pprof.StopCPUProfile()
		}
		switch {
		case cfg.Clients < 1 || cfg.Jobs < 1 || cfg.Rounds < 1 || cfg.Scale < 1 || cfg.Duration < time.Second:
			return usagef("--clients, --jobs, --rounds and --scale must be positive, --duration at least 1s")
		case cfg.Protocol != "simple" && cfg.Protocol != "extended" && cfg.Protocol != "prepared":
			return usagef("--protocol %q: want simple, extended or prepared", cfg.Protocol)
		case cfg.AuditDelay < time.Millisecond || cfg.AuditDelay > time.Second:
			return usagef("--audit-delay %s: want 1ms to 1s", cfg.AuditDelay)
		}
		if cfg.Reference != "" {
			if _, port, err := net.SplitHostPort(cfg.Reference); err != nil || port == "" {
				return usagef("--reference %q: want HOST:PORT", cfg.Reference)
			}
		}
		cfg.Jobs = min(cfg.Jobs, cfg.Clients)
		cfg.Progress = cmd.ErrOrStderr()
		rep, err := pgload.Run(cmd.Context(), cfg)
		if err != nil {
			return err
		}
		if out.json() {
			return writeJSON(cmd.OutOrStdout(), rep)
		}
		t := newTable(cmd.OutOrStdout(), "WORKLOAD", "TARGET", "TPS", "X DIRECT", "ROUNDS")
		for _, r := range rep.Results {
			rounds := ""
			for i, v := range r.Rounds {
				if i > 0 {
					rounds += " "
				}
				rounds += fmt.Sprintf("%.0f", v)
			}
			t.row(r.Workload, r.Target, fmt.Sprintf("%.0f", r.TPS), fmt.Sprintf("%.2f", r.XDirect), rounds)
		}
		if err := t.flush(); err != nil {
			return err
		}
		ref := ""
		if rep.Reference != "" {
			ref = "; reference is the proxy at " + rep.Reference
		}
		_, err = fmt.Fprintf(cmd.OutOrStdout(), "pgbench -c %d -T %s -M %s, scale %d, %d rounds; medians%s\n",
			rep.Clients, rep.Duration, rep.Protocol, rep.Scale, rep.Rounds, ref)
		return err
	}
	return c
}
