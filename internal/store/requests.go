package store

import (
	"errors"
	"time"
)

// ErrRequestState: the access request is no longer in the state the change
// needs (approve and deny need pending, fetch needs approved) or has
// lapsed (the time given is at or after its ExpiresAt). Nothing changed.
var ErrRequestState = errors.New("access request is not in that state")

// Stored states of an access request. A request whose ExpiresAt has passed
// while it is pending or approved reads as RequestExpired (AccessRequest.StateAt);
// the store keeps its stored state.
const (
	RequestPending  = "pending"  // waiting for approvals
	RequestApproved = "approved" // approved; the token may be fetched once
	RequestDenied   = "denied"   // denied; final
	RequestFetched  = "fetched"  // the token was issued and fetched; final
	RequestExpired  = "expired"  // derived: pending or approved past ExpiresAt
)

// AccessRequest is a contractor's request for a token (just-in-time
// access). It never holds a token secret: the token is generated when it
// is fetched, and only its id is kept.
type AccessRequest struct {
	ID         string // chosen by the caller (package access: rq_ and 16 base32 letters); unique
	Contractor string
	Requester  string        // id of the request-only token that asked
	Scopes     []string      // canonical scopes asked for
	TTL        time.Duration // lifetime of the token, counted from approval (whole milliseconds)
	Reason     string
	State      string    // a stored Request* state (never RequestExpired)
	CreatedAt  time.Time //
	ExpiresAt  time.Time // when the request lapses if not approved, or if approved and not fetched
	Approvals  []Approval
	DecidedBy  string    // name of who made the final approval, or denied
	DecidedAt  time.Time // zero while pending
	DenyReason string
	TokenID    string    // the issued token, once fetched
	FetchedAt  time.Time // zero until fetched
}

// StateAt returns the request's state at t: its stored state, or
// RequestExpired for a pending or approved request at or past ExpiresAt.
func (r AccessRequest) StateAt(t time.Time) string {
	if (r.State == RequestPending || r.State == RequestApproved) && !t.Before(r.ExpiresAt) {
		return RequestExpired
	}
	return r.State
}

// Approval is one approver's approval of a request.
type Approval struct {
	Approver string    // the approver's identity (the admin token's note)
	TokenID  string    // the admin token that approved
	At       time.Time //
}

// RequestFilter selects requests in Requests. Zero fields select everything.
type RequestFilter struct {
	Contractor string
	State      string // a stored state; the caller filters expired ones by StateAt
}

// Approver is a member of an approver group: Name may approve any
// contractor's access request.
type Approver struct {
	Group     string
	Name      string
	CreatedAt time.Time
	CreatedBy string
}
