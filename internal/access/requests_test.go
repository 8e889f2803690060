package access_test

import (
	"context"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"latchkey/internal/access"
	"latchkey/internal/audit"
	"latchkey/internal/scope"
	"latchkey/internal/seal"
	"latchkey/internal/store"
	"latchkey/internal/store/sqlite"
)

// reqEnv is an env whose Authority needs approvals distinct approvers and
// records the events it emits.
type reqEnv struct {
	*env
	mu     sync.Mutex
	events []access.Event
}

func newReqEnv(t *testing.T, approvals int) *reqEnv {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(t.Context(), filepath.Join(dir, "latchkey.db"))
	if err != nil {
		t.Fatal(err)
	}
	box, err := seal.New(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)}
	storage := st.Audit(sqlite.SyncNormal)
	log := audit.New(storage, audit.Config{})
	e := &reqEnv{env: &env{st: st, log: log, storage: storage, clock: c}}
	e.a, err = access.New(access.Config{Store: st, Box: box, Now: c.Now, Audit: log, RequestApprovals: approvals,
		Events: func(_ context.Context, ev access.Event) { e.mu.Lock(); e.events = append(e.events, ev); e.mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close(); st.Close() })
	e.seed(t)
	return e
}

func (e *reqEnv) eventTypes() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var ts []string
	for _, ev := range e.events {
		ts = append(ts, ev.Type)
	}
	return ts
}

// requester issues alice a request-only token and returns her actor.
func (e *reqEnv) requester(t *testing.T) access.Actor {
	t.Helper()
	iss, err := e.a.Issue(t.Context(), root, access.IssueRequest{Contractor: "alice", Scopes: []string{scope.Request}, TTL: 7 * 24 * time.Hour})
	if err != nil {
		t.Fatalf("issue request-only token: %v", err)
	}
	return access.Actor{TokenID: iss.Token.ID, Name: "alice", Scopes: scope.Set{scope.MustParse(scope.Request)}}
}

// approver is an admin actor named by its token's note.
func approver(name string) access.Actor {
	return access.Actor{TokenID: "adm-" + name, Name: name, Scopes: scope.Set{scope.MustParse("admin:requests:write")}}
}

var ask = access.NewRequest{Scopes: []string{"billing:GET:/v1/invoices/*"}, TTL: 8 * time.Hour, Reason: "ticket 7"}

func wantReason(t *testing.T, what string, err error, reason string) {
	t.Helper()
	if got := access.ReasonOf(err); got != reason {
		t.Errorf("%s: reason %q (err %v), want %q", what, got, err, reason)
	}
}

func TestRequestFlow(t *testing.T) {
	e := newReqEnv(t, 1)
	ctx := t.Context()
	me := e.requester(t)
	r, err := e.a.CreateRequest(ctx, me, "alice", ask)
	if err != nil {
		t.Fatal(err)
	}
	if !access.ValidRequestID(r.ID) || r.State != store.RequestPending || r.Requester != me.TokenID {
		t.Fatalf("new request = %+v", r)
	}
	_, err = e.a.FetchRequest(ctx, me, "alice", r.ID)
	wantReason(t, "fetch before approval", err, access.ReasonRequestPending)

	e.clock.Add(time.Hour)
	approvedAt := e.clock.Now()
	r, err = e.a.ApproveRequest(ctx, approver("bob"), r.ID) // bob is alice's sponsor
	if err != nil || r.State != store.RequestApproved || r.DecidedBy != "bob" {
		t.Fatalf("approve: %+v, %v", r, err)
	}
	e.clock.Add(30 * time.Minute)
	iss, err := e.a.FetchRequest(ctx, me, "alice", r.ID)
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	if want := approvedAt.Add(ask.TTL); !iss.Token.ExpiresAt.Equal(want) {
		t.Errorf("token expires %v, want %v (TTL from approval)", iss.Token.ExpiresAt, want)
	}
	if iss.Token.CreatedBy != "adm-bob" || !slices.Equal(iss.Token.Scopes, ask.Scopes) {
		t.Errorf("token = %+v", iss.Token)
	}
	tok, set, err := e.a.Authenticate(ctx, iss.Text, netip.Addr{})
	if err != nil || tok.Contractor != "alice" {
		t.Fatalf("authenticate fetched token: %v", err)
	}
	if _, ok := set.Match("billing", "GET", "/v1/invoices/3"); !ok {
		t.Error("fetched token does not allow what was approved")
	}
	_, err = e.a.FetchRequest(ctx, me, "alice", r.ID)
	wantReason(t, "second fetch", err, access.ReasonAlreadyFetched)
	r, _ = e.a.Request(ctx, r.ID)
	if r.State != store.RequestFetched || r.TokenID != iss.Token.ID {
		t.Errorf("after fetch: %+v", r)
	}
	want := []string{access.EventTokenIssued, access.EventAccessRequested, access.EventAccessApproved, access.EventTokenIssued}
	if got := e.eventTypes(); !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
	var actions []string
	for _, rec := range e.records(t) {
		if rec.Decision == audit.Allow && (rec.Action == "access.request" || rec.Action == "access.approve" || rec.Action == "access.fetch") {
			actions = append(actions, rec.Action)
		}
	}
	if want := []string{"access.request", "access.approve", "access.fetch"}; !slices.Equal(actions, want) {
		t.Errorf("allowed audit actions %v, want %v", actions, want)
	}
}

// TestRequestApprovals: with two approvals needed, the same approver
// counts once, and the second distinct approver (a group member) approves.
func TestRequestApprovals(t *testing.T) {
	e := newReqEnv(t, 2)
	ctx := t.Context()
	me := e.requester(t)
	r, err := e.a.CreateRequest(ctx, me, "alice", ask)
	if err != nil {
		t.Fatal(err)
	}
	if r, err = e.a.ApproveRequest(ctx, approver("bob"), r.ID); err != nil || r.State != store.RequestPending || len(r.Approvals) != 1 {
		t.Fatalf("first approval: %+v, %v", r, err)
	}
	_, err = e.a.ApproveRequest(ctx, approver("bob"), r.ID)
	wantReason(t, "same approver twice", err, access.ReasonAlreadyApproved)
	_, err = e.a.ApproveRequest(ctx, approver("carol"), r.ID)
	wantReason(t, "carol, in no group", err, access.ReasonNotApprover)
	_, err = e.a.FetchRequest(ctx, me, "alice", r.ID)
	wantReason(t, "fetch after one of two", err, access.ReasonRequestPending)

	if _, err := e.a.AddApprover(ctx, root, "sre", "carol"); err != nil {
		t.Fatal(err)
	}
	if r, err = e.a.ApproveRequest(ctx, approver("carol"), r.ID); err != nil || r.State != store.RequestApproved || len(r.Approvals) != 2 {
		t.Fatalf("second approval: %+v, %v", r, err)
	}
	_, err = e.a.ApproveRequest(ctx, approver("dave"), r.ID)
	wantReason(t, "approval after the final one", err, access.ReasonRequestDecided)
	if _, err := e.a.FetchRequest(ctx, me, "alice", r.ID); err != nil {
		t.Fatalf("fetch: %v", err)
	}
}

func TestApproverGroups(t *testing.T) {
	e := newReqEnv(t, 1)
	ctx := t.Context()
	for _, tc := range []struct{ group, name, reason string }{
		{"Bad Group", "carol", access.ReasonInvalid},
		{"sre", "", access.ReasonInvalid},
		{"sre", " carol", access.ReasonInvalid},
		{"sre", "carol\x1b[2J", access.ReasonInvalid},
	} {
		_, err := e.a.AddApprover(ctx, root, tc.group, tc.name)
		wantReason(t, "AddApprover "+tc.group+"/"+tc.name, err, tc.reason)
	}
	if _, err := e.a.AddApprover(ctx, root, "sre", "carol"); err != nil {
		t.Fatal(err)
	}
	_, err := e.a.AddApprover(ctx, root, "sre", "carol")
	wantReason(t, "AddApprover twice", err, access.ReasonConflict)
	me := e.requester(t)
	r, _ := e.a.CreateRequest(ctx, me, "alice", ask)
	if err := e.a.RemoveApprover(ctx, root, "sre", "carol"); err != nil {
		t.Fatal(err)
	}
	wantReason(t, "RemoveApprover twice", e.a.RemoveApprover(ctx, root, "sre", "carol"), access.ReasonNotFound)
	_, err = e.a.ApproveRequest(ctx, approver("carol"), r.ID)
	wantReason(t, "approval by a removed member", err, access.ReasonNotApprover)
}

func TestRequestRefusals(t *testing.T) {
	e := newReqEnv(t, 1)
	ctx := t.Context()
	me := e.requester(t)
	plain, err := e.a.Issue(ctx, root, access.IssueRequest{Contractor: "alice", Scopes: []string{"billing:GET:/v1/x"}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	notReq := access.Actor{TokenID: plain.Token.ID, Name: "alice", Scopes: scope.Set{scope.MustParse("billing:GET:/v1/x")}}
	for _, tc := range []struct {
		name   string
		by     access.Actor
		nr     access.NewRequest
		reason string
	}{
		{"not a request-only token", notReq, ask, access.ReasonNotRequestToken},
		{"scope not granted", me, access.NewRequest{Scopes: []string{"billing:write:/v1/**"}, TTL: time.Hour, Reason: "x"}, access.ReasonScopeNotCovered},
		{"admin scope", me, access.NewRequest{Scopes: []string{"admin:*"}, TTL: time.Hour, Reason: "x"}, access.ReasonInvalid},
		{"the request scope", me, access.NewRequest{Scopes: []string{scope.Request}, TTL: time.Hour, Reason: "x"}, access.ReasonInvalid},
		{"no scope", me, access.NewRequest{TTL: time.Hour, Reason: "x"}, access.ReasonInvalid},
		{"no ttl", me, access.NewRequest{Scopes: ask.Scopes, Reason: "x"}, access.ReasonTTLMissing},
		{"ttl too long", me, access.NewRequest{Scopes: ask.Scopes, TTL: 31 * 24 * time.Hour, Reason: "x"}, access.ReasonTTLTooLong},
		{"ttl past grant", me, access.NewRequest{Scopes: ask.Scopes, TTL: 25 * 24 * time.Hour, Reason: "x"}, access.ReasonPastGrant},
		{"no reason", me, access.NewRequest{Scopes: ask.Scopes, TTL: time.Hour}, access.ReasonInvalid},
		{"control characters in reason", me, access.NewRequest{Scopes: ask.Scopes, TTL: time.Hour, Reason: "a\rb"}, access.ReasonInvalid},
	} {
		_, err := e.a.CreateRequest(ctx, tc.by, "alice", tc.nr)
		wantReason(t, tc.name, err, tc.reason)
	}
	if rs, _ := e.a.Requests(ctx, "", ""); len(rs) != 0 {
		t.Errorf("refused requests were stored: %+v", rs)
	}

	r, err := e.a.CreateRequest(ctx, me, "alice", ask)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		by     access.Actor
		id     string
		reason string
	}{
		{"self approval by name", approver("alice"), r.ID, access.ReasonSelfApproval},
		{"self approval by token", access.Actor{TokenID: me.TokenID, Name: "someone"}, r.ID, access.ReasonSelfApproval},
		{"approver without a note", approver(""), r.ID, access.ReasonApproverUnknown},
		{"not sponsor nor in a group", approver("mallory"), r.ID, access.ReasonNotApprover},
		{"malformed id", approver("bob"), "rq_../../x", access.ReasonInvalid},
		{"unknown id", approver("bob"), "rq_aaaaaaaaaaaaaaaa", access.ReasonNotFound},
	} {
		_, err := e.a.ApproveRequest(ctx, tc.by, tc.id)
		wantReason(t, "approve: "+tc.name, err, tc.reason)
		_, err = e.a.DenyRequest(ctx, tc.by, tc.id, "no")
		wantReason(t, "deny: "+tc.name, err, tc.reason)
	}
	// Another contractor's request-only token cannot see or fetch it.
	if _, err := e.a.AddContractor(ctx, root, access.NewContractor{Name: "eve", Email: "eve@example.com", Sponsor: "bob", Until: e.clock.Now().Add(48 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	eveTok, err := e.a.Issue(ctx, root, access.IssueRequest{Contractor: "eve", Scopes: []string{scope.Request}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	eve := access.Actor{TokenID: eveTok.Token.ID, Name: "eve", Scopes: scope.Set{scope.MustParse(scope.Request)}}
	if _, err := e.a.ApproveRequest(ctx, approver("bob"), r.ID); err != nil {
		t.Fatal(err)
	}
	_, err = e.a.FetchRequest(ctx, eve, "eve", r.ID)
	wantReason(t, "fetch by another contractor", err, access.ReasonNotFound)
	_, err = e.a.OwnRequest(ctx, eve, "eve", r.ID)
	wantReason(t, "show by another contractor", err, access.ReasonNotFound)
	_, err = e.a.FetchRequest(ctx, notReq, "alice", r.ID)
	wantReason(t, "fetch without the request scope", err, access.ReasonNotRequestToken)

	// Grants are checked again at fetch.
	gs, _ := e.a.Grants(ctx, "alice", true)
	if err := e.a.RevokeGrant(ctx, root, gs[0].ID); err != nil {
		t.Fatal(err)
	}
	_, err = e.a.FetchRequest(ctx, me, "alice", r.ID)
	wantReason(t, "fetch after the grant was revoked", err, access.ReasonScopeNotCovered)
}

func TestRequestDeny(t *testing.T) {
	e := newReqEnv(t, 1)
	ctx := t.Context()
	me := e.requester(t)
	r, _ := e.a.CreateRequest(ctx, me, "alice", ask)
	_, err := e.a.DenyRequest(ctx, approver("bob"), r.ID, "")
	wantReason(t, "deny without a reason", err, access.ReasonInvalid)
	if r, err = e.a.DenyRequest(ctx, approver("bob"), r.ID, "use the read-only report"); err != nil || r.State != store.RequestDenied {
		t.Fatalf("deny: %+v, %v", r, err)
	}
	_, err = e.a.ApproveRequest(ctx, approver("bob"), r.ID)
	wantReason(t, "approve after deny", err, access.ReasonRequestDenied)
	_, err = e.a.DenyRequest(ctx, approver("bob"), r.ID, "again")
	wantReason(t, "deny after deny", err, access.ReasonRequestDenied)
	_, err = e.a.FetchRequest(ctx, me, "alice", r.ID)
	wantReason(t, "fetch after deny", err, access.ReasonRequestDenied)
	got, _ := e.a.Request(ctx, r.ID)
	if got.DenyReason != "use the read-only report" || got.DecidedBy != "bob" {
		t.Errorf("denied request = %+v", got)
	}
	if evs := e.eventTypes(); evs[len(evs)-1] != access.EventAccessDenied {
		t.Errorf("events %v: want access.denied last", evs)
	}
}

func TestRequestExpiry(t *testing.T) {
	e := newReqEnv(t, 1)
	ctx := t.Context()
	me := e.requester(t)
	unanswered, _ := e.a.CreateRequest(ctx, me, "alice", ask)
	e.clock.Add(access.DefaultRequestTTL)
	got, _ := e.a.Requests(ctx, "alice", store.RequestExpired)
	if len(got) != 1 || got[0].ID != unanswered.ID {
		t.Errorf("expired requests = %+v", got)
	}
	if pending, _ := e.a.Requests(ctx, "alice", store.RequestPending); len(pending) != 0 {
		t.Errorf("an expired request lists as pending: %+v", pending)
	}
	_, err := e.a.ApproveRequest(ctx, approver("bob"), unanswered.ID)
	wantReason(t, "approve an expired request", err, access.ReasonRequestExpired)
	_, err = e.a.Requests(ctx, "", "lost")
	wantReason(t, "list an unknown state", err, access.ReasonInvalid)

	// Approved and not fetched before its token would have expired.
	r, _ := e.a.CreateRequest(ctx, me, "alice", ask)
	if _, err := e.a.ApproveRequest(ctx, approver("bob"), r.ID); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(ask.TTL)
	_, err = e.a.FetchRequest(ctx, me, "alice", r.ID)
	wantReason(t, "fetch after the fetch window", err, access.ReasonRequestExpired)
}

// TestRequestFetchOnce fetches one approved request concurrently: exactly
// one fetch gets a token, every other one is refused already_fetched.
func TestRequestFetchOnce(t *testing.T) {
	e := newReqEnv(t, 1)
	ctx := t.Context()
	me := e.requester(t)
	r, _ := e.a.CreateRequest(ctx, me, "alice", ask)
	if _, err := e.a.ApproveRequest(ctx, approver("bob"), r.ID); err != nil {
		t.Fatal(err)
	}
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { _, errs[i] = e.a.FetchRequest(ctx, me, "alice", r.ID) })
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
			continue
		}
		wantReason(t, "losing fetch", err, access.ReasonAlreadyFetched)
	}
	toks, _ := e.a.Tokens(ctx, "alice", false)
	if ok != 1 || len(toks) != 2 { // the request-only token and the fetched one
		t.Errorf("%d fetches succeeded, alice holds %d tokens; want 1 and 2", ok, len(toks))
	}
}

// TestRequestOnlyToken: the request scope needs no grant, is issued alone,
// is never granted, and allows no gateway request.
func TestRequestOnlyToken(t *testing.T) {
	e := newReqEnv(t, 1)
	ctx := t.Context()
	iss, err := e.a.Issue(ctx, root, access.IssueRequest{Contractor: "alice", Scopes: []string{scope.Request}, TTL: time.Hour})
	if err != nil {
		t.Fatalf("issue without a grant: %v", err)
	}
	_, set, err := e.a.Authenticate(ctx, iss.Text, netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := set.Match("billing", "GET", "/v1/invoices/1"); ok {
		t.Error("the request-only token matches a gateway request")
	}
	_, err = e.a.Issue(ctx, root, access.IssueRequest{Contractor: "alice", Scopes: []string{scope.Request, "billing:GET:/v1/x"}, TTL: time.Hour})
	wantReason(t, "request scope with another", err, access.ReasonInvalid)
	_, err = e.a.Issue(ctx, root, access.IssueRequest{Admin: true, Scopes: []string{scope.Request}, TTL: time.Hour})
	wantReason(t, "request scope on an admin token", err, access.ReasonInvalid)
	_, err = e.a.AddGrant(ctx, root, "alice", []string{scope.Request}, time.Time{})
	wantReason(t, "grant of the request scope", err, access.ReasonInvalid)
	_, err = e.a.AddService(ctx, root, "latchkey", "http://127.0.0.1:9", []access.Header{{"X", "y"}})
	wantReason(t, "service named latchkey", err, access.ReasonInvalid)
}

func TestRequestMoreRefusals(t *testing.T) {
	e := newReqEnv(t, 1)
	ctx := t.Context()
	me := e.requester(t)

	// At most 16 pending requests per contractor; expired ones do not count.
	for i := range 16 {
		if _, err := e.a.CreateRequest(ctx, me, "alice", ask); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	_, err := e.a.CreateRequest(ctx, me, "alice", ask)
	wantReason(t, "17th pending request", err, access.ReasonTooManyRequests)
	e.clock.Add(access.DefaultRequestTTL)
	r, err := e.a.CreateRequest(ctx, me, "alice", ask)
	if err != nil {
		t.Fatalf("request after the others expired: %v", err)
	}

	// Fetched in the last second of the token's life: refused, not a
	// token that is dead on arrival.
	if _, err := e.a.ApproveRequest(ctx, approver("bob"), r.ID); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(ask.TTL - 500*time.Millisecond)
	_, err = e.a.FetchRequest(ctx, me, "alice", r.ID)
	wantReason(t, "fetch in the token's last second", err, access.ReasonRequestExpired)

	// Offboarding stops everything of the contractor's requests.
	r, err = e.a.CreateRequest(ctx, me, "alice", ask)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.a.Offboard(ctx, root, "alice"); err != nil {
		t.Fatal(err)
	}
	_, err = e.a.ApproveRequest(ctx, approver("bob"), r.ID)
	wantReason(t, "approve for an offboarded contractor", err, access.ReasonContractorDisabled)
	_, err = e.a.CreateRequest(ctx, me, "alice", ask)
	wantReason(t, "request by an offboarded contractor", err, access.ReasonContractorDisabled)
}

// TestRequestConcurrentApprovals: with one approval needed, of two
// approvers at once exactly one approves and the other is told it is
// decided; with two needed, one approver twice at once counts once.
func TestRequestConcurrentApprovals(t *testing.T) {
	for _, tc := range []struct {
		name      string
		need      int
		approvers []string
		reason    string
	}{
		{"two approvers, one needed", 1, []string{"bob", "carol"}, access.ReasonRequestDecided},
		{"one approver twice, two needed", 2, []string{"bob", "bob"}, access.ReasonAlreadyApproved},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newReqEnv(t, tc.need)
			ctx := t.Context()
			if _, err := e.a.AddApprover(ctx, root, "sre", "carol"); err != nil {
				t.Fatal(err)
			}
			r, err := e.a.CreateRequest(ctx, e.requester(t), "alice", ask)
			if err != nil {
				t.Fatal(err)
			}
			errs := make([]error, len(tc.approvers))
			var wg sync.WaitGroup
			for i, name := range tc.approvers {
				wg.Go(func() { _, errs[i] = e.a.ApproveRequest(ctx, approver(name), r.ID) })
			}
			wg.Wait()
			ok := 0
			for _, err := range errs {
				if err == nil {
					ok++
				} else {
					wantReason(t, "losing approval", err, tc.reason)
				}
			}
			got, _ := e.a.Request(ctx, r.ID)
			if ok != 1 || len(got.Approvals) != 1 {
				t.Errorf("%d approvals succeeded, %d stored; want 1 and 1", ok, len(got.Approvals))
			}
		})
	}
}

// TestRequestUnderApprovalPolicy: where the policy requires a sponsor's
// approval, a direct issue is refused, but the request-only token is
// issued and the access-request flow issues the token the sponsor approved.
func TestRequestUnderApprovalPolicy(t *testing.T) {
	e := newReqEnv(t, 1)
	ctx := t.Context()
	e.setPolicy(t, access.PolicyChange{Contractor: str("alice"), Approval: str(store.ApprovalRequired)})

	_, err := e.a.Issue(ctx, root, access.IssueRequest{Contractor: "alice", Scopes: ask.Scopes, TTL: time.Hour})
	wantReason(t, "direct issue under the approval policy", err, access.ReasonApprovalRequired)

	me := e.requester(t) // the request-only token itself needs no approval
	r, err := e.a.CreateRequest(ctx, me, "alice", ask)
	if err != nil {
		t.Fatalf("request under the approval policy: %v", err)
	}
	if _, err := e.a.ApproveRequest(ctx, approver("bob"), r.ID); err != nil {
		t.Fatalf("approve: %v", err)
	}
	iss, err := e.a.FetchRequest(ctx, me, "alice", r.ID)
	if err != nil {
		t.Fatalf("fetch under the approval policy: %v", err)
	}
	if _, _, err := e.a.Authenticate(ctx, iss.Text, netip.Addr{}); err != nil {
		t.Fatalf("the approved token does not authenticate: %v", err)
	}
}

// issuer is an admin actor named carol that may issue admin tokens and
// approve, but does not manage identities (no admin:approvers:write).
var issuer = access.Actor{TokenID: "adm-carol", Name: "carol", Scopes: scope.Set{
	scope.MustParse("admin:tokens:write"), scope.MustParse("admin:requests:write")}}

func TestAdminTokenNote(t *testing.T) {
	e := newReqEnv(t, 1)
	ctx := t.Context()
	idAdmin := access.Actor{TokenID: "adm-ida", Name: "ida", Scopes: append(slices.Clone(issuer.Scopes), scope.MustParse("admin:approvers:write"))}
	for _, tc := range []struct {
		name     string
		by       access.Actor
		note     string
		wantNote string
		reason   string
	}{
		{"no note: the issuer's own name", issuer, "", "carol", ""},
		{"the issuer's own name", issuer, "carol", "carol", ""},
		{"the sponsor's name", issuer, "bob", "", access.ReasonForbidden},
		{"another approver's name", issuer, "dave", "", access.ReasonForbidden},
		{"an unnamed issuer naming someone", access.Actor{TokenID: "adm-x", Scopes: issuer.Scopes}, "bob", "", access.ReasonForbidden},
		{"with admin:approvers:write", idAdmin, "bob", "bob", ""},
		{"with admin:*", root, "bob", "bob", ""},
	} {
		iss, err := e.a.Issue(ctx, tc.by, access.IssueRequest{Admin: true, Scopes: []string{"admin:requests:write"}, TTL: time.Hour, Note: tc.note})
		wantReason(t, tc.name, err, tc.reason)
		if err == nil && iss.Token.Note != tc.wantNote {
			t.Errorf("%s: note %q, want %q", tc.name, iss.Token.Note, tc.wantNote)
		}
	}

	// Rotating bob's admin token would hand carol a token that speaks for bob.
	bobs, err := e.a.Issue(ctx, root, access.IssueRequest{Admin: true, Scopes: []string{"admin:requests:write"}, TTL: time.Hour, Note: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.a.Rotate(ctx, issuer, bobs.Token.ID, 0)
	wantReason(t, "rotate another person's admin token", err, access.ReasonForbidden)
	if _, err := e.a.Rotate(ctx, idAdmin, bobs.Token.ID, 0); err != nil {
		t.Errorf("rotate with admin:approvers:write: %v", err)
	}
}

// TestRequestApproverImpersonation: an admin who can issue admin tokens
// cannot mint tokens named after the sponsor or other approvers, so two
// required approvals still take two people.
func TestRequestApproverImpersonation(t *testing.T) {
	e := newReqEnv(t, 2)
	ctx := t.Context()
	for _, name := range []string{"carol", "dave"} {
		if _, err := e.a.AddApprover(ctx, root, "sre", name); err != nil {
			t.Fatal(err)
		}
	}
	me := e.requester(t)
	r, err := e.a.CreateRequest(ctx, me, "alice", ask)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.a.ApproveRequest(ctx, issuer, r.ID); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"bob", "dave"} {
		_, err := e.a.Issue(ctx, issuer, access.IssueRequest{Admin: true, Scopes: []string{"admin:requests:write"}, TTL: time.Hour, Note: name})
		wantReason(t, "carol mints a token named "+name, err, access.ReasonForbidden)
	}
	// Her own second token is still carol.
	second, err := e.a.Issue(ctx, issuer, access.IssueRequest{Admin: true, Scopes: []string{"admin:requests:write"}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	again := access.Actor{TokenID: second.Token.ID, Name: second.Token.Note, Scopes: scope.Set{scope.MustParse("admin:requests:write")}}
	_, err = e.a.ApproveRequest(ctx, again, r.ID)
	wantReason(t, "carol again with another token", err, access.ReasonAlreadyApproved)
	if r, _ = e.a.Request(ctx, r.ID); r.State != store.RequestPending {
		t.Errorf("one person approved a two-approval request: %+v", r)
	}
}

// TestRequestFetchByOtherToken: another request-only token of the same
// contractor (a leaked one, say) may see the request but not fetch its token.
func TestRequestFetchByOtherToken(t *testing.T) {
	e := newReqEnv(t, 1)
	ctx := t.Context()
	me, other := e.requester(t), e.requester(t)
	r, err := e.a.CreateRequest(ctx, me, "alice", ask)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.a.FetchRequest(ctx, other, "alice", r.ID)
	wantReason(t, "fetch pending by another token", err, access.ReasonForbidden)
	if _, err := e.a.ApproveRequest(ctx, approver("bob"), r.ID); err != nil {
		t.Fatal(err)
	}
	_, err = e.a.FetchRequest(ctx, other, "alice", r.ID)
	wantReason(t, "fetch approved by another token", err, access.ReasonForbidden)
	if _, err := e.a.OwnRequest(ctx, other, "alice", r.ID); err != nil {
		t.Errorf("show by another token of the contractor: %v", err)
	}
	if r, _ = e.a.Request(ctx, r.ID); r.State != store.RequestApproved {
		t.Errorf("refused fetch changed the request: %+v", r)
	}
	if _, err := e.a.FetchRequest(ctx, me, "alice", r.ID); err != nil {
		t.Errorf("fetch by the requesting token: %v", err)
	}
}
