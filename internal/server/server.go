// Package server assembles a latchkey process from its data directory:
// the store, the sealing key, the rules (package access), usage batching
// and the admin API listener, with graceful shutdown.
//
// The data directory (mode 0700) holds:
//
//	latchkey.db    the SQLite store (plus -wal and -shm files); only hashes
//	               of tokens and sealed credentials, never a secret
//	seal.key       32-byte AES-256-GCM key for service credentials, 0600
//	admin.url      the admin API base URL while serve runs
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
	"time"

	"latchkey/internal/access"
	"latchkey/internal/adminapi"
	"latchkey/internal/audit"
	"latchkey/internal/gateway"
	"latchkey/internal/scope"
	"latchkey/internal/seal"
	"latchkey/internal/store/sqlite"
	"latchkey/internal/usage"
)

// File names inside the data directory.
const (
	dbFile   = "latchkey.db"
	keyFile  = "seal.key"
	addrFile = "admin.url"
	// gatewayFile holds the gateway's URL while serve runs with a gateway.
	gatewayFile = "gateway.url"
)

// DefaultAdminAddr is where the admin API listens when Config.AdminAddr is empty.
const DefaultAdminAddr = "127.0.0.1:7370"

// ErrInitialized is returned by Init for a data directory that already
// holds a store.
var ErrInitialized = errors.New("data directory is already initialized")

// Config configures Run.
type Config struct {
	// DataDir is the data directory. Required.
	DataDir string
	// AdminAddr is the admin API listen address. Default DefaultAdminAddr.
	AdminAddr string
	// MaxTTL is the longest token lifetime. Default access.DefaultMaxTTL.
	MaxTTL time.Duration
	// Log is the application log. Default: text on stderr.
	Log *slog.Logger
	// GatewayAddr, if set, is where the gateway listens (contractors call
	// services at /NAME/... there). Empty: no gateway listener.
	GatewayAddr string
	// AuditSync is "normal" (default: an acknowledged record survives a
	// kill of the process) or "full" (it also survives power loss: every
	// audit commit fsyncs, shared by group commit).
	AuditSync string
	// CheckpointDir, if set, receives a copy of every signed checkpoint
	// (besides DataDir/checkpoints), e.g. a mount shipped off the host.
	CheckpointDir string
	// CheckpointEvery is how often a checkpoint is signed while the log
	// grows. Default DefaultCheckpointEvery.
	CheckpointEvery time.Duration
	// TLSCert and TLSKey are PEM files; when both are set the admin API
	// serves HTTPS. Without them it serves plain HTTP, and only on a
	// loopback address, since every request carries an admin token.
	TLSCert, TLSKey string
}

// initActor is the actor recorded for what init creates.
var initActor = access.Actor{TokenID: "init", Scopes: scope.Set{scope.MustParse("admin:*")}}

// Init creates dataDir with an empty store and keys and returns the first
// admin token (scopes admin:*), expiring after ttl (0: the max TTL). If it
// fails after creating the store (a ttl the rules refuse, for instance), it
// removes the store again, so that dataDir is not left initialized without
// an admin token.
func Init(ctx context.Context, dataDir string, ttl time.Duration) (text string, expires time.Time, err error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", time.Time{}, fmt.Errorf("failed to create data directory: %w", err)
	}
	dbPath := filepath.Join(dataDir, dbFile)
	if _, err := os.Stat(dbPath); err == nil {
		return "", time.Time{}, fmt.Errorf("%s: %w", dataDir, ErrInitialized)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", time.Time{}, fmt.Errorf("failed to check for a store: %w", err)
	}
	in, err := open(ctx, dataDir, Config{})
	if err != nil {
		removeStore(dbPath)
		return "", time.Time{}, err
	}
	if ttl == 0 {
		ttl = in.a.MaxTTL()
	}
	iss, err := in.a.Issue(ctx, initActor, access.IssueRequest{Admin: true, Scopes: []string{"admin:*"}, TTL: ttl, Note: "created by init"})
	in.close()
	if err != nil {
		removeStore(dbPath)
		return "", time.Time{}, fmt.Errorf("failed to issue the first admin token: %w", err)
	}
	return iss.Text, iss.Token.ExpiresAt, nil
}

// removeStore deletes the SQLite files of a store Init created but could
// not finish.
func removeStore(dbPath string) {
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
	a       *access.Authority
	st      *sqlite.Store
	storage *sqlite.AuditStorage
	audit   *audit.Log
}

// close closes the audit log (after its batch in progress), then the store.
func (in *instance) close() error {
	return errors.Join(in.audit.Close(), in.st.Close())
}

// open opens the store, keys and audit log of dataDir and builds an
// Authority that audits through that log.
func open(ctx context.Context, dataDir string, cfg Config) (*instance, error) {
	if err := checkDir(dataDir); err != nil {
		return nil, err
	}
	sync, err := auditSync(cfg.AuditSync)
	if err != nil {
		return nil, err
	}
	key, err := seal.LoadOrCreateKey(filepath.Join(dataDir, keyFile))
	if err != nil {
		return nil, err
	}
	box, err := seal.New(key)
	if err != nil {
		return nil, err
	}
	if err := ensureAuditKey(dataDir); err != nil {
		return nil, fmt.Errorf("failed to create the audit signing key: %w", err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(dataDir, dbFile))
	if err != nil {
		return nil, err
	}
	in := &instance{st: st, storage: st.Audit(sync)}
	in.audit = audit.New(in.storage, audit.Config{})
	in.a, err = access.New(access.Config{Store: st, Box: box, MaxTTL: cfg.MaxTTL, Log: cfg.Log, Audit: in.audit})
	if err != nil {
		in.close()
		return nil, err
	}
	return in, nil
}

func auditSync(s string) (sqlite.Sync, error) {
	switch s {
	case "", "normal":
		return sqlite.SyncNormal, nil
	case "full":
		return sqlite.SyncFull, nil
	}
	return 0, fmt.Errorf("invalid audit sync %q: want normal or full", s)
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
	if cfg.CheckpointEvery <= 0 {
		cfg.CheckpointEvery = DefaultCheckpointEvery
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	tlsCfg, err := adminTLS(cfg)
	if err != nil {
		return err
	}
	if err := firstRun(ctx, cfg.DataDir, cfg.MaxTTL, stdout); err != nil {
		return err
	}
	in, err := open(ctx, cfg.DataDir, cfg)
	if err != nil {
		return err
	}
	defer in.close()
	return serve(ctx, cfg, in, tlsCfg, stdout)
}

// adminTLS loads the admin API's certificate, or refuses plain HTTP on an
// address other hosts can reach.
func adminTLS(cfg Config) (*tls.Config, error) {
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return nil, errors.New("give both --admin-tls-cert and --admin-tls-key, or neither")
	}
	if cfg.TLSCert == "" {
		if !loopback(cfg.AdminAddr) {
			return nil, fmt.Errorf("refusing to serve the admin API over plain HTTP on %s: admin tokens would cross the network in clear; "+
				"listen on a loopback address or give --admin-tls-cert and --admin-tls-key", cfg.AdminAddr)
		}
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("failed to load the admin TLS certificate: %w", err)
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

// firstRun initialises an empty data directory, printing the admin token.
// The token lives maxTTL, the server's longest token lifetime, or Init's
// default if that is shorter (or maxTTL is zero).
func firstRun(ctx context.Context, dataDir string, maxTTL time.Duration, stdout io.Writer) error {
	_, err := os.Stat(filepath.Join(dataDir, dbFile))
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	var ttl time.Duration // Init's default, access.DefaultMaxTTL
	if maxTTL > 0 && maxTTL < access.DefaultMaxTTL {
		ttl = maxTTL
	}
	text, exp, err := Init(ctx, dataDir, ttl)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "latchkey: initialized %s\nlatchkey: first admin token (shown once, expires %s):\n%s\n",
		dataDir, exp.Format(time.RFC3339), text)
	return nil
}

func serve(ctx context.Context, cfg Config, in *instance, tlsCfg *tls.Config, stdout io.Writer) error {
	cps, err := newCheckpointer(cfg, in)
	if err != nil {
		return err
	}
	rec := usage.New(usage.Config{Store: in.st, Log: cfg.Log})
	api, err := adminapi.New(adminapi.Config{Authority: in.a, Usage: rec, Log: cfg.Log, Audit: in.audit, AuditStorage: in.storage, Checkpoints: cps.sign})
	if err != nil {
		rec.Close(context.Background())
		return err
	}
	ln, err := net.Listen("tcp", cfg.AdminAddr)
	if err != nil {
		rec.Close(context.Background())
		return fmt.Errorf("failed to listen on %s: %w", cfg.AdminAddr, err)
	}
	scheme := "http://"
	if tlsCfg != nil {
		ln, scheme = tls.NewListener(ln, tlsCfg), "https://"
	}
	srv := &http.Server{
		Handler:           api,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(cfg.Log.Handler(), slog.LevelWarn),
	}
	url := scheme + ln.Addr().String()
	addrPath := filepath.Join(cfg.DataDir, addrFile)
	if err := os.WriteFile(addrPath, []byte(url+"\n"), 0o600); err != nil {
		ln.Close()
		rec.Close(context.Background())
		return fmt.Errorf("failed to write %s: %w", addrPath, err)
	}
	defer os.Remove(addrPath)
	fmt.Fprintf(stdout, "latchkey: admin API listening on %s\n", url)
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	gw, err := startGateway(cfg, in, rec, stdout, errc)
	if err != nil {
		srv.Close()
		rec.Close(context.Background())
		return err
	}
	if gw != nil {
		defer os.Remove(filepath.Join(cfg.DataDir, gatewayFile))
	}
	cpCtx, stopCheckpoints := context.WithCancel(context.Background())
	cpDone := make(chan struct{})
	go func() { defer close(cpDone); cps.loop(cpCtx, cfg.CheckpointEvery) }()
	defer func() { stopCheckpoints(); <-cpDone }()
	select {
	case err := <-errc:
		rec.Close(context.Background())
		return fmt.Errorf("listener stopped: %w", err)
	case <-ctx.Done():
	}
	cfg.Log.Info("shutting down: draining requests")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	if gw != nil {
		err = errors.Join(err, gw.Shutdown(sctx))
	}
	if ferr := rec.Close(sctx); ferr != nil {
		cfg.Log.Error("final usage flush failed", "err", ferr)
	}
	return err
}

// startGateway starts the gateway listener if cfg.GatewayAddr is set, and
// returns its server (nil without one). It reports Serve's end on errc.
func startGateway(cfg Config, in *instance, rec *usage.Recorder, stdout io.Writer, errc chan<- error) (*http.Server, error) {
	if cfg.GatewayAddr == "" {
		return nil, nil
	}
	h, err := gateway.New(gateway.Config{Authority: in.a, Usage: rec, Log: cfg.Log})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.GatewayAddr)
	if err != nil {
		return nil, fmt.Errorf("failed to listen on %s: %w", cfg.GatewayAddr, err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(cfg.Log.Handler(), slog.LevelWarn),
	}
	url := "http://" + ln.Addr().String()
	if err := os.WriteFile(filepath.Join(cfg.DataDir, gatewayFile), []byte(url+"\n"), 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	fmt.Fprintf(stdout, "latchkey: gateway listening on %s\n", url)
	go func() { errc <- srv.Serve(ln) }()
	return srv, nil
}
