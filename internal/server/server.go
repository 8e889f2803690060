// Package server assembles a latchkey process from its data directory:
// the store, the sealing key, the rules (package access), the audit log
// and its checkpoints, usage batching, the gateway listener and the admin
// API listener (with /healthz, /readyz and /metrics), with graceful
// shutdown.
//
// The data directory (mode 0700) holds:
//
//	latchkey.db    the SQLite store (plus -wal and -shm files); only hashes
//	               of tokens and sealed credentials, never a secret
//	latchkey-search.db  the audit search index, derived from the records
//	audit.key, audit.pub  the audit checkpoint signing key pair
//	seal.key       32-byte AES-256-GCM key for service credentials, 0600
//	admin.url      the admin API base URL while serve runs
//	gateway.url    the gateway base URL while serve runs
//	postgres.url   the PostgreSQL gateway's address, postgres://HOST:PORT,
//	               while serve runs with --pg-addr
//	gateway-dev.crt, gateway-dev.key  the gateway's development certificate
//	               and key (serve --gateway-tls-dev), 0600
//
// With Config.Store, the store and the audit log are in a PostgreSQL
// database instead, which several processes (replicas) may share; the
// data directory then holds no database, only the keys, and every
// replica needs copies of the same seal.key, audit.key and audit.pub.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"latchkey/internal/access"
	"latchkey/internal/adminapi"
	"latchkey/internal/audit"
	"latchkey/internal/dpop"
	"latchkey/internal/gateway"
	"latchkey/internal/indexer"
	"latchkey/internal/leak"
	"latchkey/internal/metrics"
	"latchkey/internal/notify"
	"latchkey/internal/scope"
	"latchkey/internal/store"
	"latchkey/internal/store/postgres"
	"latchkey/internal/store/sqlite"
	"latchkey/internal/usage"
	"latchkey/internal/web"
)

// File names inside the data directory.
const (
	dbFile   = "latchkey.db"
	keyFile  = "seal.key"
	addrFile = "admin.url"
	// gatewayFile holds the gateway's URL while serve runs with a gateway.
	gatewayFile = "gateway.url"
	// pgFile holds the PostgreSQL gateway's address while serve runs with one.
	pgFile = "postgres.url"
)

// Default listen addresses.
const (
	DefaultAdminAddr   = "127.0.0.1:7370"
	DefaultGatewayAddr = "127.0.0.1:7380"
	// SuggestedPGAddr is the conventional PostgreSQL gateway address; the
	// PostgreSQL gateway is off unless Config.PGAddr is set.
	SuggestedPGAddr = "127.0.0.1:7372"
)

// DefaultStreamDrain is Config.StreamDrain's default.
const DefaultStreamDrain = 5 * time.Second

// ErrInitialized is returned by Init for a data directory that already
// holds a store.
var ErrInitialized = errors.New("data directory is already initialized")

// Config configures Run.
type Config struct {
	// DataDir is the data directory. Required.
	DataDir string
	// Store, if set, is the connection string of a PostgreSQL database
	// that holds the store instead of the SQLite database in DataDir
	// (package store/postgres), so that several processes can share it.
	// DataDir still holds the keys: processes sharing the store must have
	// copies of the same ones. Its password never appears in logs or
	// errors.
	Store string
	// AdminAddr is the admin API listen address. Default DefaultAdminAddr.
	AdminAddr string
	// MaxTTL is the longest token lifetime. Default access.DefaultMaxTTL.
	MaxTTL time.Duration
	// Log is the application log. Default: text on stderr.
	Log *slog.Logger
	// GatewayAddr is where the gateway listens (contractors call services
	// at /NAME/... there). Default DefaultGatewayAddr.
	GatewayAddr string
	// GatewayTLSCert and GatewayTLSKey are PEM files; when both are set
	// the gateway serves HTTPS (HTTP/1.1 and HTTP/2). Without them it
	// serves plain HTTP/1.1 and HTTP/2 with prior knowledge, and only on a
	// loopback address (behind a TLS-terminating proxy on the same host).
	GatewayTLSCert, GatewayTLSKey string
	// GatewayTLSDev serves the gateway over HTTPS with a development
	// certificate instead: self-signed (ECDSA P-256) for localhost,
	// 127.0.0.1, ::1 and GatewayAddr's host, kept in DataDir
	// (gateway-dev.crt, gateway-dev.key, both 0600) and reused by later
	// starts; its SHA-256 fingerprint is printed at start so that clients
	// can pin it. Not with GatewayTLSCert.
	GatewayTLSDev bool
	// GatewayClientCA is a PEM file of CA certificates. Over TLS the
	// gateway always requests (never requires) a client certificate, for
	// certificate-bound tokens (RFC 8705). Without GatewayClientCA any
	// certificate is accepted at the handshake, self-signed included: a
	// bound token names its certificate by thumbprint. With it, a
	// certificate presented must chain to one of these CAs, or the
	// handshake fails. Client-certificate headers of proxies are never
	// believed: behind a TLS-terminating proxy, certificate-bound tokens
	// are refused.
	GatewayClientCA string
	// GatewayPublicURL is the gateway's base URL as contractors call it:
	// the htu of their DPoP proofs must be it followed by the request
	// path. Default: http:// or https:// and GatewayAddr, or, when
	// GatewayAddr has an unspecified host or port 0, each request's Host.
	GatewayPublicURL string
	// DPoPNonce makes the gateway issue DPoP-Nonce values and require them
	// in DPoP proofs (RFC 9449 section 8). The nonce key is random per
	// process, so behind several replicas a client may be asked for a
	// fresh nonce once per replica.
	DPoPNonce bool
	// DPoPWindow is how far a DPoP proof's iat may be from the gateway's
	// clock. Zero: dpop.DefaultWindow.
	DPoPWindow time.Duration
	// PGAddr, if set, is where the PostgreSQL gateway listens (package
	// pgwire; port 0: any free port). It offers TLS with the gateway's
	// certificate (GatewayTLSCert or GatewayTLSDev); without one it must
	// be a loopback address, and refuses passwords from other hosts.
	// Empty: no PostgreSQL gateway.
	PGAddr string
	// TrustedProxies are networks whose X-Forwarded-For the gateway
	// believes. Default none.
	TrustedProxies []netip.Prefix
	// TokenRate and TokenBurst bound each token's gateway requests per
	// second. Zero: the gateway's defaults.
	TokenRate  float64
	TokenBurst int
	// FailureRate and FailureBurst bound the failed authentications per
	// second from one source address (0: the gateway's defaults).
	FailureRate  float64
	FailureBurst int
	// AccessLog logs one line per gateway request to Log.
	AccessLog bool
	// StreamDrain is how long a shutdown lets gateway requests in flight
	// finish before it cuts those still open (streams and WebSockets).
	// Default DefaultStreamDrain.
	StreamDrain time.Duration
	// AuditSync is "normal" (default: an acknowledged record survives a
	// kill of the process) or "full" (it also survives power loss: every
	// audit commit fsyncs, shared by group commit).
	AuditSync string
	// AuditDelay is audit.Config.IntegrateDelay: how long acknowledged
	// (journalled) audit records gather before they are added to the tree
	// (0: audit.DefaultIntegrateDelay).
	AuditDelay time.Duration
	// IndexerProcess, on the SQLite store, runs the audit search indexer
	// in a process of its own (package indexer): this binary's "audit
	// index --follow", which the latchkey command is and a test binary is
	// not. False indexes in this process.
	IndexerProcess bool
	// CheckpointDir, if set, receives a copy of every signed checkpoint
	// (besides DataDir/checkpoints), e.g. a mount shipped off the host.
	CheckpointDir string
	// CheckpointEvery is how often a checkpoint is signed while the log
	// grows. Default DefaultCheckpointEvery.
	CheckpointEvery time.Duration
	// WebhookAttempts is the most attempts per webhook delivery before it
	// fails. Zero: notify.DefaultAttempts.
	WebhookAttempts int
	// WebhookBackoff is the delay before a delivery's first retry; later
	// retries wait longer (about 6x, 24x, ... up to 720x it). Zero:
	// notify.DefaultBackoff.
	WebhookBackoff time.Duration
	// TLSCert and TLSKey are PEM files; when both are set the admin API
	// serves HTTPS. Without them it serves plain HTTP, and only on a
	// loopback address, since every request carries an admin token.
	TLSCert, TLSKey string
	// RequestApprovals is how many distinct approvers an access request
	// needs. Default 1.
	RequestApprovals int
	// RequestTTL is how long an access request waits for its approvals,
	// and an approved one for its fetch. Default access.DefaultRequestTTL.
	RequestTTL time.Duration
	// SweepEvery is how often the sweeper reaps idle tokens, ends
	// engagements and rotations, and sends expiry notices (package
	// sweeper). Zero runs no sweeper (serve's flag defaults to 30s).
	SweepEvery time.Duration
	// InvalidationPoll is how often the process reads the store's
	// invalidation feed and drops from its token cache what other
	// processes sharing the store revoked, rotated or offboarded (the
	// feed is pruned hourly by the same loop). Default
	// DefaultInvalidationPoll.
	InvalidationPoll time.Duration
	// ExpiryNotice is the sweeper's expiring-soon lead time. Default
	// sweeper.DefaultExpiryNotice (24h).
	ExpiryNotice time.Duration
	// LeakKeys is a file holding the public keys (GitHub's secret scanning
	// key document, see package leak) that sign leak reports to
	// POST /v1/leaks. Empty: that route refuses every report.
	LeakKeys string
}

// initActor is the actor recorded for what init creates.
var initActor = access.Actor{TokenID: "init", Scopes: scope.Set{scope.MustParse("admin:*")}}

// Init creates dataDir with an empty store and keys and returns the first
// admin token (scopes admin:*), expiring after ttl (0: the max TTL). If it
// fails after creating the store (a ttl the rules refuse, for instance), it
// removes the store again, so that dataDir is not left initialized without
// an admin token.
//
// With dsn set, the store is the PostgreSQL database dsn names and dataDir
// receives only the keys. That database is ErrInitialized if it holds an
// admin token; if another process began initialising it less than
// initStale ago, Init fails (errInitializing); a failed Init leaves it
// without an admin token, for a later one.
func Init(ctx context.Context, dataDir, dsn string, ttl time.Duration) (text string, expires time.Time, err error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", time.Time{}, fmt.Errorf("failed to create data directory: %w", err)
	}
	dbPath := filepath.Join(dataDir, dbFile)
	removeStore := func() {
		if dsn == "" {
			removeFiles(dbPath)
		}
	}
	if dsn != "" {
		if err := checkDir(dataDir); err != nil {
			return "", time.Time{}, err
		}
		done, err := sharedInitialized(ctx, Config{DataDir: dataDir, Store: dsn})
		if err != nil {
			return "", time.Time{}, err
		}
		if done {
			return "", time.Time{}, fmt.Errorf("%s: %w", postgres.Redact(dsn), ErrInitialized)
		}
	} else if _, err := os.Stat(dbPath); err == nil {
		return "", time.Time{}, fmt.Errorf("%s: %w", dataDir, ErrInitialized)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", time.Time{}, fmt.Errorf("failed to check for a store: %w", err)
	}
	in, err := open(ctx, dataDir, Config{Store: dsn})
	if err != nil {
		removeStore()
		return "", time.Time{}, err
	}
	if ttl == 0 {
		ttl = in.a.MaxTTL()
	}
	iss, err := in.a.Issue(ctx, initActor, access.IssueRequest{Admin: true, Scopes: []string{"admin:*"}, TTL: ttl, Note: "created by init"})
	in.close()
	if err != nil {
		removeStore()
		return "", time.Time{}, fmt.Errorf("failed to issue the first admin token: %w", err)
	}
	return iss.Text, iss.Token.ExpiresAt, nil
}

// removeFiles deletes the SQLite files of a store Init created but could
// not finish.
func removeFiles(dbPath string) {
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(dbPath + suffix)
	}
}

// checkDir refuses a data directory that group or others can open: it
// holds the store (contractors, token hashes) and the keys.
func checkDir(dataDir string) error {
	fi, err := os.Stat(dataDir)
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("data directory %s is not a directory", dataDir)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("data directory %s has mode %04o: it must not be accessible by group or others (chmod 700 %s)", dataDir, perm, dataDir)
	}
	return nil
}

// instance is an opened data directory.
type instance struct {
	a        *access.Authority
	st       store.Store
	storage  AuditStorage
	indexer  *indexer.Process // the audit search indexer, or nil
	audit    *audit.Log
	auditObs *auditMetrics      // the audit log's metrics, registered by serve
	hooks    *notify.Notifier   // queues webhook deliveries of the Authority's events
	deliver  *notify.Dispatcher // sends them (run by serve)
}

// close closes the audit log (after its batch in progress, and once what
// it queued is in the tree), its queue, then the store.
func (in *instance) close() error {
	var errs []error
	if in.indexer != nil {
		in.indexer.Stop()
	}
	if in.audit != nil {
		errs = append(errs, in.audit.Close())
	}
	if in.storage != nil {
		errs = append(errs, in.storage.Close())
	}
	return errors.Join(append(errs, in.st.Close())...)
}

// open opens the store, keys and audit log of dataDir and builds an
// Authority that audits through that log.
func open(ctx context.Context, dataDir string, cfg Config) (*instance, error) {
	if err := checkDir(dataDir); err != nil {
		return nil, err
	}
	if _, err := parseAuditSync(cfg.AuditSync); err != nil {
		return nil, err
	}
	box, err := loadBox(dataDir)
	if err != nil {
		return nil, err
	}
	if err := ensureAuditKey(dataDir); err != nil {
		return nil, fmt.Errorf("failed to create the audit signing key: %w", err)
	}
	external := cfg.IndexerProcess && cfg.Store == ""
	var opts []sqlite.Option
	if external {
		opts = append(opts, sqlite.ExternalIndexer(sqlite.MaxIndexLag), sqlite.AuditHelper(helperHold(cfg.AuditDelay)))
	}
	st, storage, err := OpenStore(ctx, dataDir, cfg.Store, cfg.AuditSync, opts...)
	if err != nil {
		return nil, err
	}
	in := &instance{st: st, storage: storage}
	if external {
		// After OpenStore: the indexer refuses a store not migrated yet.
		if in.indexer, err = indexer.Beside(cfg.Log, filepath.Join(dataDir, dbFile), integrateDelay(cfg.AuditDelay)); err != nil {
			in.close()
			return nil, err
		}
	}
	// Audit appends are queued (journalled), and added to the tree
	// behind: the audited operations wait for one write, not for the
	// tree's commit.
	in.auditObs = new(auditMetrics)
	in.audit = audit.New(in.storage, audit.Config{IntegrateDelay: cfg.AuditDelay, Observe: in.auditObs})
	if in.hooks, in.deliver, err = newWebhooks(cfg, st, box); err != nil {
		in.close()
		return nil, err
	}
	in.a, err = access.New(access.Config{Store: st, Box: box, MaxTTL: cfg.MaxTTL, Log: cfg.Log, Audit: in.audit,
		Events: in.hooks.Notify, RequestApprovals: cfg.RequestApprovals, RequestTTL: cfg.RequestTTL})
	if err != nil {
		in.close()
		return nil, err
	}
	return in, nil
}

// Run initialises cfg.DataDir if it holds no store (printing the first
// admin token once to stdout), serves the admin API until ctx is done,
// then drains in-flight requests and flushes usage before returning.
func Run(ctx context.Context, cfg Config, stdout io.Writer) error {
	if cfg.DataDir == "" {
		return errors.New("a data directory is required (--data)")
	}
	if cfg.AdminAddr == "" {
		cfg.AdminAddr = DefaultAdminAddr
	}
	if cfg.GatewayAddr == "" {
		cfg.GatewayAddr = DefaultGatewayAddr
	}
	if cfg.StreamDrain <= 0 {
		cfg.StreamDrain = DefaultStreamDrain
	}
	if cfg.CheckpointEvery <= 0 {
		cfg.CheckpointEvery = DefaultCheckpointEvery
	}
	if cfg.InvalidationPoll <= 0 {
		cfg.InvalidationPoll = DefaultInvalidationPoll
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	tlsCfg, err := listenTLS("admin", cfg.AdminAddr, cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return err
	}
	gwTLS, err := gatewayTLS(cfg)
	if err != nil {
		return err
	}
	if cfg.PGAddr != "" && gwTLS == nil && !loopback(cfg.PGAddr) {
		return fmt.Errorf("refusing to serve the PostgreSQL gateway without TLS on %s: tokens would cross the network in clear; "+
			"listen on a loopback address or give --gateway-tls-cert and --gateway-tls-key (or --gateway-tls-dev)", cfg.PGAddr)
	}
	leakKeys, err := loadLeakKeys(cfg.LeakKeys)
	if err != nil {
		return err
	}
	if err := firstRun(ctx, cfg, stdout); err != nil {
		return err
	}
	if cfg.GatewayTLSDev {
		if err := useDevCert(cfg, gwTLS, stdout); err != nil {
			return err
		}
	}
	in, err := open(ctx, cfg.DataDir, cfg)
	if err != nil {
		return err
	}
	defer in.close()
	return serve(ctx, cfg, in, tlsCfg, gwTLS, leakKeys, stdout)
}

// listenTLS loads the certificate of a listener (what: "admin", whose
// tokens are admin tokens, or "gateway"), or refuses plain HTTP on an
// address other hosts can reach. It returns nil for plain HTTP.
func listenTLS(what, addr, certFile, keyFile string) (*tls.Config, error) {
	if (certFile == "") != (keyFile == "") {
		return nil, fmt.Errorf("give both --%s-tls-cert and --%s-tls-key, or neither", what, what)
	}
	if certFile == "" {
		if !loopback(addr) {
			name, tokens := "the admin API", "admin tokens"
			if what == "gateway" {
				name, tokens = "the gateway", "contractor tokens"
			}
			return nil, fmt.Errorf("refusing to serve %s over plain HTTP on %s: %s would cross the network in clear; "+
				"listen on a loopback address or give --%s-tls-cert and --%s-tls-key", name, addr, tokens, what, what)
		}
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("failed to load the %s TLS certificate: %w", what, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// loopback reports whether a listen address is on the loopback interface
// only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// firstRun initialises an empty store, printing the admin token. The token
// lives cfg.MaxTTL, the server's longest token lifetime, or Init's default
// if that is shorter (or MaxTTL is zero). A shared (PostgreSQL) store that
// is already initialized needs the keys in the data directory.
func firstRun(ctx context.Context, cfg Config, stdout io.Writer) error {
	if cfg.Store == "" {
		_, err := os.Stat(filepath.Join(cfg.DataDir, dbFile))
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	var ttl time.Duration // Init's default, access.DefaultMaxTTL
	if cfg.MaxTTL > 0 && cfg.MaxTTL < access.DefaultMaxTTL {
		ttl = cfg.MaxTTL
	}
	text, exp, err := Init(ctx, cfg.DataDir, cfg.Store, ttl)
	if cfg.Store != "" && errors.Is(err, ErrInitialized) {
		return requireKeys(cfg)
	}
	if err != nil {
		return err
	}
	where := cfg.DataDir
	if cfg.Store != "" {
		where = fmt.Sprintf("%s (keys in %s)", postgres.Redact(cfg.Store), cfg.DataDir)
	}
	fmt.Fprintf(stdout, "latchkey: initialized %s\nlatchkey: first admin token (shown once, expires %s):\n%s\n",
		where, exp.Format(time.RFC3339), text)
	return nil
}

func serve(ctx context.Context, cfg Config, in *instance, tlsCfg, gwTLS *tls.Config, leakKeys *leak.Keys, stdout io.Writer) error {
	cps, err := newCheckpointer(cfg, in)
	if err != nil {
		return err
	}
	// Before the listeners: nothing is cached that the feed's start missed.
	stopFollower, err := startFollower(cfg, in)
	if err != nil {
		return err
	}
	defer stopFollower()
	rec := usage.New(usage.Config{Store: in.st, Log: cfg.Log})
	reg := new(metrics.Registry)
	gwh, err := newGateway(cfg, in, rec, reg)
	if err != nil {
		rec.Close(context.Background())
		return err
	}
	var stopping atomic.Bool
	api, err := adminapi.New(adminapi.Config{
		Authority: in.a, Usage: rec, Log: cfg.Log, Audit: in.audit, AuditStorage: in.storage, Checkpoints: cps.sign,
		Metrics: reg.Handler(), Webhooks: in.hooks, LeakKeys: leakKeys,
		Ready: func(ctx context.Context) error {
			if stopping.Load() {
				return &adminapi.NotReady{Component: "server", Err: errors.New("shutting down")}
			}
			if err := in.audit.Healthy(); err != nil {
				return &adminapi.NotReady{Component: "audit log", Err: err}
			}
			if _, err := in.audit.Integrated(ctx); err != nil {
				return &adminapi.NotReady{Component: "store", Err: err}
			}
			return nil
		},
	})
	if err != nil {
		rec.Close(context.Background())
		return err
	}
	console, err := web.New(web.Config{Authority: in.a, Audit: in.storage, AuditLog: in.audit, Checkpoints: cps.sign,
		LatestCheckpoint: cps.latest, Log: cfg.Log})
	if err != nil {
		rec.Close(context.Background())
		return err
	}
	defer console.Close()
	admin := http.NewServeMux()
	admin.Handle("/ui/", console)
	admin.Handle("/", api)
	srv := &http.Server{
		Handler:           admin,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(cfg.Log.Handler(), slog.LevelWarn),
	}
	streams, cutStreams := context.WithCancel(context.Background())
	defer cutStreams()
	pgTLS := pgTLS(gwTLS)
	gw := gatewayServer(cfg, gwh, gwTLS)
	gw.BaseContext = func(net.Listener) context.Context { return streams }
	errc := make(chan error, 3)
	stopAdmin, err := listen(cfg, "admin API", srv, cfg.AdminAddr, tlsCfg, addrFile, stdout, errc)
	if err != nil {
		rec.Close(context.Background())
		return err
	}
	defer stopAdmin()
	stopGateway, err := listen(cfg, "gateway", gw, cfg.GatewayAddr, gwTLS, gatewayFile, stdout, errc)
	if err != nil {
		srv.Close()
		rec.Close(context.Background())
		return err
	}
	defer stopGateway()
	pg, stopPG, err := listenPG(cfg, in, rec, pgTLS, stdout, errc)
	if err != nil {
		srv.Close()
		gw.Close()
		rec.Close(context.Background())
		return err
	}
	defer stopPG()
	if gatewayPublicURL(cfg) == "" {
		cfg.Log.Warn("gateway: no public URL (--gateway-addr has no fixed host and port): DPoP proofs are checked against each request's Host header; set --gateway-public-url")
	}
	cpCtx, stopCheckpoints := context.WithCancel(context.Background())
	cpDone := make(chan struct{})
	go func() { defer close(cpDone); cps.loop(cpCtx, cfg.CheckpointEvery) }()
	defer func() { stopCheckpoints(); <-cpDone }()
	defer runDispatcher(in.deliver)() // after the listeners drained: what they queued stays queued
	stopSweeper, err := startSweeper(cfg, in)
	if err != nil {
		srv.Close()
		gw.Close()
		pg.Close()
		rec.Close(context.Background())
		return err
	}
	defer stopSweeper()
	select {
	case err := <-errc:
		srv.Close()
		gw.Close()
		pg.Close()
		rec.Close(context.Background())
		return fmt.Errorf("listener stopped: %w", err)
	case <-ctx.Done():
	}
	stopping.Store(true)
	cfg.Log.Info("shutting down: draining requests")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	// Requests get StreamDrain to finish; then what is still open (streams,
	// WebSockets, which Shutdown does not track once upgraded) is cut.
	drained := make(chan struct{})
	go func() {
		select {
		case <-time.After(cfg.StreamDrain):
			cfg.Log.Info("shutting down: cutting open streams")
		case <-drained:
		}
		cutStreams()
	}()
	err = errors.Join(srv.Shutdown(sctx), gw.Shutdown(sctx), pg.Close())
	close(drained)
	if ferr := rec.Close(sctx); ferr != nil {
		cfg.Log.Error("final usage flush failed", "err", ferr)
	}
	return err
}

// newGateway builds the gateway handler and registers the process's
// metrics in reg.
func newGateway(cfg Config, in *instance, rec *usage.Recorder, reg *metrics.Registry) (*gateway.Handler, error) {
	gcfg := gateway.Config{
		Authority: in.a, Usage: rec, Log: cfg.Log, Metrics: gateway.NewMetrics(reg),
		TrustedProxies: cfg.TrustedProxies, TokenRate: rate.Limit(cfg.TokenRate), TokenBurst: cfg.TokenBurst,
		FailureRate: rate.Limit(cfg.FailureRate), FailureBurst: cfg.FailureBurst,
		PublicURL: gatewayPublicURL(cfg), DPoP: dpop.Config{Window: cfg.DPoPWindow},
	}
	if cfg.DPoPNonce {
		n, err := dpop.NewNonces(nil, 0)
		if err != nil {
			return nil, err
		}
		gcfg.DPoP.Nonces = n
	}
	if cfg.AccessLog {
		gcfg.AccessLog = cfg.Log
	}
	h, err := gateway.New(gcfg)
	if err != nil {
		return nil, err
	}
	reg.NewCounterFunc("latchkey_dpop_replay_refusals_total", "DPoP proofs refused because the jti replay cache was full (fail closed).",
		func() float64 { return float64(h.DPoPReplayRefusals()) })
	reg.NewGaugeFunc("latchkey_dpop_replay_entries", "DPoP proof jti values held for replay detection.",
		func() float64 { return float64(h.DPoPReplayEntries()) })
	reg.NewCounterFunc("latchkey_token_cache_hits_total", "Token lookups answered from the in-memory cache.",
		func() float64 { hits, _ := in.a.CacheStats(); return float64(hits) })
	reg.NewCounterFunc("latchkey_token_cache_misses_total", "Token lookups that went to the store.",
		func() float64 { _, misses := in.a.CacheStats(); return float64(misses) })
	reg.NewGaugeFunc("latchkey_token_cache_entries", "Token records held in the in-memory cache.",
		func() float64 { return float64(in.a.CachedTokens()) })
	reg.NewGaugeFunc("latchkey_audit_queue_depth", "Audit appends waiting for the next group commit.",
		func() float64 { return float64(in.audit.Queued()) })
	in.auditObs.register(reg)
	reg.NewGaugeFunc("latchkey_audit_pending_records", "Audit records acknowledged (journalled) but not yet added to the Merkle tree.",
		func() float64 { return float64(in.audit.Pending()) })
	reg.NewGaugeFunc("latchkey_audit_healthy", "1 while audit appends succeed, 0 once one fails (requests are then refused).",
		func() float64 {
			if in.audit.Healthy() != nil {
				return 0
			}
			return 1
		})
	return h, nil
}

// gatewayPublicURL is cfg.GatewayPublicURL or its default.
func gatewayPublicURL(cfg Config) string {
	if cfg.GatewayPublicURL != "" {
		return cfg.GatewayPublicURL
	}
	host, port, err := net.SplitHostPort(cfg.GatewayAddr)
	if err != nil || port == "0" || port == "" || host == "" {
		return ""
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsUnspecified() {
		return ""
	}
	scheme := "http://"
	if (cfg.GatewayTLSCert != "" && cfg.GatewayTLSKey != "") || cfg.GatewayTLSDev {
		scheme = "https://"
	}
	return scheme + cfg.GatewayAddr
}

// gatewayServer is the gateway's http.Server: HTTP/1.1 and HTTP/2 (over
// TLS, or with prior knowledge on plain HTTP). No read or write timeout
// bounds a whole request, since streams and WebSockets are long-lived;
// headers and idle connections are bounded.
func gatewayServer(cfg Config, h http.Handler, tlsCfg *tls.Config) *http.Server {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(cfg.Log.Handler(), slog.LevelWarn),
		TLSConfig:         tlsCfg,
		Protocols:         new(http.Protocols),
	}
	srv.Protocols.SetHTTP1(true)
	if tlsCfg != nil {
		srv.Protocols.SetHTTP2(true)
	} else {
		srv.Protocols.SetUnencryptedHTTP2(true)
	}
	return srv
}

// listen starts srv on addr (with TLS if tlsCfg is set), writes its URL to
// the data directory file urlFile and prints it. Serve's end is reported on
// errc. The returned func removes urlFile.
func listen(cfg Config, what string, srv *http.Server, addr string, tlsCfg *tls.Config, urlFile string, stdout io.Writer, errc chan<- error) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("failed to listen on %s: %w", addr, err)
	}
	scheme := "http://"
	if tlsCfg != nil {
		srv.TLSConfig = tlsCfg
		scheme = "https://"
	}
	url := scheme + ln.Addr().String()
	path := filepath.Join(cfg.DataDir, urlFile)
	if err := os.WriteFile(path, []byte(url+"\n"), 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("failed to write %s: %w", path, err)
	}
	fmt.Fprintf(stdout, "latchkey: %s listening on %s\n", what, url)
	go func() {
		if tlsCfg != nil {
			errc <- srv.ServeTLS(ln, "", "")
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	return func() { os.Remove(path) }, nil
}

// integrateDelay is the audit log's IntegrateDelay for a --audit-delay
// of delay: the audit helper process integrates as often.
func integrateDelay(delay time.Duration) time.Duration {
	if delay <= 0 {
		return audit.DefaultIntegrateDelay
	}
	return delay
}

// helperHold is how long serve leaves journalled audit records to the
// audit helper process before it integrates them itself: at least ten of
// the helper's rounds.
func helperHold(delay time.Duration) time.Duration {
	return max(sqlite.HelperHold, 10*integrateDelay(delay))
}
