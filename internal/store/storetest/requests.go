package storetest

import (
	"sync"
	"testing"
	"time"

	"latchkey/internal/store"
)

// request is a pending request of contractor, created at t0, lapsing a day later.
func request(id, contractor string, scopes ...string) store.AccessRequest {
	return store.AccessRequest{
		ID: id, Contractor: contractor, Requester: "reqtok-" + contractor, Scopes: scopes,
		TTL: 8 * time.Hour, Reason: "ticket 42", State: store.RequestPending,
		CreatedAt: t0, ExpiresAt: at(day),
	}
}

// mustRequest stores r and returns it.
func mustRequest(t *testing.T, s store.Store, r store.AccessRequest) store.AccessRequest {
	t.Helper()
	check(t, "CreateRequest", s.CreateRequest(ctx(t), r))
	return r
}

func testRequestCreate(t *testing.T, s store.Store) {
	mustContractor(t, s, "alice")
	mustContractor(t, s, "bob")
	a := mustRequest(t, s, request("rq_b", "alice", "wiki:read:/**", "git:GET:/x"))
	b := request("rq_a", "bob", "wiki:read:/**")
	b.CreatedAt = at(time.Second)
	mustRequest(t, s, b)
	dup := request("rq_b", "bob", "wiki:read:/**")
	wantErr(t, "CreateRequest with a taken id", s.CreateRequest(ctx(t), dup), store.ErrConflict)
	one, err := s.Request(ctx(t), a.ID)
	check(t, "Request", err)
	diff(t, "Request", a, one)
	all, err := s.Requests(ctx(t), store.RequestFilter{})
	check(t, "Requests", err)
	diff(t, "Requests (ordered by creation time)", []store.AccessRequest{a, b}, all)
	mine, err := s.Requests(ctx(t), store.RequestFilter{Contractor: "bob"})
	check(t, "Requests bob", err)
	diff(t, "Requests bob", []store.AccessRequest{b}, mine)
	none, err := s.Requests(ctx(t), store.RequestFilter{State: store.RequestApproved})
	check(t, "Requests approved", err)
	diff(t, "Requests approved", []store.AccessRequest(nil), none)

	_, err = s.Request(ctx(t), "rq_nope")
	wantErr(t, "Request unknown", err, store.ErrNotFound)
	wantErr(t, "CreateRequest unknown contractor", s.CreateRequest(ctx(t), request("rq_c", "nobody", "wiki:read:/**")), store.ErrNotFound)
	mustContractor(t, s, "gone")
	offboard(t, s, "gone")
	wantErr(t, "CreateRequest disabled contractor", s.CreateRequest(ctx(t), request("rq_d", "gone", "wiki:read:/**")), store.ErrDisabled)
}

func testRequestApprove(t *testing.T, s store.Store) {
	mustContractor(t, s, "alice")
	r := mustRequest(t, s, request("rq_1", "alice", "wiki:read:/**"))
	first := store.Approval{Approver: "carol", TokenID: "tokcarol", At: at(time.Hour)}
	got, err := s.ApproveRequest(ctx(t), r.ID, first, 2, at(2*day))
	check(t, "ApproveRequest 1 of 2", err)
	r.Approvals = []store.Approval{first}
	diff(t, "after one of two approvals", r, got)

	again := first
	again.At, again.TokenID = at(2*time.Hour), "tokcarol2"
	_, err = s.ApproveRequest(ctx(t), r.ID, again, 2, at(2*day))
	wantErr(t, "ApproveRequest by the same approver", err, store.ErrConflict)

	second := store.Approval{Approver: "dave", TokenID: "tokdave", At: at(3 * time.Hour)}
	got, err = s.ApproveRequest(ctx(t), r.ID, second, 2, at(2*day))
	check(t, "ApproveRequest 2 of 2", err)
	r.Approvals = append(r.Approvals, second)
	r.State, r.DecidedBy, r.DecidedAt, r.ExpiresAt = store.RequestApproved, "dave", second.At, at(2*day)
	diff(t, "after two of two approvals", r, got)

	third := store.Approval{Approver: "erin", TokenID: "tokerin", At: at(4 * time.Hour)}
	_, err = s.ApproveRequest(ctx(t), r.ID, third, 2, at(2*day))
	wantErr(t, "ApproveRequest of an approved request", err, store.ErrRequestState)
	_, err = s.ApproveRequest(ctx(t), "rq_nope", third, 1, at(2*day))
	wantErr(t, "ApproveRequest unknown", err, store.ErrNotFound)

	late := mustRequest(t, s, request("rq_2", "alice", "wiki:read:/**"))
	_, err = s.ApproveRequest(ctx(t), late.ID, store.Approval{Approver: "carol", At: at(day)}, 1, at(2*day))
	wantErr(t, "ApproveRequest at its expiry", err, store.ErrRequestState)
	got, err = s.Request(ctx(t), late.ID)
	check(t, "Request", err)
	diff(t, "lapsed request after a refused approval", late, got)
	if st := got.StateAt(at(day)); st != store.RequestExpired {
		t.Errorf("StateAt(expiry) = %q, want expired", st)
	}
}

func testRequestDeny(t *testing.T, s store.Store) {
	mustContractor(t, s, "alice")
	r := mustRequest(t, s, request("rq_3", "alice", "wiki:read:/**"))
	check(t, "DenyRequest", s.DenyRequest(ctx(t), r.ID, "carol", "not needed", at(time.Hour)))
	got, err := s.Request(ctx(t), r.ID)
	check(t, "Request", err)
	r.State, r.DecidedBy, r.DecidedAt, r.DenyReason = store.RequestDenied, "carol", at(time.Hour), "not needed"
	diff(t, "denied request", r, got)
	wantErr(t, "DenyRequest again", s.DenyRequest(ctx(t), r.ID, "dave", "x", at(2*time.Hour)), store.ErrRequestState)
	_, err = s.ApproveRequest(ctx(t), r.ID, store.Approval{Approver: "dave", At: at(2 * time.Hour)}, 1, at(2*day))
	wantErr(t, "ApproveRequest of a denied request", err, store.ErrRequestState)
	wantErr(t, "DenyRequest unknown", s.DenyRequest(ctx(t), "rq_nope", "carol", "x", at(time.Hour)), store.ErrNotFound)
	late := mustRequest(t, s, request("rq_4", "alice", "wiki:read:/**"))
	wantErr(t, "DenyRequest at its expiry", s.DenyRequest(ctx(t), late.ID, "carol", "x", at(day)), store.ErrRequestState)
}

func testRequestFetch(t *testing.T, s store.Store) {
	mustContractor(t, s, "alice")
	r := mustRequest(t, s, request("rq_5", "alice", "wiki:read:/**"))
	tok := token("tokfetched01", "alice", at(9*time.Hour), "wiki:read:/**")
	wantErr(t, "FetchRequest of a pending request", s.FetchRequest(ctx(t), r.ID, tok, at(time.Hour)), store.ErrRequestState)
	_, err := s.ApproveRequest(ctx(t), r.ID, store.Approval{Approver: "carol", TokenID: "tokcarol", At: at(time.Hour)}, 1, at(2*day))
	check(t, "ApproveRequest", err)
	wantErr(t, "FetchRequest at its expiry", s.FetchRequest(ctx(t), r.ID, tok, at(2*day)), store.ErrRequestState)
	if _, err := s.Token(ctx(t), tok.ID); err == nil {
		t.Error("a refused FetchRequest stored its token")
	}
	check(t, "FetchRequest", s.FetchRequest(ctx(t), r.ID, tok, at(2*time.Hour)))
	diff(t, "fetched token", tok, getToken(t, s, tok.ID))
	got, err := s.Request(ctx(t), r.ID)
	check(t, "Request", err)
	if got.State != store.RequestFetched || got.TokenID != tok.ID || !got.FetchedAt.Equal(at(2*time.Hour)) {
		t.Errorf("after fetch: state %q token %q fetched %v", got.State, got.TokenID, got.FetchedAt)
	}
	other := token("tokfetched02", "alice", at(9*time.Hour), "wiki:read:/**")
	wantErr(t, "FetchRequest twice", s.FetchRequest(ctx(t), r.ID, other, at(3*time.Hour)), store.ErrRequestState)
	wantErr(t, "FetchRequest unknown", s.FetchRequest(ctx(t), "rq_nope", other, at(3*time.Hour)), store.ErrNotFound)
	if _, err := s.Token(ctx(t), other.ID); err == nil {
		t.Error("a second FetchRequest stored its token")
	}
}

// testRequestFetchConcurrent fetches one approved request from many
// goroutines: exactly one succeeds and exactly one token is stored.
func testRequestFetchConcurrent(t *testing.T, s store.Store) {
	mustContractor(t, s, "alice")
	r := mustRequest(t, s, request("rq_6", "alice", "wiki:read:/**"))
	_, err := s.ApproveRequest(ctx(t), r.ID, store.Approval{Approver: "carol", At: at(time.Hour)}, 1, at(2*day))
	check(t, "ApproveRequest", err)
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			tok := token("tokrace"+string(rune('a'+i))+"xxxx", "alice", at(9*time.Hour), "wiki:read:/**")
			errs[i] = s.FetchRequest(ctx(t), r.ID, tok, at(2*time.Hour))
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		} else {
			wantErr(t, "losing FetchRequest", err, store.ErrRequestState)
		}
	}
	toks, err := s.Tokens(ctx(t), store.TokenFilter{Contractor: "alice"})
	check(t, "Tokens", err)
	if ok != 1 || len(toks) != 1 {
		t.Errorf("%d fetches succeeded and %d tokens stored, want 1 and 1", ok, len(toks))
	}
}

func testApprovers(t *testing.T, s store.Store) {
	as := []store.Approver{
		{Group: "sre", Name: "dave", CreatedAt: t0, CreatedBy: "lka_root"},
		{Group: "billing", Name: "carol", CreatedAt: t0, CreatedBy: "lka_root"},
		{Group: "sre", Name: "carol", CreatedAt: t0, CreatedBy: "lka_root"},
	}
	for _, a := range as {
		check(t, "AddApprover", s.AddApprover(ctx(t), a))
	}
	wantErr(t, "AddApprover twice", s.AddApprover(ctx(t), as[0]), store.ErrConflict)
	got, err := s.Approvers(ctx(t))
	check(t, "Approvers", err)
	diff(t, "Approvers (by group, name)", []store.Approver{as[1], as[2], as[0]}, got)
	check(t, "RemoveApprover", s.RemoveApprover(ctx(t), "sre", "carol"))
	wantErr(t, "RemoveApprover again", s.RemoveApprover(ctx(t), "sre", "carol"), store.ErrNotFound)
	got, err = s.Approvers(ctx(t))
	check(t, "Approvers", err)
	diff(t, "Approvers after remove", []store.Approver{as[1], as[0]}, got)
}
