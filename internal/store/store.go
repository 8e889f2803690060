// Package store defines latchkey's persistent model (contractors, services,
// grants, tokens and usage) and the Store interface every storage engine
// implements. Engines live in subpackages (store/sqlite, store/postgres)
// and all of them must pass the conformance suite in store/storetest.
//
// The store holds no secrets in plain text: tokens are kept only as the
// SHA-256 of their secret part, and service credentials only as ciphertext
// sealed by package seal. The store never decrypts anything.
package store

import (
	"context"
	"errors"
	"time"
)

// Errors a Store returns. Callers branch on them with errors.Is.
var (
	// ErrNotFound: the named contractor, service, grant or token does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a contractor or service with that name, or a token with
	// that id, already exists.
	ErrConflict = errors.New("already exists")
	// ErrRevoked: the token or grant is already revoked; revocation is final.
	ErrRevoked = errors.New("already revoked")
	// ErrDisabled: the contractor is disabled (offboarded), so nothing new
	// may be created for it.
	ErrDisabled = errors.New("contractor disabled")
	// ErrExhausted: the token has used every use its limit allows.
	ErrExhausted = errors.New("uses exhausted")
)

// Contractor is an external identity with an engagement window.
type Contractor struct {
	Name      string    // unique, immutable key
	Email     string    // contact address
	Company   string    // optional
	Sponsor   string    // the employee who answers for the contractor
	Until     time.Time // engagement end: after it nothing of theirs works
	Disabled  bool      // set by offboarding; never cleared
	CreatedAt time.Time
	CreatedBy string // actor (admin token id) that onboarded the contractor
}

// Service is an upstream system reachable through the gateway.
type Service struct {
	Name     string // unique, immutable key; the gateway path prefix
	Upstream string // absolute http(s) URL
	// SealedCredential is the ciphertext (package seal) of the credential
	// headers the gateway injects. It is opaque to the store.
	SealedCredential []byte
	// PrivateHeaders are request header names (canonical form) that the
	// gateway removes from every request it forwards to this service.
	PrivateHeaders []string
	// Kind is "" for a service whose kind follows from its upstream URL's
	// scheme (http and https: an HTTP service; postgres: a PostgreSQL
	// service), or "kubernetes" for a Kubernetes API server reached over
	// https (package kube). At most 32 bytes.
	Kind      string
	CreatedAt time.Time
	CreatedBy string
}

// Grant allows a contractor to be issued tokens within its scopes until
// ExpiresAt.
type Grant struct {
	ID         int64 // assigned by the store on create
	Contractor string
	Scopes     []string // canonical scope strings (package scope)
	ExpiresAt  time.Time
	CreatedAt  time.Time
	CreatedBy  string
	RevokedAt  time.Time // zero while not revoked
	RevokedBy  string
}

// Live reports whether the grant is neither revoked nor expired at t.
func (g Grant) Live(t time.Time) bool {
	return g.RevokedAt.IsZero() && t.Before(g.ExpiresAt)
}

// Token is the stored record of an issued token. The token text is never
// stored: only its public ID and the SHA-256 of its secret part.
type Token struct {
	ID         string   // public accessor derived from the token text
	Admin      bool     // lka_ admin token (Contractor is empty)
	Contractor string   // owner of a contractor token
	Scopes     []string // canonical scope strings
	Hash       [32]byte // SHA-256 of the secret part
	ExpiresAt  time.Time
	CIDRs      []string // allowed source networks; empty = any
	MaxUses    int64    // 0 = unlimited
	Uses       int64    // requests counted so far (flushed in batches)
	Note       string
	CreatedAt  time.Time
	CreatedBy  string
	LastUsedAt time.Time // zero = never used
	RevokedAt  time.Time // zero = not revoked
	RevokedBy  string
	// RevokedReason is why: one of the Revoke* words; empty while not revoked.
	RevokedReason string
	Parent        string // id of the token this one rotated from, if any
	// DerivedFrom is the id of the token this one was narrowed from by its
	// contractor (self-service), if any; revoking that token revokes this one.
	DerivedFrom string
	// CnfJKT binds the token to a DPoP key (RFC 9449): the RFC 7638
	// SHA-256 thumbprint of its public key, base64url without padding.
	// A bound token is accepted only with a proof signed by that key.
	CnfJKT string
	// CnfX5T binds the token to a client certificate (RFC 8705): the
	// SHA-256 thumbprint of the certificate (x5t#S256), base64url without
	// padding. At most one of CnfJKT and CnfX5T is set.
	CnfX5T string
}

// Bound reports whether the token is bound to a key (DPoP or mTLS).
func (t Token) Bound() bool { return t.CnfJKT != "" || t.CnfX5T != "" }

// Why a token was revoked (Token.RevokedReason).
const (
	RevokeManual        = "manual"           // token revoke, by an admin
	RevokeIdle          = "idle"             // unused past the idle timeout
	RevokeEngagementEnd = "engagement_ended" // its contractor's engagement ended
	RevokeLeaked        = "leaked"           // reported found in the wild
	RevokeOffboarded    = "offboarded"       // its contractor was offboarded
	RevokeParent        = "parent_revoked"   // the token it was derived from was revoked
	RevokeRotated       = "rotated"          // its successor's rotation grace ended
)

// Active reports whether the token is unrevoked and unexpired at t.
func (t Token) Active(at time.Time) bool {
	return t.RevokedAt.IsZero() && at.Before(t.ExpiresAt)
}

// TokenFilter selects tokens in Tokens. Zero fields select everything.
type TokenFilter struct {
	Contractor string    // only this contractor's tokens
	ActiveAt   time.Time // only tokens unrevoked and unexpired at this time
	Admin      *bool     // only admin (true) or contractor (false) tokens
}

// GrantFilter selects grants in Grants. Zero fields select everything.
type GrantFilter struct {
	Contractor string
	LiveAt     time.Time // only grants unrevoked and unexpired at this time
}

// Use is one batch entry of usage recorded by the gateway: a token was used
// Count times, last at At, and each listed scope was the one that allowed
// at least one of those requests.
type Use struct {
	TokenID string
	At      time.Time
	Count   int64
	Scopes  []string
}

// OffboardResult says what Offboard changed.
type OffboardResult struct {
	TokensRevoked int
	GrantsRevoked int
}

// ActiveRow is one line of the active report: a contractor holding live tokens.
type ActiveRow struct {
	Contractor   string
	Email        string
	Sponsor      string
	Until        time.Time // engagement end
	Tokens       int       // live tokens held
	NextExpiry   time.Time // earliest expiry among them
	LatestExpiry time.Time // latest expiry among them
	LastUsedAt   time.Time // most recent use of any of them, zero if none
}

// AccessRow is one line of the access report: a contractor may touch Scope
// through a live grant (Source "grant", ID the grant id) or holds a live
// token with it (Source "token", ID the token id), until Until.
type AccessRow struct {
	Contractor string
	Scope      string
	Source     string
	ID         string
	Until      time.Time
}

// UnusedToken is a live token not used since the report's cutoff: only
// what the unused report shows, so the report reads few columns.
type UnusedToken struct {
	ID         string
	Contractor string
	Scopes     []string
	ExpiresAt  time.Time
	CreatedAt  time.Time
	LastUsedAt time.Time // zero = never used
	Note       string
}

// ScopeUse says that a token of Contractor was last allowed a request by
// its scope Scope at LastUsedAt.
type ScopeUse struct {
	Contractor string
	Scope      string
	LastUsedAt time.Time
}

// Store is latchkey's persistent state. Every method is safe for
// concurrent use. Methods that change several rows do so in one
// transaction: either all of the change is stored or none of it.
//
// Times are kept to the millisecond in UTC: a stored time comes back as
// t.Truncate(time.Millisecond).UTC(), and the zero time stays zero. The
// time passed to a revocation (at) must not be zero.
type Store interface {
	// CreateContractor stores c; ErrConflict if the name is taken.
	CreateContractor(ctx context.Context, c Contractor) error
	// Contractor returns the named contractor or ErrNotFound.
	Contractor(ctx context.Context, name string) (Contractor, error)
	// Contractors returns all contractors ordered by name.
	Contractors(ctx context.Context) ([]Contractor, error)
	// Offboard, in one transaction, revokes every unrevoked token and grant
	// of the contractor (RevokedBy = by, RevokedAt = at) and disables it.
	// ErrNotFound if there is no such contractor. Offboarding a disabled
	// contractor revokes whatever is still live and is not an error.
	Offboard(ctx context.Context, name, by string, at time.Time) (OffboardResult, error)

	// CreateService stores s; ErrConflict if the name is taken.
	CreateService(ctx context.Context, s Service) error
	// Service returns the named service or ErrNotFound.
	Service(ctx context.Context, name string) (Service, error)
	// Services returns all services ordered by name.
	Services(ctx context.Context) ([]Service, error)

	// CreateGrant stores g and returns it with its ID set. ErrNotFound if
	// the contractor does not exist, ErrDisabled if it is disabled.
	CreateGrant(ctx context.Context, g Grant) (Grant, error)
	// Grant returns the grant with that id or ErrNotFound.
	Grant(ctx context.Context, id int64) (Grant, error)
	// Grants returns the grants selected by f ordered by id.
	Grants(ctx context.Context, f GrantFilter) ([]Grant, error)
	// RevokeGrant revokes a grant. ErrNotFound, or ErrRevoked if it was
	// already revoked (the first revocation stays as it was).
	RevokeGrant(ctx context.Context, id int64, by string, at time.Time) error

	// CreateToken stores t. ErrConflict if the id exists; for a contractor
	// token ErrNotFound if the contractor does not exist and ErrDisabled if
	// it is disabled (checked in the same transaction as the insert).
	CreateToken(ctx context.Context, t Token) error
	// Token returns the token with that id or ErrNotFound.
	Token(ctx context.Context, id string) (Token, error)
	// Tokens returns the tokens selected by f ordered by creation time, id.
	Tokens(ctx context.Context, f TokenFilter) ([]Token, error)
	// RevokeToken revokes a token for reason (a Revoke* word). ErrNotFound,
	// or ErrRevoked if it was already revoked (the first revocation, its
	// reason included, stays as it was): of two concurrent revocations
	// exactly one succeeds.
	RevokeToken(ctx context.Context, id, by, reason string, at time.Time) error
	// RotateToken, in one transaction, stores next (whose Parent must be
	// oldID, else an error) and moves the old token's expiry to
	// oldExpiresAt if that is earlier than its current expiry. ErrNotFound
	// if the old token does not exist, ErrDisabled if its contractor is
	// disabled (checked first: offboarding also revokes), ErrRevoked if it
	// is revoked; next is checked as CreateToken checks a token.
	RotateToken(ctx context.Context, oldID string, oldExpiresAt time.Time, next Token) error

	// RecordUse applies a batch of usage: it raises each token's LastUsedAt
	// (never lowers it), adds Count to Uses, and raises the per-scope
	// last-use of the token's contractor (admin tokens have none). Unknown
	// token ids are ignored; a zero At only adds Count.
	RecordUse(ctx context.Context, uses []Use) error
	// ConsumeUse counts one use of a token that has a use limit, at once
	// and atomically (so that replicas sharing the store never allow more
	// uses than the limit): it adds one to Uses unless Uses has reached
	// MaxUses, and raises LastUsedAt to at. It returns the new Uses.
	// ErrNotFound; ErrExhausted if the limit is reached (nothing changes);
	// a token without a limit (MaxUses 0) is an error: its uses are
	// counted by RecordUse.
	ConsumeUse(ctx context.Context, id string, at time.Time) (int64, error)

	// ActiveReport lists contractors holding tokens active at t, ordered
	// by contractor name.
	ActiveReport(ctx context.Context, t time.Time) ([]ActiveRow, error)
	// AccessReport lists the scopes of grants live at t and of tokens
	// active at t, for one contractor or (contractor == "") for all,
	// ordered by contractor, scope, source, id (ids compared as strings).
	AccessReport(ctx context.Context, contractor string, t time.Time) ([]AccessRow, error)
	// UnusedTokens lists contractor tokens active at t that were neither
	// used nor created after cutoff, ordered by contractor, id.
	UnusedTokens(ctx context.Context, cutoff, t time.Time) ([]UnusedToken, error)
	// ScopeUses lists the (contractor, scope) last uses that are after
	// since, ordered by contractor, scope.
	ScopeUses(ctx context.Context, since time.Time) ([]ScopeUse, error)

	// Webhooks and their delivery outbox (package notify). A delivery is
	// sent by whichever replica claims it: ClaimDeliveries takes a lease on
	// each attempt with a conditional update, so that two processes sharing
	// the store never make the same attempt.

	// CreateWebhook stores w; ErrConflict if the id exists.
	CreateWebhook(ctx context.Context, w Webhook) error
	// Webhook returns the webhook with that id or ErrNotFound.
	Webhook(ctx context.Context, id string) (Webhook, error)
	// Webhooks returns all webhooks ordered by creation time, id.
	Webhooks(ctx context.Context) ([]Webhook, error)
	// DeleteWebhook removes a webhook (ErrNotFound if there is none) and,
	// in the same transaction, marks its pending deliveries failed at at.
	// Its deliveries and their logs stay.
	DeleteWebhook(ctx context.Context, id string, at time.Time) error
	// EnqueueDeliveries stores pending deliveries (Attempts 0, due at
	// NextAt) in one transaction; ErrConflict if an id exists.
	EnqueueDeliveries(ctx context.Context, ds []Delivery) error
	// ClaimDeliveries claims up to limit pending deliveries due at now
	// whose lease (if any) ended, oldest due first: for each it adds one
	// to Attempts and leases that attempt to owner until leaseUntil. It
	// returns them with Attempts set to the attempt claimed. A claimed
	// attempt is never returned again, to anyone.
	ClaimDeliveries(ctx context.Context, owner string, now, leaseUntil time.Time, limit int) ([]Delivery, error)
	// RecordAttempt logs attempt a and moves its delivery to a.State
	// (next attempt due at a.NextAt if pending), releasing the lease.
	// ErrNotFound unless owner still holds the lease on attempt a.N.
	RecordAttempt(ctx context.Context, owner string, a Attempt) error
	// Deliveries returns the deliveries selected by f, newest first
	// (creation time, then id, descending), each with its Log.
	Deliveries(ctx context.Context, f DeliveryFilter) ([]Delivery, error)

	// Access requests and approver groups (requests.go). Approve, deny
	// and fetch are conditional: each changes a request only in the state
	// it needs and before its ExpiresAt, in one transaction, so that of
	// two concurrent calls exactly one succeeds.
	//
	// CreateRequest stores r (State must be RequestPending, without
	// approvals). ErrConflict if the id exists, ErrNotFound if the
	// contractor does not exist, ErrDisabled if it is disabled.
	CreateRequest(ctx context.Context, r AccessRequest) error
	// Request returns the request with that id, approvals included, or ErrNotFound.
	Request(ctx context.Context, id string) (AccessRequest, error)
	// Requests returns the requests selected by f ordered by creation time, id.
	Requests(ctx context.Context, f RequestFilter) ([]AccessRequest, error)
	// ApproveRequest adds a's approval to a pending request and, once it
	// has need distinct approvers, makes it RequestApproved (DecidedBy
	// a.Approver, DecidedAt a.At, ExpiresAt moved to expires). It returns
	// the request as stored. ErrNotFound; ErrRequestState if the request
	// is not pending or a.At is not before its ExpiresAt; ErrConflict if
	// a.Approver has already approved it (nothing changes).
	ApproveRequest(ctx context.Context, id string, a Approval, need int, expires time.Time) (AccessRequest, error)
	// DenyRequest makes a pending request RequestDenied (final).
	// ErrNotFound; ErrRequestState if it is not pending or at is not
	// before its ExpiresAt.
	DenyRequest(ctx context.Context, id string, by, reason string, at time.Time) error
	// FetchRequest, in one transaction, makes an approved request
	// RequestFetched (TokenID t.ID, FetchedAt at) and stores t as
	// CreateToken does. ErrNotFound; ErrRequestState if it is not approved
	// or at is not before its ExpiresAt (nothing is stored); CreateToken's
	// errors for t.
	FetchRequest(ctx context.Context, id string, t Token, at time.Time) error
	// AddApprover stores a; ErrConflict if that name is already in that group.
	AddApprover(ctx context.Context, a Approver) error
	// RemoveApprover removes name from group; ErrNotFound if not a member.
	RemoveApprover(ctx context.Context, group, name string) error
	// Approvers returns every group membership ordered by group, name.
	Approvers(ctx context.Context) ([]Approver, error)

	// Policy, leases and the sweeper (issue 5: policy.go, sweep.go in
	// store/sqlite).
	//
	// SetPolicy stores p as the policy of its level and name, replacing
	// what was there; a p that sets nothing (p.Empty()) removes it.
	SetPolicy(ctx context.Context, p Policy) error
	// Policies returns every stored policy ordered by level, name.
	Policies(ctx context.Context) ([]Policy, error)
	// AcquireLease makes holder the holder of the lease name until until,
	// if the lease is free, expired at now, or already held by holder. It
	// reports whether holder holds it; of concurrent callers with
	// different holders at most one gets true.
	AcquireLease(ctx context.Context, name, holder string, now, until time.Time) (bool, error)
	// Claim records that holder takes the action named key at now, if no
	// one did, or if the claim is older than staleBefore (its taker died
	// half-way). It reports whether holder got it; of concurrent claims of
	// one key at most one gets true.
	Claim(ctx context.Context, key, holder string, now, staleBefore time.Time) (bool, error)
	// EndEngagement is Offboard for a contractor whose engagement ended:
	// tokens are revoked with reason RevokeEngagementEnd. ErrNotFound, or
	// ErrDisabled if the contractor is already disabled (nothing changes):
	// of two concurrent calls exactly one succeeds.
	EndEngagement(ctx context.Context, name, by string, at time.Time) (OffboardResult, error)
	// RotatedTokens returns the unrevoked tokens that a successor names as
	// Parent and whose expiry (the end of the rotation grace) is at or
	// before at, ordered by id.
	RotatedTokens(ctx context.Context, at time.Time) ([]Token, error)
	// ExpiringTokens returns the contractor tokens active at now that
	// expire at or before before, have no expiry notice claimed, and that
	// no successor names as Parent (a rotated token ends by design),
	// ordered by expiry, id.
	ExpiringTokens(ctx context.Context, now, before time.Time) ([]Token, error)
	// ClaimExpiryNotice marks the expiry notice of token id as sent at at,
	// if none was: it reports whether this call marked it (exactly one of
	// concurrent calls does). ErrNotFound if there is no such token.
	ClaimExpiryNotice(ctx context.Context, id string, at time.Time) (bool, error)

	// Derived tokens (self-service narrowing) and revocation cascades.
	// A derived token (DerivedFrom set) dies with the token it was derived
	// from: revoking a token revokes, in the same transaction, every
	// unrevoked token derived from it, directly or not.
	//
	// CreateDerivedToken, in one transaction, checks t's parent (the token
	// t.DerivedFrom, which must be set, be a contractor token of the same
	// contractor, else an error) and stores t: ErrNotFound if the parent
	// does not exist, ErrDisabled if the contractor is disabled (checked
	// first), ErrRevoked if the parent is revoked. If the parent has a use
	// limit, t's uses are carved out of it: t.MaxUses must be between 1 and
	// the parent's MaxUses - Uses, else ErrExhausted, and the parent's Uses
	// grows by t.MaxUses. t is otherwise checked as CreateToken checks.
	CreateDerivedToken(ctx context.Context, t Token) error
	// DerivedTokens returns the unrevoked tokens derived from token id,
	// directly or not, ordered by creation time, id. No error for an
	// unknown id: the list is empty.
	DerivedTokens(ctx context.Context, id string) ([]Token, error)
	// RevokeTokenTree revokes token id for reason (as RevokeToken does,
	// with its ErrNotFound and ErrRevoked) and, in the same transaction,
	// every unrevoked token derived from it, directly or not, with reason
	// RevokeParent, by and at. It returns the ids of those descendants,
	// ordered by id.
	RevokeTokenTree(ctx context.Context, id, by, reason string, at time.Time) ([]string, error)
	// EndDerivedTokens moves the expiry of every unrevoked token derived
	// from token id, directly or not, that expires after at, to at (when a
	// rotation ends the parent early, its children end with it). It
	// returns the ids of the tokens changed, ordered by id.
	EndDerivedTokens(ctx context.Context, id string, at time.Time) ([]string, error)

	// The invalidation feed, for processes that cache token records and
	// share the store (package access, Authority.Follow). Every write that
	// can make a cached record stale appends, in its own transaction, an
	// Invalidation: RevokeToken one for the token, RevokeTokenTree one per
	// token it revokes, RotateToken and EndDerivedTokens one per token
	// whose expiry they move, Offboard and EndEngagement one for every
	// token of the contractor (TokenID ""). A write that fails or is
	// refused appends nothing. Seq increases by one per entry in commit
	// order: a reader that has seen seq n never later finds a new entry at
	// or below n, and a skipped seq means entries were pruned before it
	// read them.
	//
	// Invalidations returns up to limit entries with Seq > after, ordered
	// by Seq.
	Invalidations(ctx context.Context, after int64, limit int) ([]Invalidation, error)
	// LastInvalidation returns the largest Seq ever appended, 0 if none
	// (pruning does not lower it).
	LastInvalidation(ctx context.Context) (int64, error)
	// PruneInvalidations deletes the entries written before before and
	// returns how many it deleted.
	PruneInvalidations(ctx context.Context, before time.Time) (int, error)

	// Close releases the store's resources.
	Close() error
}

// Policy levels (Policy.Level).
const (
	PolicyServer     = "server"     // the whole server; Name is ""
	PolicyService    = "service"    // one service; Name is its name
	PolicyContractor = "contractor" // one contractor; Name is its name
)

// Approval values (Policy.Approval); "" inherits.
const (
	ApprovalRequired = "required" // tokens are issued only through an approved request
	ApprovalNone     = "none"     // no approval needed (unless another level requires it)
)

// Policy is what one level sets of the token policy. A zero duration or
// an empty Approval is not set: the value is inherited from the levels
// around it (package access resolves them).
type Policy struct {
	Level      string // PolicyServer, PolicyService or PolicyContractor
	Name       string
	DefaultTTL time.Duration // lifetime of a token issued without one
	MaxTTL     time.Duration // longest token lifetime
	Idle       time.Duration // a token unused this long is revoked
	MaxGrant   time.Duration // longest grant
	Approval   string        // "", ApprovalRequired or ApprovalNone
	UpdatedAt  time.Time
	UpdatedBy  string
}

// Empty reports whether p sets nothing.
func (p Policy) Empty() bool {
	return p.DefaultTTL == 0 && p.MaxTTL == 0 && p.Idle == 0 && p.MaxGrant == 0 && p.Approval == ""
}
