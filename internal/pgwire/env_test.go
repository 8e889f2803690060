package pgwire_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"latchkey/internal/access"
	"latchkey/internal/audit"
	"latchkey/internal/pgwire"
	"latchkey/internal/pgwire/pgwiretest"
	"latchkey/internal/scope"
	"latchkey/internal/seal"
	"latchkey/internal/store/sqlite"
	"latchkey/internal/usage"
)

// liveness bounds every wait for something that must happen; never a
// timing assertion.
const liveness = 10 * time.Second

var root = access.Actor{TokenID: "root", Scopes: scope.Set{scope.MustParse("admin:*")}}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// switchAuditor is the real audit log, failing every append while down.
type switchAuditor struct {
	log  *audit.Log
	down atomic.Bool
}

func (s *switchAuditor) Append(ctx context.Context, recs ...audit.Record) (int64, error) {
	if s.down.Load() {
		return 0, errors.New("audit storage unavailable (test)")
	}
	return s.log.Append(ctx, recs...)
}

// listen, if set, wraps the listener of the next env (tests are not parallel).
var listen func(net.Listener) net.Listener

// env is a PostgreSQL gateway in front of a throwaway database, service
// "pg", contractor alice with grants on it.
type env struct {
	db    *pgwiretest.DB
	a     *access.Authority
	log   *audit.Log
	aud   *switchAuditor
	st    *sqlite.Store
	use   *usage.Recorder
	srv   *pgwire.Server
	addr  string // host:port of the gateway
	clock *clock
}

func newEnv(t *testing.T, opts ...func(*pgwire.Config)) *env {
	t.Helper()
	return newGateway(t, pgwiretest.New(t), opts...)
}

// newBare is a gateway with contractor alice and her grants, but no
// service and no PostgreSQL: for what is refused before any upstream.
func newBare(t *testing.T, opts ...func(*pgwire.Config)) *env {
	return newGateway(t, nil, opts...)
}

// newGateway is newEnv with db, or newBare without.
func newGateway(t *testing.T, db *pgwiretest.DB, opts ...func(*pgwire.Config)) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "latchkey.db"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := seal.LoadOrCreateKey(filepath.Join(dir, "seal.key"))
	if err != nil {
		t.Fatal(err)
	}
	box, _ := seal.New(key)
	e := &env{st: st, clock: &clock{t: time.Now()}}
	e.log = audit.New(st.Audit(sqlite.SyncNormal), audit.Config{})
	e.aud = &switchAuditor{log: e.log}
	if e.a, err = access.New(access.Config{Store: st, Box: box, Now: e.clock.Now, Audit: e.aud}); err != nil {
		t.Fatal(err)
	}
	e.use = usage.New(usage.Config{Store: st, Interval: time.Hour})
	cfg := pgwire.Config{Authority: e.a, Usage: e.use}
	for _, o := range opts {
		o(&cfg)
	}
	if e.srv, err = pgwire.New(cfg); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = ln.Addr().String()
	if listen != nil {
		ln = listen(ln)
	}
	go e.srv.Serve(ln)
	t.Cleanup(func() {
		e.srv.Close()
		e.use.Close(ctx)
		e.log.Close()
		st.Close()
	})
	e.db = db
	upstream, logins := "postgres://127.0.0.1:1", access.DatabaseLogins{
		Read: access.DatabaseLogin{User: "r", Password: "r"}, Write: access.DatabaseLogin{User: "w", Password: "w"}}
	if db != nil {
		upstream, logins = db.Upstream(), access.DatabaseLogins{
			Read:  access.DatabaseLogin{User: db.ReadUser, Password: db.ReadPassword},
			Write: access.DatabaseLogin{User: db.WriteUser, Password: db.WritePassword},
		}
	}
	if _, err := e.a.AddDatabaseService(ctx, root, "pg", upstream, logins); err != nil {
		t.Fatal(err)
	}
	now := e.clock.Now()
	if _, err := e.a.AddContractor(ctx, root, access.NewContractor{Name: "alice", Email: "alice@example.com", Sponsor: "bob", Until: now.Add(30 * 24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.a.AddGrant(ctx, root, "alice", []string{"pg:*:/**"}, now.Add(20*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	return e
}

// issue returns a new token of alice's.
func (e *env) issue(t *testing.T, scopes ...string) (string, string) {
	t.Helper()
	iss, err := e.a.Issue(context.Background(), root, access.IssueRequest{Contractor: "alice", Scopes: scopes, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return iss.Text, iss.Token.ID
}

// dsn is a libpq keyword/value connection string to the gateway.
func (e *env) dsn(user, password, database string) string {
	host, port, _ := net.SplitHostPort(e.addr)
	return fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=%s sslmode=disable connect_timeout=10", host, port, user, password, database)
}

// connect opens a pgx connection through the gateway.
func (e *env) connect(t *testing.T, password, database string) (*pgx.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), liveness)
	defer cancel()
	c, err := pgx.Connect(ctx, e.dsn("alice", password, database))
	if err == nil {
		t.Cleanup(func() { c.Close(context.Background()) })
	}
	return c, err
}

// mustConnect is connect that fails the test on error.
func (e *env) mustConnect(t *testing.T, password, database string) *pgx.Conn {
	t.Helper()
	c, err := e.connect(t, password, database)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	return c
}

// records returns every audit record, and every leaf as bytes.
func (e *env) records(t *testing.T) ([]audit.Record, [][]byte) {
	t.Helper()
	ctx := context.Background()
	n, err := e.log.Size(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var recs []audit.Record
	var leaves [][]byte
	for i := int64(0); i < n; i++ {
		r, leaf, err := e.log.Record(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
		leaves = append(leaves, leaf)
	}
	return recs, leaves
}

// find returns the records of action, oldest first.
func (e *env) find(t *testing.T, action string) []audit.Record {
	t.Helper()
	recs, _ := e.records(t)
	var out []audit.Record
	for _, r := range recs {
		if r.Action == action {
			out = append(out, r)
		}
	}
	return out
}

// noSecret fails if any audit leaf holds one of the secrets.
func (e *env) noSecret(t *testing.T, secrets ...string) {
	t.Helper()
	_, leaves := e.records(t)
	for _, l := range leaves {
		for _, s := range secrets {
			if bytes.Contains(l, []byte(s)) {
				t.Fatalf("an audit record holds a secret %q: %q", s, l)
			}
		}
	}
}

// pgErr returns err's PostgreSQL error, failing if it has none.
func pgErr(t *testing.T, err error) *pgconn.PgError {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		t.Fatalf("want a PostgreSQL error, got %v", err)
	}
	return pe
}

// hasReason reports whether msg is a latchkey refusal with reason.
func hasReason(msg, reason string) bool {
	return strings.HasPrefix(msg, "latchkey: "+reason+": ")
}
