package access

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"latchkey/internal/audit"
	"latchkey/internal/scope"
	"latchkey/internal/store"
	"latchkey/internal/timespec"
)

// Access requests (just-in-time access). A contractor holding a
// request-only token (scope latchkey:request, which needs no grant) asks
// for scopes, a TTL and a reason. The contractor's sponsor or a member of
// an approver group approves (Config.RequestApprovals distinct approvers)
// or denies; an approver is identified by the note of their admin token
// (Actor.Name), and nobody approves their own request. Once approved, the
// requesting contractor fetches the token exactly once: it is generated
// at fetch, never stored, and expires TTL after the final approval. A
// request not approved within Config.RequestTTL, or approved and not
// fetched within it, expires. Every step is checked like Issue, audited
// before it takes effect, and emits an event.

// Reasons of access request refusals.
const (
	ReasonSelfApproval    = "self_approval"     // the approver is the requester
	ReasonNotApprover     = "not_approver"      // neither the sponsor nor in an approver group
	ReasonApproverUnknown = "approver_unknown"  // the admin token has no note to name the approver
	ReasonAlreadyApproved = "already_approved"  // this approver has already approved
	ReasonAlreadyFetched  = "already_fetched"   // the token was fetched: it is shown once
	ReasonRequestExpired  = "request_expired"   // not approved, or not fetched, in time
	ReasonRequestDenied   = "request_denied"    // denied; final
	ReasonRequestPending  = "request_pending"   // fetch before the final approval
	ReasonRequestDecided  = "request_decided"   // approve or deny after the final approval
	ReasonTooManyRequests = "too_many_requests" // too many pending requests of one contractor
	ReasonNotRequestToken = "not_request_token" // the token lacks scope latchkey:request
)

// DefaultRequestTTL is how long a request waits when Config.RequestTTL is zero.
const DefaultRequestTTL = 24 * time.Hour

// Limits on access requests.
const (
	maxReason  = 1024 // bytes of a request's or a denial's reason
	maxPending = 16   // pending requests of one contractor
)

// NewRequest is what a contractor asks for.
type NewRequest struct {
	Scopes []string
	TTL    time.Duration // of the token, counted from the final approval
	Reason string
}

// requestOnly reports whether scopes is exactly the request scope: such a
// token needs no grant, and no other scope may join it.
func requestOnly(scopes []string) bool {
	return len(scopes) == 1 && scopes[0] == scope.Request
}

// requested is the IssueRequest of a request's token, which newToken
// checks as it checks Issue's (scopes within live grants, TTL within the
// maximum, engagement) at creation, at each approval and at fetch. Any
// mark that a token went through approval belongs here, once.
func requested(contractor string, scopes []string, ttl time.Duration, note string) IssueRequest {
	// approved: this is the access-request path, which issues only after
	// the approvals the request needs (checked at create, approval and
	// fetch alike, so that a policy requiring approval does not refuse
	// the request itself).
	return IssueRequest{Contractor: contractor, Scopes: scopes, TTL: ttl, Note: note, approved: true}
}

// requester refuses an actor whose token is not a request-only token.
func requester(by Actor) error {
	for _, s := range by.Scopes {
		if s.IsRequest() {
			return nil
		}
	}
	return refuse(ReasonNotRequestToken, "this token cannot make access requests: that takes a token with scope %s", scope.Request)
}

// requestIDAlphabet is lowercase base32 (RFC 4648 letters, lowercased).
const requestIDAlphabet = "abcdefghijklmnopqrstuvwxyz234567"

// newRequestID returns "rq_" and 16 random base32 letters (80 bits).
func newRequestID(r io.Reader) (string, error) {
	b := make([]byte, 16)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("failed to generate request id: %w", err)
	}
	for i := range b {
		b[i] = requestIDAlphabet[b[i]&31]
	}
	return "rq_" + string(b), nil
}

// ValidRequestID reports whether id has the form of a request id.
func ValidRequestID(id string) bool {
	rest, ok := strings.CutPrefix(id, "rq_")
	if !ok || len(rest) != 16 {
		return false
	}
	for i := 0; i < len(rest); i++ {
		if strings.IndexByte(requestIDAlphabet, rest[i]) < 0 {
			return false
		}
	}
	return true
}

// validReason checks a free-text reason: required, at most maxReason
// bytes, no control or bidirectional-override characters.
func validReason(field, v string) error {
	switch {
	case strings.TrimSpace(v) == "":
		return refuse(ReasonInvalid, "a %s is required", field)
	case len(v) > maxReason:
		return refuse(ReasonInvalid, "%s is longer than %d bytes", field, maxReason)
	case strings.ContainsFunc(v, unsafeRune):
		return refuse(ReasonInvalid, "%s contains control or bidirectional-override characters", field)
	}
	return nil
}

// CreateRequest records contractor's request for a token. by is the
// contractor's request-only token. The scopes must lie within the
// contractor's live grants for the whole TTL, as for Issue.
func (a *Authority) CreateRequest(ctx context.Context, by Actor, contractor string, nr NewRequest) (r store.AccessRequest, err error) {
	rec := a.event(by, "access.request")
	rec.Contractor, rec.TokenID = contractor, by.TokenID
	err = a.act(ctx, rec, func(rec *audit.Record) error {
		if err := requester(by); err != nil {
			return err
		}
		r, err = a.newRequest(ctx, by, contractor, nr)
		rec.Reason = fmt.Sprintf("request %s: scopes %s, ttl %s: %s", r.ID, strings.Join(r.Scopes, " "), timespec.Format(r.TTL), nr.Reason)
		return err
	}, func() error {
		return storeErr(a.cfg.Store.CreateRequest(ctx, r), fmt.Sprintf("request %s", r.ID))
	})
	if err != nil {
		return store.AccessRequest{}, err
	}
	a.emit(ctx, Event{Type: EventAccessRequested, Actor: by.TokenID, Contractor: contractor, Scopes: r.Scopes,
		Reason: r.Reason, RequestID: r.ID})
	return r, nil
}

// newRequest checks a request without writing.
func (a *Authority) newRequest(ctx context.Context, by Actor, contractor string, nr NewRequest) (store.AccessRequest, error) {
	now := a.now()
	ttl := nr.TTL.Truncate(time.Millisecond)
	if err := validReason("reason", nr.Reason); err != nil {
		return store.AccessRequest{}, err
	}
	// Checked as Issue checks a token that would be issued now.
	t, err := a.newToken(ctx, by, requested(contractor, nr.Scopes, ttl, ""))
	if err != nil {
		return store.AccessRequest{}, err
	}
	if requestOnly(t.Scopes) {
		return store.AccessRequest{}, refuse(ReasonInvalid, "scope %s cannot be requested", scope.Request)
	}
	pending, err := a.cfg.Store.Requests(ctx, store.RequestFilter{Contractor: contractor, State: store.RequestPending})
	if err != nil {
		return store.AccessRequest{}, err
	}
	n := 0
	for _, p := range pending {
		if p.StateAt(now) == store.RequestPending {
			n++
		}
	}
	if n >= maxPending {
		return store.AccessRequest{}, refuse(ReasonTooManyRequests, "contractor %q already has %d pending requests", contractor, n)
	}
	id, err := newRequestID(a.cfg.Rand)
	return store.AccessRequest{
		ID: id, Contractor: contractor, Requester: by.TokenID, Scopes: t.Scopes, TTL: ttl, Reason: nr.Reason,
		State: store.RequestPending, CreatedAt: now, ExpiresAt: now.Add(a.cfg.RequestTTL),
	}, err
}

// Request returns one request.
func (a *Authority) Request(ctx context.Context, id string) (store.AccessRequest, error) {
	if !ValidRequestID(id) {
		return store.AccessRequest{}, refuse(ReasonInvalid, "invalid request id %q: want rq_ and 16 letters", id)
	}
	r, err := a.cfg.Store.Request(ctx, id)
	return r, storeErr(err, fmt.Sprintf("request %s", id))
}

// OwnRequest returns one request of contractor, for its request-only
// token by; another contractor's request is not found. Any of the
// contractor's request-only tokens may show it; only the one that made it
// may fetch it (FetchRequest).
func (a *Authority) OwnRequest(ctx context.Context, by Actor, contractor, id string) (store.AccessRequest, error) {
	if err := requester(by); err != nil {
		return store.AccessRequest{}, err
	}
	r, err := a.Request(ctx, id)
	if err == nil && r.Contractor != contractor {
		return store.AccessRequest{}, refuse(ReasonNotFound, "request %s not found", id)
	}
	return r, err
}

// requestStates are the states Requests filters by.
var requestStates = []string{store.RequestPending, store.RequestApproved, store.RequestDenied, store.RequestExpired, store.RequestFetched}

// Requests lists requests, of one contractor if contractor is not empty,
// in one state (as of now, so "expired" included) if state is not empty.
func (a *Authority) Requests(ctx context.Context, contractor, state string) ([]store.AccessRequest, error) {
	f := store.RequestFilter{Contractor: contractor}
	switch state {
	case "", store.RequestExpired:
	case store.RequestPending, store.RequestApproved, store.RequestDenied, store.RequestFetched:
		f.State = state
	default:
		return nil, refuse(ReasonInvalid, "invalid state %q: want one of %s", state, strings.Join(requestStates, ", "))
	}
	rs, err := a.cfg.Store.Requests(ctx, f)
	if err != nil || state == "" {
		return rs, err
	}
	now := a.now()
	out := rs[:0]
	for _, r := range rs {
		if r.StateAt(now) == state {
			out = append(out, r)
		}
	}
	return out, nil
}

// ListOwnRequests lists the requests of contractor, for its request-only token by.
func (a *Authority) ListOwnRequests(ctx context.Context, by Actor, contractor, state string) ([]store.AccessRequest, error) {
	if err := requester(by); err != nil {
		return nil, err
	}
	return a.Requests(ctx, contractor, state)
}

// stateErr is the refusal of an operation that needs state want on r.
func stateErr(r store.AccessRequest, want string, now time.Time) error {
	switch st := r.StateAt(now); {
	case st == want:
		return nil
	case st == store.RequestExpired:
		return refuse(ReasonRequestExpired, "request %s expired at %s", r.ID, r.ExpiresAt.Format(time.RFC3339))
	case st == store.RequestDenied:
		return refuse(ReasonRequestDenied, "request %s was denied by %s: %s", r.ID, r.DecidedBy, r.DenyReason)
	case st == store.RequestFetched:
		return refuse(ReasonAlreadyFetched, "the token of request %s was already fetched: it is shown only once", r.ID)
	case st == store.RequestPending:
		return refuse(ReasonRequestPending, "request %s is not approved yet (%d of its approvals)", r.ID, len(r.Approvals))
	default:
		return refuse(ReasonRequestDecided, "request %s is already %s", r.ID, st)
	}
}

// mayDecide refuses an approver who may not approve or deny r: one with
// no identity (an admin token without a note), the requester themself, or
// someone who is neither the contractor's sponsor nor in an approver group.
func (a *Authority) mayDecide(ctx context.Context, by Actor, r store.AccessRequest) error {
	who := by.Name
	switch {
	case strings.TrimSpace(who) == "":
		return refuse(ReasonApproverUnknown, "your admin token has no note: an approver is named by the note of their admin token (token issue --admin --note NAME)")
	case who == r.Contractor || by.TokenID == r.Requester:
		return refuse(ReasonSelfApproval, "%q cannot approve or deny their own request", who)
	}
	c, err := a.Contractor(ctx, r.Contractor)
	if err != nil {
		return err
	}
	if c.Sponsor == who {
		return nil
	}
	as, err := a.cfg.Store.Approvers(ctx)
	if err != nil {
		return err
	}
	for _, ap := range as {
		if ap.Name == who {
			return nil
		}
	}
	return refuse(ReasonNotApprover, "%q is neither the sponsor of contractor %q nor in an approver group", who, r.Contractor)
}

// ApproveRequest adds by's approval to a pending request; with
// Config.RequestApprovals distinct approvals it is approved, and its
// token may be fetched until Config.RequestTTL later (at most until the
// token itself would expire).
func (a *Authority) ApproveRequest(ctx context.Context, by Actor, id string) (r store.AccessRequest, err error) {
	rec := a.event(by, "access.approve")
	rec.Reason = "request " + id
	var ap store.Approval
	err = a.act(ctx, rec, func(rec *audit.Record) error {
		if r, err = a.Request(ctx, id); err != nil {
			if !ValidRequestID(id) {
				rec.Reason = "" // attacker-chosen text stays out of the log
			}
			return err
		}
		rec.Contractor = r.Contractor
		now := a.now()
		if err := stateErr(r, store.RequestPending, now); err != nil {
			return err
		}
		if err := a.mayDecide(ctx, by, r); err != nil {
			return err
		}
		for _, p := range r.Approvals {
			if p.Approver == by.Name {
				return refuse(ReasonAlreadyApproved, "%q has already approved request %s; it needs another approver", by.Name, id)
			}
		}
		// The token that would be issued now must pass every check of Issue.
		if _, err := a.newToken(ctx, by, requested(r.Contractor, r.Scopes, r.TTL, "")); err != nil {
			return err
		}
		ap = store.Approval{Approver: by.Name, TokenID: by.TokenID, At: now}
		rec.Reason = fmt.Sprintf("request %s: approval %d of %d by %s", id, len(r.Approvals)+1, a.cfg.RequestApprovals, by.Name)
		return nil
	}, func() error {
		expires := ap.At.Add(min(a.cfg.RequestTTL, r.TTL))
		r, err = a.cfg.Store.ApproveRequest(ctx, id, ap, a.cfg.RequestApprovals, expires)
		return a.lostRace(ctx, err, id, store.RequestPending, by.Name)
	})
	if err != nil {
		return store.AccessRequest{}, err
	}
	if r.State == store.RequestApproved {
		a.emit(ctx, Event{Type: EventAccessApproved, Actor: by.TokenID, Contractor: r.Contractor, Scopes: r.Scopes,
			ExpiresAt: r.DecidedAt.Add(r.TTL), Reason: r.Reason, RequestID: r.ID})
	}
	return r, nil
}

// lostRace maps a store error of a conditional change of request id to a
// refusal: a concurrent change got there first.
func (a *Authority) lostRace(ctx context.Context, err error, id, want, approver string) error {
	switch {
	case errors.Is(err, store.ErrConflict):
		return &Error{Reason: ReasonAlreadyApproved, Msg: fmt.Sprintf("%q has already approved request %s", approver, id), Err: err}
	case errors.Is(err, store.ErrRequestState):
		r, rerr := a.cfg.Store.Request(ctx, id)
		if rerr != nil {
			return err
		}
		if serr := stateErr(r, want, a.now()); serr != nil {
			return serr
		}
		return refuse(ReasonRequestExpired, "request %s expired", id)
	}
	return storeErr(err, fmt.Sprintf("request %s", id))
}

// DenyRequest denies a pending request, for reason. Denial is final.
func (a *Authority) DenyRequest(ctx context.Context, by Actor, id, reason string) (r store.AccessRequest, err error) {
	rec := a.event(by, "access.deny")
	rec.Reason = "request " + id
	var now time.Time
	err = a.act(ctx, rec, func(rec *audit.Record) error {
		if r, err = a.Request(ctx, id); err != nil {
			if !ValidRequestID(id) {
				rec.Reason = ""
			}
			return err
		}
		rec.Contractor = r.Contractor
		now = a.now()
		if err := validReason("reason", reason); err != nil {
			return err
		}
		if err := stateErr(r, store.RequestPending, now); err != nil {
			return err
		}
		if err := a.mayDecide(ctx, by, r); err != nil {
			return err
		}
		rec.Reason = fmt.Sprintf("request %s denied by %s: %s", id, by.Name, reason)
		return nil
	}, func() error {
		err := a.cfg.Store.DenyRequest(ctx, id, by.Name, reason, now)
		return a.lostRace(ctx, err, id, store.RequestPending, by.Name)
	})
	if err != nil {
		return store.AccessRequest{}, err
	}
	r.State, r.DecidedBy, r.DecidedAt, r.DenyReason = store.RequestDenied, by.Name, now, reason
	a.emit(ctx, Event{Type: EventAccessDenied, Actor: by.TokenID, Contractor: r.Contractor, Scopes: r.Scopes,
		Reason: reason, RequestID: r.ID})
	return r, nil
}

// FetchRequest issues the token of contractor's approved request id to
// the request-only token by that made the request, exactly once; any
// other token, even another request-only token of the same contractor, is
// refused (forbidden), so a second or leaked request-only token cannot
// take the approved token first. The token is generated now and
// stored, with the request marked fetched, in one conditional change, so
// a second or concurrent fetch is refused (already_fetched). The token
// expires the request's TTL after its final approval and is checked as
// Issue checks a token, against today's grants and engagement.
func (a *Authority) FetchRequest(ctx context.Context, by Actor, contractor, id string) (iss Issued, err error) {
	rec := a.event(by, "access.fetch")
	rec.Contractor = contractor
	var now time.Time
	err = a.act(ctx, rec, func(rec *audit.Record) error {
		r, err := a.OwnRequest(ctx, by, contractor, id)
		if err != nil {
			return err
		}
		if r.Requester != by.TokenID {
			return refuse(ReasonForbidden, "only the token that made request %s can fetch it", id)
		}
		now = a.now()
		if err := stateErr(r, store.RequestApproved, now); err != nil {
			return err
		}
		left := r.DecidedAt.Add(r.TTL).Sub(now)
		if left < time.Second {
			return refuse(ReasonRequestExpired, "the token of request %s would expire at %s: fetched too late",
				id, r.DecidedAt.Add(r.TTL).Format(time.RFC3339))
		}
		t, err := a.newToken(ctx, by, requested(contractor, r.Scopes, left, "access request "+id))
		if err != nil {
			return err
		}
		t.CreatedBy = approverToken(r)
		if iss, err = a.generate(t); err != nil {
			return err
		}
		rec.TokenID, rec.Reason = iss.Token.ID, fmt.Sprintf("request %s: %s", id, describe(iss.Token))
		return nil
	}, func() error {
		err := a.cfg.Store.FetchRequest(ctx, id, iss.Token, now)
		return a.lostRace(ctx, err, id, store.RequestApproved, "")
	})
	if err != nil {
		return Issued{}, err
	}
	a.emit(ctx, tokenEvent(EventTokenIssued, by, iss.Token, "access request "+id))
	return iss, nil
}

// approverToken is the admin token id of r's final approval.
func approverToken(r store.AccessRequest) string {
	for _, p := range r.Approvals {
		if p.Approver == r.DecidedBy {
			return p.TokenID
		}
	}
	return ""
}

// AddApprover puts name in approver group group: name may then approve
// any contractor's request (with an admin token whose note is name).
func (a *Authority) AddApprover(ctx context.Context, by Actor, group, name string) (ap store.Approver, err error) {
	rec := a.event(by, "approver.add")
	rec.Reason = fmt.Sprintf("group %s: %s", group, name)
	err = a.act(ctx, rec, func(*audit.Record) error {
		if err := validName("group", group); err != nil {
			return err
		}
		if err := validText("approver name", name, true); err != nil {
			return err
		}
		if strings.TrimSpace(name) != name {
			return refuse(ReasonInvalid, "approver name %q has leading or trailing space", name)
		}
		ap = store.Approver{Group: group, Name: name, CreatedAt: a.now(), CreatedBy: by.TokenID}
		return nil
	}, func() error {
		return storeErr(a.cfg.Store.AddApprover(ctx, ap), fmt.Sprintf("approver %q in group %q", name, group))
	})
	return ap, err
}

// RemoveApprover takes name out of approver group group.
func (a *Authority) RemoveApprover(ctx context.Context, by Actor, group, name string) error {
	rec := a.event(by, "approver.remove")
	rec.Reason = fmt.Sprintf("group %s: %s", group, name)
	return a.act(ctx, rec, func(*audit.Record) error {
		if err := validName("group", group); err != nil {
			return err
		}
		return validText("approver name", name, true)
	}, func() error {
		return storeErr(a.cfg.Store.RemoveApprover(ctx, group, name), fmt.Sprintf("approver %q in group %q", name, group))
	})
}

// Approvers lists every approver group membership.
func (a *Authority) Approvers(ctx context.Context) ([]store.Approver, error) {
	return a.cfg.Store.Approvers(ctx)
}

// RequestApprovals returns how many distinct approvals a request needs.
func (a *Authority) RequestApprovals() int { return a.cfg.RequestApprovals }
