// Package pgload measures the PostgreSQL gateway (package pgwire) with
// pgbench: the same pgbench load straight to PostgreSQL and through the
// gateway, interleaved in one run, and the gateway's TPS as a share of
// the direct TPS.
//
// On the server of Config.DSN (a superuser), Run creates a throwaway
// database, fills it with pgbench -i, and creates a read role (SELECT on
// the pgbench tables) and a write role (SELECT, INSERT, UPDATE, DELETE);
// it drops them at the end. In this process it starts the gateway on
// loopback on a fresh store in a temporary directory, with the real audit
// log, and a second gateway on another fresh store without an audit log,
// which says how much of the gateway's cost is the audit commit of each
// statement, and a bare TCP relay (target tcp-relay), which says what any
// userspace proxy costs on this machine. With Config.Reference, a proxy
// of the caller's (for example PgBouncer) is one more target, reference:
// what a proxy built for speed, without an audit, costs here. Each
// workload runs against each target for Config.Duration per round, the
// targets in rotated order every round:
//
//   - select-only: pgbench -S, as the read role (direct) or with a read
//     token (gateways);
//   - tpcb: pgbench's default TPC-B-like transaction, as the write role
//     or with a write token.
package pgload

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"latchkey/internal/access"
	"latchkey/internal/audit"
	"latchkey/internal/indexer"
	"latchkey/internal/pgwire"
	"latchkey/internal/scope"
	"latchkey/internal/seal"
	"latchkey/internal/store/sqlite"
	"latchkey/internal/usage"
)

// Config configures Run.
type Config struct {
	// DSN is a PostgreSQL superuser connection URL
	// (postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable). Required.
	DSN string
	// PGBench is the pgbench binary. Default: pgbench on PATH, else the
	// newest /usr/lib/postgresql/*/bin/pgbench.
	PGBench string
	// Clients and Jobs are pgbench's -c and -j. Default 8 and 4.
	Clients, Jobs int
	// Duration is pgbench's -T per target per round. Default 10s.
	Duration time.Duration
	// Rounds of interleaved runs. Default 3.
	Rounds int
	// Scale is pgbench -i's scale factor. Default 10.
	Scale int
	// Protocol is pgbench's -M: simple, extended or prepared. Default simple.
	Protocol string
	// IndexerProcess runs the audited gateway's audit search indexer in a
	// process of its own, as serve does (server.Config.IndexerProcess):
	// this binary's "audit index --follow", which the latchkey command is
	// and a test binary is not. False indexes in this process.
	IndexerProcess bool
	// AuditDelay is the audited gateway's audit.Config.IntegrateDelay, as
	// serve --audit-delay sets it (0: audit.DefaultIntegrateDelay).
	AuditDelay time.Duration
	// Reference is the HOST:PORT of a PostgreSQL proxy to run as target
	// reference, for comparison: pgbench connects to it with the same
	// user, password and database name as to the server (so it must pass
	// any database through to the server of DSN, as PgBouncer's "*"
	// database entry does). Empty: no reference target.
	Reference string
	// Progress, if set, gets one line per pgbench run.
	Progress io.Writer
	// Log is the gateways' application log. Default: discarded.
	Log *slog.Logger
}

// Targets of a run.
const (
	TargetDirect   = "direct"
	TargetRelay    = "tcp-relay"
	TargetGateway  = "gateway"
	TargetAuditOff = "gateway-audit-off"
	TargetRef      = "reference"
)

// Workloads of a run.
const (
	WorkloadSelect = "select-only"
	WorkloadTPCB   = "tpcb"
)

// Result is one workload against one target: the median TPS over the
// rounds, and each round's.
type Result struct {
	Workload string    `json:"workload"`
	Target   string    `json:"target"`
	TPS      float64   `json:"tps"`
	Rounds   []float64 `json:"rounds"`
	// XDirect is TPS as a multiple of the direct target's.
	XDirect float64 `json:"x_direct"`
}

// Report is a run's results.
type Report struct {
	Clients  int    `json:"clients"`
	Duration string `json:"duration"`
	Rounds   int    `json:"rounds"`
	Scale    int    `json:"scale"`
	Protocol string `json:"protocol"`
	// Reference is Config.Reference, if any.
	Reference string   `json:"reference,omitempty"`
	Results   []Result `json:"results"`
}

// Run runs the benchmark; see the package doc.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := defaults(&cfg); err != nil {
		return nil, err
	}
	db, err := newDatabase(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer db.drop()
	progress(cfg, "pgbench -i -s %d into %s", cfg.Scale, db.name)
	if err := db.fill(ctx, cfg); err != nil {
		return nil, err
	}
	on, err := startGateway(ctx, cfg, db, true)
	if err != nil {
		return nil, err
	}
	defer on.close()
	off, err := startGateway(ctx, cfg, db, false)
	if err != nil {
		return nil, err
	}
	defer off.close()
	relay, err := startRelay(db.addr)
	if err != nil {
		return nil, err
	}
	defer relay.Close()
	targets := []string{TargetDirect, TargetRelay, TargetGateway, TargetAuditOff}
	if cfg.Reference != "" {
		targets = append(targets, TargetRef)
	}
	tps := map[[2]string][]float64{}
	for round := range cfg.Rounds {
		for _, wl := range []string{WorkloadSelect, WorkloadTPCB} {
			order := slices.Clone(targets)
			for range round % len(order) {
				order = append(order[1:], order[0])
			}
			for _, tg := range order {
				env := db.env(wl)
				switch tg {
				case TargetRelay:
					host, port, _ := net.SplitHostPort(relay.Addr().String())
					env = append(env, "PGHOST="+host, "PGPORT="+port) // later entries win
				case TargetRef:
					host, port, _ := net.SplitHostPort(cfg.Reference)
					env = append(env, "PGHOST="+host, "PGPORT="+port)
				case TargetGateway:
					env = on.env(wl)
				case TargetAuditOff:
					env = off.env(wl)
				}
				v, err := pgbench(ctx, cfg, wl, env)
				if err != nil {
					return nil, fmt.Errorf("%s %s: %w", wl, tg, err)
				}
				progress(cfg, "round %d/%d  %-11s  %-17s  %8.0f tps", round+1, cfg.Rounds, wl, tg, v)
				k := [2]string{wl, tg}
				tps[k] = append(tps[k], v)
			}
		}
	}
	rep := &Report{Clients: cfg.Clients, Duration: cfg.Duration.String(), Rounds: cfg.Rounds, Scale: cfg.Scale, Protocol: cfg.Protocol, Reference: cfg.Reference}
	for _, wl := range []string{WorkloadSelect, WorkloadTPCB} {
		direct := median(tps[[2]string{wl, TargetDirect}])
		for _, tg := range targets {
			rs := tps[[2]string{wl, tg}]
			r := Result{Workload: wl, Target: tg, TPS: median(rs), Rounds: rs}
			if direct > 0 {
				r.XDirect = r.TPS / direct
			}
			rep.Results = append(rep.Results, r)
		}
	}
	return rep, nil
}

func defaults(cfg *Config) error {
	if cfg.DSN == "" {
		return errors.New("pgload: a superuser DSN is required")
	}
	if cfg.PGBench == "" {
		p, err := exec.LookPath("pgbench")
		if err != nil {
			found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pgbench")
			if len(found) == 0 {
				return errors.New("pgload: no pgbench on PATH or in /usr/lib/postgresql/*/bin")
			}
			slices.Sort(found)
			p = found[len(found)-1]
		}
		cfg.PGBench = p
	}
	if cfg.Clients == 0 {
		cfg.Clients = 8
	}
	if cfg.Jobs == 0 {
		cfg.Jobs = min(4, cfg.Clients)
	}
	if cfg.Duration == 0 {
		cfg.Duration = 10 * time.Second
	}
	if cfg.Rounds == 0 {
		cfg.Rounds = 3
	}
	if cfg.Scale == 0 {
		cfg.Scale = 10
	}
	if cfg.Protocol == "" {
		cfg.Protocol = "simple"
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return nil
}

func progress(cfg Config, format string, args ...any) {
	if cfg.Progress != nil {
		fmt.Fprintf(cfg.Progress, format+"\n", args...)
	}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

var tpsLine = regexp.MustCompile(`(?m)^tps = ([0-9.]+) \(without initial connection time\)`)

// pgbench runs one timed pgbench and returns its TPS.
func pgbench(ctx context.Context, cfg Config, workload string, env []string) (float64, error) {
	args := []string{"-n", "-c", strconv.Itoa(cfg.Clients), "-j", strconv.Itoa(cfg.Jobs),
		"-T", strconv.Itoa(int(cfg.Duration.Seconds())), "-M", cfg.Protocol}
	if workload == WorkloadSelect {
		args = append(args, "-S")
	}
	cmd := exec.CommandContext(ctx, cfg.PGBench, args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("pgbench: %w\n%s", err, out)
	}
	m := tpsLine.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("pgbench printed no tps line:\n%s", out)
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

// startRelay starts a bare TCP relay to addr on loopback (two io.Copy per
// connection): the cost of any userspace proxy on this machine, which the
// gateway cannot go below.
func startRelay(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", addr)
				if err != nil {
					return
				}
				defer up.Close()
				done := make(chan struct{})
				go func() { io.Copy(up, c); up.(*net.TCPConn).CloseWrite(); close(done) }()
				io.Copy(c, up)
				<-done
			}()
		}
	}()
	return ln, nil
}

// database is the throwaway database and its roles.
type database struct {
	admin               *pgconn.Config
	addr                string
	name, ro, rw, pw    string
	host, port, sslmode string
}

func newDatabase(ctx context.Context, cfg Config) (*database, error) {
	u, err := url.Parse(cfg.DSN)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, errors.New("pgload: --dsn must be a postgres:// URL")
	}
	admin, err := pgconn.ParseConfig(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("pgload: --dsn: %w", err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	suffix := hex.EncodeToString(b)
	pw := make([]byte, 16)
	rand.Read(pw)
	port := u.Port()
	if port == "" {
		port = "5432"
	}
	d := &database{admin: admin, name: "lkbench_" + suffix, ro: "lkbench_" + suffix + "_ro", rw: "lkbench_" + suffix + "_rw",
		pw: hex.EncodeToString(pw), host: u.Hostname(), port: port, sslmode: u.Query().Get("sslmode")}
	d.addr = net.JoinHostPort(d.host, d.port)
	if err := d.exec(ctx, "", "CREATE DATABASE "+d.name,
		"CREATE ROLE "+d.ro+" LOGIN PASSWORD '"+d.pw+"'",
		"CREATE ROLE "+d.rw+" LOGIN PASSWORD '"+d.pw+"'"); err != nil {
		d.drop()
		return nil, err
	}
	return d, nil
}

// exec runs statements as the superuser in database db ("" for the DSN's).
func (d *database) exec(ctx context.Context, db string, stmts ...string) error {
	cfg := d.admin.Copy()
	if db != "" {
		cfg.Database = db
	}
	c, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("pgload: connect: %w", err)
	}
	defer c.Close(context.Background())
	for _, s := range stmts {
		if _, err := c.Exec(ctx, s).ReadAll(); err != nil {
			return fmt.Errorf("pgload: %s: %w", s, err)
		}
	}
	return nil
}

// fill runs pgbench -i as the superuser, then grants the roles.
func (d *database) fill(ctx context.Context, cfg Config) error {
	cmd := exec.CommandContext(ctx, cfg.PGBench, "-i", "-q", "-s", strconv.Itoa(cfg.Scale))
	cmd.Env = d.pgenv(d.admin.User, d.admin.Password, d.name)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pgbench -i: %w\n%s", err, out)
	}
	tables := "pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history"
	return d.exec(ctx, d.name,
		"GRANT CONNECT ON DATABASE "+d.name+" TO "+d.ro+", "+d.rw,
		"GRANT SELECT ON "+tables+" TO "+d.ro,
		"GRANT SELECT, INSERT, UPDATE, DELETE ON "+tables+" TO "+d.rw)
}

// drop removes the database and roles.
func (d *database) drop() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d.exec(ctx, "", "DROP DATABASE IF EXISTS "+d.name+" WITH (FORCE)", "DROP ROLE IF EXISTS "+d.ro, "DROP ROLE IF EXISTS "+d.rw)
}

// env is pgbench's environment for the direct target.
func (d *database) env(workload string) []string {
	user := d.rw
	if workload == WorkloadSelect {
		user = d.ro
	}
	return d.pgenv(user, d.pw, d.name)
}

func (d *database) pgenv(user, password, db string) []string {
	env := []string{"PGHOST=" + d.host, "PGPORT=" + d.port, "PGUSER=" + user, "PGPASSWORD=" + password, "PGDATABASE=" + db}
	if d.sslmode != "" {
		env = append(env, "PGSSLMODE="+d.sslmode)
	}
	return env
}

// gateway is an in-process PostgreSQL gateway on a fresh store.
type gateway struct {
	dir         string
	st          *sqlite.Store
	log         *audit.Log
	queue       *sqlite.QueuedAudit
	indexer     *indexer.Process // or nil
	use         *usage.Recorder
	srv         *pgwire.Server
	host, port  string
	read, write string // tokens
	db          string
}

var root = access.Actor{TokenID: "bench", Scopes: scope.Set{scope.MustParse("admin:*")}}

func startGateway(ctx context.Context, cfg Config, db *database, audited bool) (*gateway, error) {
	dir, err := os.MkdirTemp("", "latchkey-pgbench-")
	if err != nil {
		return nil, err
	}
	g := &gateway{dir: dir, db: db.name}
	if err := g.start(ctx, cfg, db, audited); err != nil {
		g.close()
		return nil, err
	}
	return g, nil
}

func (g *gateway) start(ctx context.Context, cfg Config, db *database, audited bool) error {
	path := filepath.Join(g.dir, "latchkey.db")
	external := cfg.IndexerProcess && audited
	var opts []sqlite.Option
	if external {
		opts = append(opts, sqlite.ExternalIndexer(sqlite.MaxIndexLag), sqlite.AuditHelper(sqlite.HelperHold))
	}
	st, err := sqlite.Open(ctx, path, opts...)
	if err != nil {
		return err
	}
	g.st = st
	if external {
		if g.indexer, err = indexer.Beside(cfg.Log, path, audit.DefaultIntegrateDelay); err != nil {
			return err
		}
	}
	key := make([]byte, 32)
	rand.Read(key)
	box, err := seal.New(key)
	if err != nil {
		return err
	}
	acfg := access.Config{Store: st, Box: box, Log: cfg.Log}
	if audited {
		// The queued audit log, as serve has it.
		if g.queue, err = st.QueuedAudit(ctx, sqlite.SyncNormal); err != nil {
			return err
		}
		g.log = audit.New(g.queue, audit.Config{IntegrateDelay: cfg.AuditDelay})
		acfg.Audit = g.log
	}
	a, err := access.New(acfg)
	if err != nil {
		return err
	}
	upstream := "postgres://" + db.addr
	if db.sslmode != "" {
		upstream += "?sslmode=" + db.sslmode
	}
	if _, err := a.AddDatabaseService(ctx, root, "bench", upstream, access.DatabaseLogins{
		Read: access.DatabaseLogin{User: db.ro, Password: db.pw}, Write: access.DatabaseLogin{User: db.rw, Password: db.pw}}); err != nil {
		return err
	}
	if _, err := a.AddContractor(ctx, root, access.NewContractor{Name: "bench", Email: "bench@example.com", Sponsor: "bench", Until: time.Now().Add(24 * time.Hour)}); err != nil {
		return err
	}
	if _, err := a.AddGrant(ctx, root, "bench", []string{"bench:*:/" + db.name}, time.Now().Add(12*time.Hour)); err != nil {
		return err
	}
	for _, t := range []struct {
		scope string
		text  *string
	}{{"bench:read:/" + db.name, &g.read}, {"bench:write:/" + db.name, &g.write}} {
		iss, err := a.Issue(ctx, root, access.IssueRequest{Contractor: "bench", Scopes: []string{t.scope}, TTL: 6 * time.Hour})
		if err != nil {
			return err
		}
		*t.text = iss.Text
	}
	g.use = usage.New(usage.Config{Store: st, Log: cfg.Log})
	if g.srv, err = pgwire.New(pgwire.Config{Authority: a, Usage: g.use, Log: cfg.Log}); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	g.host, g.port, _ = net.SplitHostPort(ln.Addr().String())
	go g.srv.Serve(ln)
	return nil
}

// env is pgbench's environment for this gateway.
func (g *gateway) env(workload string) []string {
	tok := g.write
	if workload == WorkloadSelect {
		tok = g.read
	}
	return []string{"PGHOST=" + g.host, "PGPORT=" + g.port, "PGUSER=bench", "PGPASSWORD=" + tok,
		"PGDATABASE=bench/" + g.db, "PGSSLMODE=disable"}
}

func (g *gateway) close() {
	if g.indexer != nil {
		g.indexer.Stop()
	}
	if g.srv != nil {
		g.srv.Close()
	}
	if g.use != nil {
		g.use.Close(context.Background())
	}
	if g.log != nil {
		g.log.Close()
	}
	if g.queue != nil {
		g.queue.Close()
	}
	if g.st != nil {
		g.st.Close()
	}
	os.RemoveAll(g.dir)
}
