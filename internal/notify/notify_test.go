package notify_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"latchkey/internal/access"
	"latchkey/internal/audit"
	"latchkey/internal/notify"
	"latchkey/internal/scope"
	"latchkey/internal/seal"
	"latchkey/internal/store"
	"latchkey/internal/store/sqlite"
)

// clock is a fake clock tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// failingAuditor refuses to commit while fail is set, else commits to log.
type failingAuditor struct {
	log  *audit.Log
	fail bool
}

func (f *failingAuditor) Append(ctx context.Context, recs ...audit.Record) (int64, error) {
	if f.fail {
		return 0, errors.New("disk full")
	}
	return f.log.Append(ctx, recs...)
}

// env is a notifier on a real SQLite store in a temporary directory, with
// a real audit log and a fake clock.
type env struct {
	path    string
	st      *sqlite.Store
	box     *seal.Box
	clock   *clock
	auditor *failingAuditor
	auth    *access.Authority
	n       *notify.Notifier
	logBuf  *bytes.Buffer
	log     *slog.Logger
}

var admin = access.Actor{TokenID: "AdminToken01", Scopes: scope.Set{scope.MustParse("admin:*")}}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{path: filepath.Join(t.TempDir(), "latchkey.db"), clock: &clock{t: time.Date(2026, 11, 30, 18, 0, 0, 0, time.UTC)}, logBuf: new(bytes.Buffer)}
	e.log = slog.New(slog.NewTextHandler(e.logBuf, nil))
	var err error
	if e.st, err = sqlite.Open(t.Context(), e.path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.st.Close() })
	key := make([]byte, 32)
	rand.Read(key)
	if e.box, err = seal.New(key); err != nil {
		t.Fatal(err)
	}
	e.auditor = &failingAuditor{log: audit.New(e.st.Audit(sqlite.SyncNormal), audit.Config{Linger: -1})}
	t.Cleanup(func() { e.auditor.log.Close() })
	if e.n, err = notify.New(notify.Config{Store: e.st, Box: e.box, Now: e.clock.Now, Log: e.log}); err != nil {
		t.Fatal(err)
	}
	e.auth, err = access.New(access.Config{Store: e.st, Box: e.box, Now: e.clock.Now, Audit: e.auditor, Log: e.log,
		Events: e.n.Notify})
	if err != nil {
		t.Fatal(err)
	}
	c := store.Contractor{Name: "alice", Email: "alice@example.com", Company: "Acme", Sponsor: "bob@corp.example",
		Until: e.clock.Now().Add(90 * 24 * time.Hour), CreatedAt: e.clock.Now(), CreatedBy: "AdminToken01"}
	if err := e.st.CreateContractor(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	return e
}

// dispatcher returns a dispatcher on e's store (or st), with a 1 s backoff base.
func (e *env) dispatcher(t *testing.T, st store.Store, attempts int) *notify.Dispatcher {
	t.Helper()
	if st == nil {
		st = e.st
	}
	d, err := notify.NewDispatcher(notify.DispatcherConfig{Store: st, Box: e.box, Attempts: attempts,
		Backoff: time.Second, Now: e.clock.Now, Log: e.log})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// add adds a webhook that must be accepted and returns it with its secret.
func (e *env) add(t *testing.T, nw notify.NewWebhook) (store.Webhook, string) {
	t.Helper()
	w, secret, err := e.n.Add(t.Context(), e.auth, admin, nw)
	if err != nil {
		t.Fatalf("Add %+v: %v", nw, err)
	}
	return w, secret
}

// revoked is the event of revoking token Tok000000001 of alice, manually.
func (e *env) revoked() access.Event {
	return access.Event{Type: access.EventTokenRevoked, Time: e.clock.Now(), Actor: "AdminToken01", TokenID: "Tok000000001",
		Contractor: "alice", Scopes: []string{"billing:read:/v1/**"}, ExpiresAt: e.clock.Now().Add(time.Hour), Reason: store.RevokeManual}
}

// delivered is one request a receiver got.
type delivered struct {
	Header http.Header
	Body   []byte
}

// receiver is a webhook endpoint on 127.0.0.1 that verifies every request
// with notify.Verify (at the fake clock's time) and answers the statuses
// of answer in turn (the last one for ever after).
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	secret string
	mu     sync.Mutex
	got    []delivered
	answer []int
}

func newReceiver(t *testing.T, c *clock, answer ...int) *receiver {
	r := &receiver{t: t, answer: answer}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
		r.mu.Lock()
		defer r.mu.Unlock()
		if err := notify.Verify(r.secret, req.Header, body, c.Now(), 0); err != nil {
			t.Errorf("receiver: request %d fails verification: %v", len(r.got)+1, err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if ct := req.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("receiver: Content-Type %q", ct)
		}
		r.got = append(r.got, delivered{req.Header.Clone(), body})
		status := r.answer[min(len(r.got), len(r.answer))-1]
		w.WriteHeader(status)
		io.WriteString(w, strings.Repeat("x", 200<<10)) // more than the dispatcher reads
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) requests() []delivered {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivered(nil), r.got...)
}

// tick runs one dispatcher round and returns how many attempts it made.
func tick(t *testing.T, d *notify.Dispatcher) int {
	t.Helper()
	n, err := d.Tick(t.Context())
	if err != nil {
		t.Fatalf("Tick: %v", err)
	}
	return n
}

func deliveries(t *testing.T, e *env, f store.DeliveryFilter) []store.Delivery {
	t.Helper()
	ds, err := e.n.Deliveries(t.Context(), f)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// TestRetryThenDelivered: 500, 500, then 200: delivered on attempt 3,
// every attempt logged with its status, the same webhook-id each time and
// every request correctly signed.
func TestRetryThenDelivered(t *testing.T) {
	e := newEnv(t)
	r := newReceiver(t, e.clock, 500, 500, 200)
	w, secret := e.add(t, notify.NewWebhook{URL: r.srv.URL + "/hook"})
	r.secret = secret
	d := e.dispatcher(t, nil, 5)

	e.n.Notify(t.Context(), e.revoked())
	if n := tick(t, d); n != 1 {
		t.Fatalf("first tick: %d attempts, want 1", n)
	}
	if n := tick(t, d); n != 0 {
		t.Fatalf("tick before the backoff: %d attempts, want 0", n)
	}
	for range 2 {
		e.clock.Add(time.Hour)
		if n := tick(t, d); n != 1 {
			t.Fatalf("tick after the backoff: %d attempts, want 1", n)
		}
	}
	e.clock.Add(24 * time.Hour)
	if n := tick(t, d); n != 0 {
		t.Fatalf("tick after delivery: %d attempts, want 0", n)
	}

	got := r.requests()
	if len(got) != 3 {
		t.Fatalf("receiver got %d requests, want 3", len(got))
	}
	for _, g := range got {
		if g.Header.Get(notify.HeaderID) != got[0].Header.Get(notify.HeaderID) {
			t.Errorf("webhook-id changed between attempts: %q, %q", got[0].Header.Get(notify.HeaderID), g.Header.Get(notify.HeaderID))
		}
	}
	var p notify.Payload
	if err := json.Unmarshal(got[2].Body, &p); err != nil {
		t.Fatal(err)
	}
	want := notify.Data{TokenID: "Tok000000001", Contractor: "alice", ContractorEmail: "alice@example.com", Company: "Acme",
		Sponsor: "bob@corp.example", Scopes: []string{"billing:read:/v1/**"}, Reason: "manual", Actor: "AdminToken01"}
	if p.Type != access.EventTokenRevoked || p.Data.ExpiresAt == nil {
		t.Errorf("payload %+v", p)
	}
	p.Data.ExpiresAt = nil
	if fmt.Sprint(p.Data) != fmt.Sprint(want) {
		t.Errorf("payload data\n got %+v\nwant %+v", p.Data, want)
	}

	ds := deliveries(t, e, store.DeliveryFilter{WebhookID: w.ID})
	if len(ds) != 1 {
		t.Fatalf("%d deliveries, want 1", len(ds))
	}
	dl := ds[0]
	if dl.State != store.DeliveryDelivered || dl.Attempts != 3 || len(dl.Log) != 3 {
		t.Fatalf("delivery: state %s, %d attempts, log %+v", dl.State, dl.Attempts, dl.Log)
	}
	for i, want := range []struct {
		status int
		state  string
	}{{500, "pending"}, {500, "pending"}, {200, "delivered"}} {
		a := dl.Log[i]
		if a.N != i+1 || a.Status != want.status || a.State != want.state || (a.State == "pending") == a.NextAt.IsZero() {
			t.Errorf("attempt %d: %+v, want status %d state %s", i+1, a, want.status, want.state)
		}
	}
	// Backoff with jitter: the first retry 1-1.2 s after, the second 6-7.2 s.
	for i, base := range []time.Duration{time.Second, 6 * time.Second} {
		if gap := dl.Log[i].NextAt.Sub(dl.Log[i].At); gap < base || gap > base+base/5 {
			t.Errorf("attempt %d: next attempt after %v, want %v plus at most a fifth", i+1, gap, base)
		}
	}
}

// TestAlwaysFailing: a receiver that always fails gets exactly Attempts
// attempts, then the delivery is failed and never tried again.
func TestAlwaysFailing(t *testing.T) {
	e := newEnv(t)
	r := newReceiver(t, e.clock, 503)
	_, r.secret = e.add(t, notify.NewWebhook{URL: r.srv.URL})
	d := e.dispatcher(t, nil, 4)
	e.n.Notify(t.Context(), e.revoked())
	for range 10 {
		tick(t, d)
		e.clock.Add(2 * time.Hour)
	}
	if got := len(r.requests()); got != 4 {
		t.Errorf("receiver got %d requests, want 4", got)
	}
	ds := deliveries(t, e, store.DeliveryFilter{State: store.DeliveryFailed})
	if len(ds) != 1 || ds[0].Attempts != 4 || len(ds[0].Log) != 4 {
		t.Fatalf("failed deliveries: %+v", ds)
	}
	last := ds[0].Log[3]
	if last.Status != 503 || last.Error != "HTTP 503" || last.State != store.DeliveryFailed || !last.NextAt.IsZero() {
		t.Errorf("last attempt %+v", last)
	}
}

// TestUnreachable: a connection error is an attempt with no status and
// an error text that does not repeat the URL (its path may be a secret).
func TestUnreachable(t *testing.T) {
	e := newEnv(t)
	r := newReceiver(t, e.clock, 200)
	url := r.srv.URL + "/services/T000/B000/SECRETPATH"
	r.srv.Close()
	e.add(t, notify.NewWebhook{URL: url})
	d := e.dispatcher(t, nil, 2)
	e.n.Notify(t.Context(), e.revoked())
	tick(t, d)
	ds := deliveries(t, e, store.DeliveryFilter{})
	if len(ds) != 1 || len(ds[0].Log) != 1 {
		t.Fatalf("deliveries %+v", ds)
	}
	a := ds[0].Log[0]
	if a.Status != 0 || a.Error == "" || strings.Contains(a.Error, "SECRETPATH") || a.State != store.DeliveryPending {
		t.Errorf("attempt %+v", a)
	}
	if strings.Contains(e.logBuf.String(), "SECRETPATH") {
		t.Errorf("the log holds the webhook URL:\n%s", e.logBuf)
	}
}

// TestNoRedirects: a 3xx answer is a failed attempt; its target is never called.
func TestNoRedirects(t *testing.T) {
	e := newEnv(t)
	target := newReceiver(t, e.clock, 200)
	redirector := httptest.NewServer(http.RedirectHandler(target.srv.URL, http.StatusTemporaryRedirect))
	defer redirector.Close()
	e.add(t, notify.NewWebhook{URL: redirector.URL})
	d := e.dispatcher(t, nil, 3)
	e.n.Notify(t.Context(), e.revoked())
	tick(t, d)
	if got := len(target.requests()); got != 0 {
		t.Errorf("the redirect target got %d requests", got)
	}
	ds := deliveries(t, e, store.DeliveryFilter{})
	if a := ds[0].Log[0]; a.Status != 307 || a.State != store.DeliveryPending {
		t.Errorf("attempt %+v, want status 307, pending", a)
	}
}

// TestSlackFormat: a slack webhook gets {"text": ...}, one line naming the
// contractor, sponsor, token and reason, with Slack markup escaped.
func TestSlackFormat(t *testing.T) {
	e := newEnv(t)
	r := newReceiver(t, e.clock, 200)
	_, r.secret = e.add(t, notify.NewWebhook{URL: r.srv.URL, Format: notify.FormatSlack})
	ev := e.revoked()
	e.n.Notify(t.Context(), ev)
	ev.Type, ev.Reason, ev.RequestID = access.EventAccessRequested, "need <!channel> & more", "req_1"
	e.n.Notify(t.Context(), ev)
	tick(t, e.dispatcher(t, nil, 1))
	got := r.requests()
	if len(got) != 2 {
		t.Fatalf("receiver got %d requests, want 2", len(got))
	}
	texts := map[string]bool{}
	for _, g := range got {
		var msg map[string]string
		dec := json.NewDecoder(bytes.NewReader(g.Body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&msg); err != nil || len(msg) != 1 {
			t.Fatalf("slack body %s: %v", g.Body, err)
		}
		texts[msg["text"]] = true
	}
	for _, want := range []string{
		"latchkey: token Tok000000001 of contractor alice (sponsor bob@corp.example) revoked, reason manual, by AdminToken01",
		"latchkey: contractor alice (sponsor bob@corp.example) requests billing:read:/v1/** (request req_1): need &lt;!channel&gt; &amp; more, by AdminToken01",
	} {
		if !texts[want] {
			t.Errorf("no message %q in %v", want, texts)
		}
	}
}

// TestEventFilter: a webhook gets only the events it subscribed to.
func TestEventFilter(t *testing.T) {
	e := newEnv(t)
	r := newReceiver(t, e.clock, 200)
	w, secret := e.add(t, notify.NewWebhook{URL: r.srv.URL, Events: []string{access.EventTokenIssued}})
	r.secret = secret
	if len(w.Events) != 1 || w.Events[0] != access.EventTokenIssued {
		t.Fatalf("events %v", w.Events)
	}
	e.n.Notify(t.Context(), e.revoked())
	ev := e.revoked()
	ev.Type, ev.Reason = access.EventTokenIssued, ""
	e.n.Notify(t.Context(), ev)
	tick(t, e.dispatcher(t, nil, 1))
	got := r.requests()
	if len(got) != 1 || !bytes.Contains(got[0].Body, []byte(`"type":"token.issued"`)) {
		t.Fatalf("receiver got %d requests: %v", len(got), got)
	}
}

// TestTwoDispatchers: two dispatchers on two connections to one database
// (as two replicas) racing over the same deliveries never send an
// attempt twice.
func TestTwoDispatchers(t *testing.T) {
	e := newEnv(t)
	r := newReceiver(t, e.clock, 200)
	_, r.secret = e.add(t, notify.NewWebhook{URL: r.srv.URL})
	const n = 40
	for range n {
		e.n.Notify(t.Context(), e.revoked())
	}
	st2, err := sqlite.Open(t.Context(), e.path)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	ds := []*notify.Dispatcher{e.dispatcher(t, nil, 3), e.dispatcher(t, st2, 3)}
	var wg sync.WaitGroup
	for _, d := range ds {
		wg.Go(func() {
			if _, err := d.Tick(t.Context()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	seen := map[string]int{}
	for _, g := range r.requests() {
		seen[g.Header.Get(notify.HeaderID)]++
	}
	if len(seen) != n {
		t.Errorf("%d distinct deliveries received, want %d", len(seen), n)
	}
	for id, k := range seen {
		if k != 1 {
			t.Errorf("delivery %s sent %d times", id, k)
		}
	}
	if got := len(deliveries(t, e, store.DeliveryFilter{State: store.DeliveryDelivered})); got != n {
		t.Errorf("%d delivered, want %d", got, n)
	}
}

// TestAddRefused: every invalid webhook is refused with invalid_request,
// recorded as a denial, and nothing is stored.
func TestAddRefused(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name string
		nw   notify.NewWebhook
	}{
		{"empty URL", notify.NewWebhook{}},
		{"relative", notify.NewWebhook{URL: "/hook"}},
		{"ftp", notify.NewWebhook{URL: "ftp://hooks.example.com/x"}},
		{"javascript", notify.NewWebhook{URL: "javascript:alert(1)"}},
		{"plain http off loopback", notify.NewWebhook{URL: "http://hooks.example.com/x"}},
		{"plain http, secret path", notify.NewWebhook{URL: "http://hooks.slack.com/services/T0/B0/s3cr3tPath?k=s3cr3tQuery"}},
		{"plain http to a private address", notify.NewWebhook{URL: "http://10.0.0.1/x"}},
		{"no host", notify.NewWebhook{URL: "https:///x"}},
		{"user info", notify.NewWebhook{URL: "https://user:pw@hooks.example.com/x"}},
		{"fragment", notify.NewWebhook{URL: "https://hooks.example.com/x#frag"}},
		{"space", notify.NewWebhook{URL: "https://hooks.example.com/a b"}},
		{"newline", notify.NewWebhook{URL: "https://hooks.example.com/a\nb"}},
		{"bad port", notify.NewWebhook{URL: "https://hooks.example.com:99999/x"}},
		{"too long", notify.NewWebhook{URL: "https://hooks.example.com/" + strings.Repeat("a", 2048)}},
		{"unknown event", notify.NewWebhook{URL: "https://hooks.example.com/x", Events: []string{"token.eaten"}}},
		{"event twice", notify.NewWebhook{URL: "https://hooks.example.com/x", Events: []string{"token.issued", "token.issued"}}},
		{"unknown format", notify.NewWebhook{URL: "https://hooks.example.com/x", Format: "teams"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := auditSize(t, e)
			_, secret, err := e.n.Add(t.Context(), e.auth, admin, tc.nw)
			if access.ReasonOf(err) != access.ReasonInvalid || secret != "" {
				t.Fatalf("Add: got %v (reason %q), want invalid_request", err, access.ReasonOf(err))
			}
			// A refusal quotes the scheme and host at most: the path and
			// query of a webhook URL can be its secret.
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("refusal quotes the URL's path or query: %v", err)
			}
			if got := auditSize(t, e); got != before+1 {
				t.Errorf("audit grew by %d records, want 1 denial", got-before)
			}
		})
	}
	if ws, _ := e.n.Webhooks(t.Context()); len(ws) != 0 {
		t.Errorf("webhooks stored: %+v", ws)
	}
	// These are fine.
	for _, u := range []string{"http://127.0.0.1:8080/x", "http://localhost/x", "http://[::1]/x", "https://hooks.example.com/services/T/B/X?a=1"} {
		e.add(t, notify.NewWebhook{URL: u, Events: []string{"*"}})
	}
}

func auditSize(t *testing.T, e *env) int64 {
	t.Helper()
	n, err := e.auditor.log.Size(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// auditRecords returns every record of e's audit log.
func auditRecords(t *testing.T, e *env) []audit.Record {
	t.Helper()
	var recs []audit.Record
	for i := range auditSize(t, e) {
		r, _, err := e.auditor.log.Record(t.Context(), i)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	return recs
}

// TestAddAuditedSecretOnce: adding is audited before it is stored (an
// audit failure refuses it), the secret comes back once, well-formed, and
// appears nowhere else: not in the store, the audit log or the log.
func TestAddAuditedSecretOnce(t *testing.T) {
	e := newEnv(t)
	e.auditor.fail = true
	_, _, err := e.n.Add(t.Context(), e.auth, admin, notify.NewWebhook{URL: "https://hooks.example.com/x"})
	if access.ReasonOf(err) != access.ReasonAuditUnavailable {
		t.Fatalf("Add without audit: got %v, want audit_unavailable", err)
	}
	if ws, _ := e.n.Webhooks(t.Context()); len(ws) != 0 {
		t.Fatalf("stored without an audit record: %+v", ws)
	}
	e.auditor.fail = false

	w, secret := e.add(t, notify.NewWebhook{URL: "https://hooks.example.com/services/T/B/PATHSECRET", Format: "slack"})
	if !strings.HasPrefix(secret, notify.SecretPrefix) || len(secret) != len(notify.SecretPrefix)+44 {
		t.Errorf("secret %q: want whsec_ and the base64 of 32 bytes", secret)
	}
	ws, err := e.n.Webhooks(t.Context())
	if err != nil || len(ws) != 1 || ws[0].ID != w.ID || ws[0].Format != "slack" {
		t.Fatalf("Webhooks: %+v, %v", ws, err)
	}
	if bytes.Contains(ws[0].SealedSecret, []byte(secret[len(notify.SecretPrefix):])) {
		t.Error("the store holds the secret in plain text")
	}
	recs := auditRecords(t, e)
	last := recs[len(recs)-1]
	if last.Action != "webhook.add" || last.Decision != audit.Allow || last.Actor != admin.TokenID ||
		!strings.Contains(last.Reason, w.ID) || !strings.Contains(last.Reason, "hooks.example.com") {
		t.Errorf("audit record %+v", last)
	}
	for _, r := range recs {
		if b, _ := json.Marshal(r); bytes.Contains(b, []byte(secret)) || bytes.Contains(b, []byte("PATHSECRET")) {
			t.Errorf("audit record holds a secret: %s", b)
		}
	}
	if strings.Contains(e.logBuf.String(), secret) {
		t.Error("the log holds the secret")
	}
}

// TestRemove: removal is audited, refused for an unknown or malformed id,
// and fails the webhook's pending deliveries, whose log stays.
func TestRemove(t *testing.T) {
	e := newEnv(t)
	w, _ := e.add(t, notify.NewWebhook{URL: "https://hooks.example.com/x"})
	e.n.Notify(t.Context(), e.revoked())
	for _, tc := range []struct{ id, reason string }{
		{"wh_0000000000000000", access.ReasonNotFound},
		{"wh_x", access.ReasonInvalid},
		{"", access.ReasonInvalid},
	} {
		if err := e.n.Remove(t.Context(), e.auth, admin, tc.id); access.ReasonOf(err) != tc.reason {
			t.Errorf("Remove %q: got %v, want %s", tc.id, err, tc.reason)
		}
	}
	if err := e.n.Remove(t.Context(), e.auth, admin, w.ID); err != nil {
		t.Fatal(err)
	}
	recs := auditRecords(t, e)
	if last := recs[len(recs)-1]; last.Action != "webhook.remove" || last.Decision != audit.Allow || last.Reason != w.ID {
		t.Errorf("audit record %+v", last)
	}
	ds := deliveries(t, e, store.DeliveryFilter{WebhookID: w.ID})
	if len(ds) != 1 || ds[0].State != store.DeliveryFailed {
		t.Errorf("deliveries after remove: %+v", ds)
	}
	if _, err := e.n.Deliveries(t.Context(), store.DeliveryFilter{State: "lost"}); access.ReasonOf(err) != access.ReasonInvalid {
		t.Errorf("Deliveries with a bad state: %v", err)
	}
}

// TestRunWakes: Run sends a delivery as soon as Notify wakes it, without
// waiting for its poll, and returns when its context ends.
func TestRunWakes(t *testing.T) {
	e := newEnv(t)
	r := newReceiver(t, e.clock, 200)
	_, r.secret = e.add(t, notify.NewWebhook{URL: r.srv.URL})
	d, err := notify.NewDispatcher(notify.DispatcherConfig{Store: e.st, Box: e.box, Poll: time.Hour, Now: e.clock.Now, Log: e.log})
	if err != nil {
		t.Fatal(err)
	}
	n, err := notify.New(notify.Config{Store: e.st, Box: e.box, Now: e.clock.Now, Enqueued: d.Wake})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }()
	n.Notify(t.Context(), e.revoked())
	for len(r.requests()) == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
}

// TestNotifyStoreDown: when the outbox cannot be written, Notify logs it
// and returns (the change it reports is already done); it never panics.
func TestNotifyStoreDown(t *testing.T) {
	e := newEnv(t)
	e.add(t, notify.NewWebhook{URL: "https://hooks.example.com/x"})
	st, err := sqlite.Open(t.Context(), e.path)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	n, err := notify.New(notify.Config{Store: st, Box: e.box, Now: e.clock.Now, Log: e.log})
	if err != nil {
		t.Fatal(err)
	}
	n.Notify(t.Context(), e.revoked())
	if !strings.Contains(e.logBuf.String(), "cannot queue webhook deliveries") {
		t.Errorf("no error logged:\n%s", e.logBuf)
	}
	if got := deliveries(t, e, store.DeliveryFilter{}); len(got) != 0 {
		t.Errorf("deliveries %+v", got)
	}
}
