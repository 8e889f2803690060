// Package access applies latchkey's rules to the store: onboarding and
// offboarding contractors, registering services, granting scopes, and
// issuing, rotating and revoking tokens. Every refusal is an *Error with a
// stable reason word; nothing is written when a request is refused.
//
// Every path that changes state goes through an Authority, so later
// layers (the audit log, notifications) hook in here once.
package access

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"latchkey/internal/seal"
	"latchkey/internal/store"
)

// Reason words of refusals. The admin API maps each to an HTTP status.
const (
	ReasonInvalid            = "invalid_request"
	ReasonNotFound           = "not_found"
	ReasonConflict           = "conflict"
	ReasonForbidden          = "forbidden"
	ReasonTTLMissing         = "ttl_missing"
	ReasonTTLTooLong         = "ttl_too_long"
	ReasonScopeNotCovered    = "scope_not_covered"
	ReasonPastEngagement     = "expiry_past_engagement"
	ReasonPastGrant          = "expiry_past_grant"
	ReasonContractorDisabled = "contractor_disabled"
	ReasonEngagementEnded    = "engagement_ended"
	ReasonRevoked            = "token_revoked"
	ReasonGrantRevoked       = "grant_revoked"
	ReasonExpired            = "token_expired"
	ReasonMalformed          = "token_malformed"
	ReasonUnknown            = "token_unknown"
	ReasonSourceDenied       = "source_denied"
)

// Error is a refusal: Reason is the stable word for clients, Msg one line
// for humans. Err, if set, is the underlying cause for errors.Is.
type Error struct {
	Reason string
	Msg    string
	Err    error
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Err }

func refuse(reason, format string, args ...any) *Error {
	return &Error{Reason: reason, Msg: fmt.Sprintf(format, args...)}
}

// ReasonOf returns the reason word of err, or "" if err is not a refusal.
func ReasonOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

// DefaultMaxTTL is the longest token lifetime when Config.MaxTTL is zero.
const DefaultMaxTTL = 30 * 24 * time.Hour

// Config configures an Authority. The zero value of every field but Store
// and Box is a usable default.
type Config struct {
	// Store holds all state. Required.
	Store store.Store
	// Box seals service credentials. Required.
	Box *seal.Box
	// MaxTTL is the longest lifetime of any token. Default DefaultMaxTTL.
	MaxTTL time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Rand is the randomness for token secrets. Default crypto/rand.Reader.
	Rand io.Reader
	// Invalidate is called with a token id after the token is revoked or
	// its expiry changes, so other caches (other replicas) drop it at once.
	// The Authority's own cache is always invalidated. Optional.
	Invalidate func(tokenID string)
	// Audit commits a record of every action and refusal before the
	// action takes effect; when it fails, the action is refused
	// (ReasonAuditUnavailable). nil records nothing: only for tests of
	// other packages; a server always sets it.
	Audit Auditor
	// Events receives an Event after every change worth a notification
	// (see events.go). Optional.
	Events func(context.Context, Event)
	// Log is the application log (never the audit log). Default slog.Default().
	Log *slog.Logger
	// RequestApprovals is how many distinct approvers an access request
	// needs (requests.go). Default 1.
	RequestApprovals int
	// RequestTTL is how long an access request waits for its approvals,
	// and an approved one for its fetch. Default DefaultRequestTTL.
	RequestTTL time.Duration
}

// Authority enforces the rules. It is safe for concurrent use.
type Authority struct {
	cfg   Config
	cache *cache
	holds holds // requests in flight, by token id
}

// New validates cfg and returns an Authority.
func New(cfg Config) (*Authority, error) {
	if cfg.Store == nil || cfg.Box == nil {
		return nil, errors.New("access: Store and Box are required")
	}
	if cfg.MaxTTL < 0 {
		return nil, fmt.Errorf("access: negative MaxTTL %v", cfg.MaxTTL)
	}
	if cfg.MaxTTL == 0 {
		cfg.MaxTTL = DefaultMaxTTL
	}
	if cfg.RequestApprovals < 0 || cfg.RequestTTL < 0 {
		return nil, fmt.Errorf("access: negative RequestApprovals %d or RequestTTL %v", cfg.RequestApprovals, cfg.RequestTTL)
	}
	if cfg.RequestApprovals == 0 {
		cfg.RequestApprovals = 1
	}
	if cfg.RequestTTL == 0 {
		cfg.RequestTTL = DefaultRequestTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Authority{cfg: cfg, cache: newCache()}, nil
}

// MaxTTL returns the effective maximum token lifetime.
func (a *Authority) MaxTTL() time.Duration { return a.cfg.MaxTTL }

// now returns the current time truncated to the store's millisecond
// precision, in UTC.
func (a *Authority) now() time.Time {
	return a.cfg.Now().UTC().Truncate(time.Millisecond)
}

// storeErr turns a store error into a refusal naming what was missing or
// taken, or passes through an internal error.
func storeErr(err error, what string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return &Error{Reason: ReasonNotFound, Msg: what + " not found", Err: err}
	case errors.Is(err, store.ErrConflict):
		return &Error{Reason: ReasonConflict, Msg: what + " already exists", Err: err}
	case errors.Is(err, store.ErrDisabled):
		return &Error{Reason: ReasonContractorDisabled, Msg: what + ": contractor is disabled", Err: err}
	case errors.Is(err, store.ErrRevoked):
		return &Error{Reason: ReasonRevoked, Msg: what + " is already revoked", Err: err}
	}
	return err
}

// invalidate drops a token from every cache.
func (a *Authority) invalidate(id string) {
	a.cache.drop(id)
	a.recheck(id)
	if a.cfg.Invalidate != nil {
		a.cfg.Invalidate(id)
	}
}

// CacheStats returns how many token lookups the cache has answered, and
// how many it has sent to the store, since the Authority was created.
func (a *Authority) CacheStats() (hits, misses uint64) {
	return a.cache.hits.Load(), a.cache.misses.Load()
}

// RateKey is the key of the gateway's per-token rate limit for token id:
// the tree's root for a derived token, so that deriving never multiplies
// a contractor's rate; id itself otherwise (or when id is not cached).
func (a *Authority) RateKey(id string) string {
	a.cache.mu.RLock()
	e := a.cache.m[id]
	a.cache.mu.RUnlock()
	if e != nil && e.root != "" {
		return e.root
	}
	return id
}

// CachedTokens returns the number of token records in the cache.
func (a *Authority) CachedTokens() int {
	a.cache.mu.RLock()
	defer a.cache.mu.RUnlock()
	return len(a.cache.m)
}

// Store returns the store the Authority works on.
func (a *Authority) Store() store.Store { return a.cfg.Store }
