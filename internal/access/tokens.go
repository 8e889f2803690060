package access

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"latchkey/internal/audit"
	"latchkey/internal/scope"
	"latchkey/internal/store"
	"latchkey/internal/timespec"
	"latchkey/internal/token"
)

// Limits on token requests.
const (
	maxCIDRs = 32
	maxNote  = 256
)

// IssueRequest asks for a new token.
type IssueRequest struct {
	// Contractor owns the token; empty for an admin token.
	Contractor string
	// Admin asks for an admin (lka_) token; its scopes must be admin
	// scopes covered by the issuing actor's own scopes.
	Admin  bool
	Scopes []string
	// TTL is at most the effective policy's max TTL (and never above the
	// server's MaxTTL). Zero takes the contractor's effective default TTL;
	// without one (and for admin tokens) it is mandatory.
	TTL     time.Duration
	CIDRs   []string
	MaxUses int64
	Note    string
	// Bind binds the token to a key the contractor holds: BindDPoP (with
	// Thumbprint the RFC 7638 thumbprint of the DPoP public key) or
	// BindMTLS (Thumbprint the client certificate's x5t#S256); "" for a
	// bearer token.
	Bind       string
	Thumbprint string

	// approved skips the approval_required check: it is set only by the
	// access-request flow (merged later), which issues the token a
	// sponsor approved. Nothing outside package access can set it.
	approved bool
}

// Issued is a new token: Text is shown once and never stored.
type Issued struct {
	Text  string
	Token store.Token
}

// Issue creates a token after checking every rule; see IssueRequest.
func (a *Authority) Issue(ctx context.Context, by Actor, req IssueRequest) (iss Issued, err error) {
	rec := a.event(by, "token.issue")
	rec.Contractor = req.Contractor
	err = a.act(ctx, rec, func(r *audit.Record) error {
		t, err := a.newToken(ctx, by, req)
		if err != nil {
			return err
		}
		iss, err = a.generate(t)
		r.TokenID, r.Reason = iss.Token.ID, describe(iss.Token)
		return err
	}, func() error {
		return storeErr(a.cfg.Store.CreateToken(ctx, iss.Token), fmt.Sprintf("token for %q", req.Contractor))
	})
	if err != nil {
		return Issued{}, err
	}
	a.emit(ctx, tokenEvent(EventTokenIssued, by, iss.Token, ""))
	return iss, nil
}

// newToken checks an issue request against every rule, without writing.
func (a *Authority) newToken(ctx context.Context, by Actor, req IssueRequest) (store.Token, error) {
	now := a.now()
	eff := Effective{MaxTTL: Setting{a.cfg.MaxTTL, FromCeiling}}
	if !req.Admin {
		var err error
		if eff, err = a.policyFor(ctx, req.Contractor, req.Scopes); err != nil {
			return store.Token{}, err
		}
		if req.TTL == 0 {
			req.TTL = eff.DefaultTTL.Value
		}
	}
	if err := checkTTL(req.TTL, eff.MaxTTL); err != nil {
		return store.Token{}, err
	}
	t, err := tokenFields(req)
	if err != nil {
		return store.Token{}, err
	}
	t.ExpiresAt = now.Add(req.TTL)
	t.CreatedAt, t.CreatedBy = now, by.TokenID
	if req.Admin {
		if t.Bound() {
			return t, refuse(ReasonInvalid, "only contractor tokens can be bound to a key")
		}
		return t, a.checkAdmin(by, &t)
	}
	if err := a.checkContractor(ctx, &t, now); err != nil {
		return t, err
	}
	// A request-only token is how a contractor asks for approval, so the
	// approval policy cannot require an approval to issue it.
	if eff.Approval && !req.approved && !requestOnly(t.Scopes) {
		return t, refuse(ReasonApprovalRequired, "the %s policy requires a sponsor's approval: tokens of contractor %q are issued only through an approved access request",
			eff.ApprovalFrom, req.Contractor)
	}
	return t, nil
}

// generate makes the token text and sets the record's id and hash.
func (a *Authority) generate(t store.Token) (Issued, error) {
	kind := token.Contractor
	if t.Admin {
		kind = token.Admin
	}
	text, p, err := token.Generate(kind, a.cfg.Rand)
	if err != nil {
		return Issued{}, fmt.Errorf("failed to generate token: %w", err)
	}
	t.ID, t.Hash = p.ID, p.Hash()
	return Issued{Text: text, Token: t}, nil
}

// describe is what an audit record says of a new token (never its secret).
func describe(t store.Token) string {
	d := fmt.Sprintf("%s token, scopes %s, expires %s", kindName(t.Admin), strings.Join(t.Scopes, " "), t.ExpiresAt.Format(time.RFC3339))
	if len(t.CIDRs) > 0 {
		d += ", from " + strings.Join(t.CIDRs, " ")
	}
	if t.Parent != "" {
		d += ", successor of " + t.Parent
	}
	return d
}

func kindName(admin bool) string {
	if admin {
		return "admin"
	}
	return "contractor"
}

// checkTTL checks a token lifetime against the effective max TTL.
func checkTTL(ttl time.Duration, limit Setting) error {
	switch {
	case ttl == 0:
		return refuse(ReasonTTLMissing, "a --ttl is required: every token expires")
	case ttl < 0:
		return refuse(ReasonInvalid, "ttl %v is negative", ttl)
	case ttl < time.Second:
		return refuse(ReasonInvalid, "ttl %v is shorter than one second", ttl)
	case ttl > limit.Value && limit.From == FromCeiling:
		return refuse(ReasonTTLTooLong, "ttl %s exceeds the server's maximum token lifetime %s",
			timespec.Format(ttl), timespec.Format(limit.Value))
	case ttl > limit.Value:
		return refuse(ReasonTTLTooLong, "ttl %s exceeds the maximum token lifetime %s set by the %s policy",
			timespec.Format(ttl), timespec.Format(limit.Value), limit.From)
	}
	return nil
}

// tokenFields validates the request's free-form fields into a token.
func tokenFields(req IssueRequest) (store.Token, error) {
	t := store.Token{Admin: req.Admin, Contractor: req.Contractor, Scopes: req.Scopes, Note: req.Note, MaxUses: req.MaxUses}
	if req.Admin && req.Contractor != "" {
		return t, refuse(ReasonInvalid, "an admin token has no contractor")
	}
	if req.MaxUses < 0 {
		return t, refuse(ReasonInvalid, "uses %d is negative", req.MaxUses)
	}
	if len(req.Note) > maxNote {
		return t, refuse(ReasonInvalid, "note is longer than %d bytes", maxNote)
	}
	if err := validText("note", req.Note, false); err != nil {
		return t, err
	}
	if err := bind(&t, req.Bind, req.Thumbprint); err != nil {
		return t, err
	}
	cidrs, err := parseCIDRs(req.CIDRs)
	t.CIDRs = cidrs
	return t, err
}

func parseCIDRs(in []string) ([]string, error) {
	if len(in) > maxCIDRs {
		return nil, refuse(ReasonInvalid, "too many CIDRs (max %d)", maxCIDRs)
	}
	var out []string
	for _, c := range in {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, refuse(ReasonInvalid, "invalid CIDR %q: want an address/prefix like 10.0.0.0/8", c)
		}
		if p.Masked() != p {
			return nil, refuse(ReasonInvalid, "invalid CIDR %q: host bits set (did you mean %s?)", c, p.Masked())
		}
		out = append(out, p.String())
	}
	return out, nil
}

// checkAdmin refuses an admin token that would hold more than its issuer:
// scopes the actor lacks, wider sources, or another person's name (see
// checkNote); its expiry is capped at the issuer's. It also canonicalises
// the token's scopes.
func (a *Authority) checkAdmin(by Actor, t *store.Token) error {
	if t.MaxUses != 0 {
		return refuse(ReasonInvalid, "admin tokens take no use limit (--uses applies to contractor tokens)")
	}
	if err := checkNote(by, t); err != nil {
		return err
	}
	if !by.ExpiresAt.IsZero() && t.ExpiresAt.After(by.ExpiresAt) {
		// Like a Vault child token: capped at the issuer's own expiry.
		t.ExpiresAt = by.ExpiresAt
	}
	if err := narrowerSources(by.CIDRs, t); err != nil {
		return err
	}
	set, err := parseScopes(t.Scopes)
	if err != nil {
		return err
	}
	for _, s := range set {
		if !s.IsAdmin() {
			return refuse(ReasonInvalid, "scope %q is not an admin scope: admin tokens hold only admin:... scopes", s)
		}
		if !by.Scopes.Covers(s) {
			return &Error{Reason: ReasonScopeNotCovered, Err: scope.ErrNotCovered,
				Msg: fmt.Sprintf("scope %q is not covered by your own admin token: you cannot grant more than you hold", s)}
		}
	}
	t.Scopes = set.Strings()
	return nil
}

// approversWrite is the scope that manages identities: approver groups,
// and who an admin token speaks for.
var approversWrite = scope.MustParse("admin:approvers:write")

// checkNote settles whom admin token t speaks for. An admin token's note
// is its holder's identity: the approver name a sponsor or group check
// matches and distinct approvals count. It defaults to the issuer's own
// name, and may name anyone else only if the issuer holds
// admin:approvers:write (admin:* covers it); otherwise an admin with
// admin:tokens:write could mint a token per name and approve as the
// sponsor, or as N distinct approvers, alone. Refused: forbidden.
func checkNote(by Actor, t *store.Token) error {
	if t.Note == "" {
		t.Note = by.Name
	}
	if t.Note == by.Name || by.Scopes.Covers(approversWrite) {
		return nil
	}
	return refuse(ReasonForbidden, "naming another person on an admin token needs %s: note %q is not your own name %q",
		approversWrite, t.Note, by.Name)
}

// narrowerSources requires the token's CIDRs to lie within the actor's,
// defaulting to the actor's own when the request names none.
func narrowerSources(actor []string, t *store.Token) error {
	if len(actor) == 0 {
		return nil
	}
	if len(t.CIDRs) == 0 {
		t.CIDRs = actor
		return nil
	}
	for _, c := range t.CIDRs {
		p := netip.MustParsePrefix(c)
		if !slices.ContainsFunc(actor, func(a string) bool {
			ap := netip.MustParsePrefix(a)
			return ap.Bits() <= p.Bits() && ap.Contains(p.Addr())
		}) {
			return refuse(ReasonForbidden, "CIDR %s is outside your own token's sources %v", c, actor)
		}
	}
	return nil
}

// checkContractor refuses a contractor token that is outside the
// contractor's engagement or live grants, and canonicalises its scopes.
func (a *Authority) checkContractor(ctx context.Context, t *store.Token, now time.Time) error {
	if t.Contractor == "" {
		return refuse(ReasonInvalid, "a contractor is required")
	}
	c, err := a.cfg.Store.Contractor(ctx, t.Contractor)
	if err != nil {
		return storeErr(err, fmt.Sprintf("contractor %q", t.Contractor))
	}
	if err := a.usable(c, now); err != nil {
		return err
	}
	if t.ExpiresAt.After(c.Until) {
		return refuse(ReasonPastEngagement, "token would expire at %s, after contractor %q's engagement end %s",
			t.ExpiresAt.Format(time.RFC3339), c.Name, c.Until.Format(time.RFC3339))
	}
	if requestOnly(t.Scopes) {
		return nil // a request-only token needs no grant (requests.go)
	}
	set, err := a.resourceScopes(ctx, t.Scopes)
	if err != nil {
		return err
	}
	grants, err := a.cfg.Store.Grants(ctx, store.GrantFilter{Contractor: c.Name, LiveAt: now})
	if err != nil {
		return err
	}
	for _, s := range set {
		if err := covered(s, grants, t.ExpiresAt, c.Name); err != nil {
			return err
		}
	}
	t.Scopes = set.Strings()
	return nil
}

// covered checks that one of the live grants covers s until expires.
func covered(s scope.Scope, grants []store.Grant, expires time.Time, contractor string) error {
	var shortest *store.Grant
	for i, g := range grants {
		set, err := scope.ParseSet(g.Scopes)
		if err != nil {
			return fmt.Errorf("stored grant %d has an invalid scope: %w", g.ID, err)
		}
		if !set.Covers(s) {
			continue
		}
		if !expires.After(g.ExpiresAt) {
			return nil
		}
		if shortest == nil || g.ExpiresAt.After(shortest.ExpiresAt) {
			shortest = &grants[i]
		}
	}
	if shortest != nil {
		return refuse(ReasonPastGrant, "token would expire at %s, after grant %d (covering scope %q) ends at %s",
			expires.Format(time.RFC3339), shortest.ID, s, shortest.ExpiresAt.Format(time.RFC3339))
	}
	return &Error{Reason: ReasonScopeNotCovered, Err: scope.ErrNotCovered,
		Msg: fmt.Sprintf("scope %q is not covered by a live grant of contractor %q", s, contractor)}
}

// Token returns one token record (never its secret).
func (a *Authority) Token(ctx context.Context, id string) (store.Token, error) {
	if !token.ValidID(id) {
		return store.Token{}, refuse(ReasonInvalid, "invalid token id %q", id)
	}
	t, err := a.cfg.Store.Token(ctx, id)
	return t, storeErr(err, fmt.Sprintf("token %s", id))
}

// Tokens lists token records.
func (a *Authority) Tokens(ctx context.Context, contractor string, active bool) ([]store.Token, error) {
	if contractor != "" {
		if _, err := a.Contractor(ctx, contractor); err != nil {
			return nil, err
		}
	}
	f := store.TokenFilter{Contractor: contractor}
	if active {
		f.ActiveAt = a.now()
	}
	return a.cfg.Store.Tokens(ctx, f)
}

// Revoke revokes one token (reason store.RevokeManual). Revocation is final.
func (a *Authority) Revoke(ctx context.Context, by Actor, id string) error {
	return a.RevokeFor(ctx, by, id, store.RevokeManual)
}

// RevokeFor revokes one token for reason, a store.Revoke* word, which the
// audit record and the token.revoked event carry. Of two concurrent
// revocations (two replicas' sweepers, say) exactly one succeeds and
// emits; the other is refused with token_revoked. Every token derived from
// it (see Derive) is revoked in the same transaction, reason
// parent_revoked, each audited and announced.
func (a *Authority) RevokeFor(ctx context.Context, by Actor, id, reason string) error {
	rec := a.event(by, "token.revoke")
	rec.TokenID = id
	var t store.Token
	var kids []store.Token // revoked with it: derived from it
	err := a.act(ctx, rec, func(r *audit.Record) error {
		if !token.ValidID(id) {
			r.TokenID = ""
			return refuse(ReasonInvalid, "invalid token id %q", id)
		}
		var err error
		if t, err = a.Token(ctx, id); err != nil {
			return err
		}
		r.Contractor, r.Reason = t.Contractor, reason
		if !t.RevokedAt.IsZero() {
			return &Error{Reason: ReasonRevoked, Msg: fmt.Sprintf("token %s is already revoked", id), Err: store.ErrRevoked}
		}
		if t.Admin {
			return covers(by, t.Scopes)
		}
		return nil
	}, func() (err error) {
		kids, err = a.revokeTree(ctx, by, t, reason)
		return err
	})
	if err == nil {
		a.revoked(ctx, by, t, reason, kids)
	}
	return err
}

// revokedEvent is the event type of a revocation for reason: an idle
// token's is token.idle_reaped, every other token.revoked.
func revokedEvent(reason string) string {
	if reason == store.RevokeIdle {
		return EventTokenIdleReaped
	}
	return EventTokenRevoked
}

// covers refuses an actor that does not hold every one of scopes: an
// admin may revoke or rotate only admin tokens no more powerful than its own.
func covers(by Actor, scopes []string) error {
	for _, raw := range scopes {
		sc, err := scope.Parse(raw)
		if err != nil {
			return fmt.Errorf("stored scope %q: %w", raw, err)
		}
		if !by.Scopes.Covers(sc) {
			return &Error{Reason: ReasonScopeNotCovered, Err: scope.ErrNotCovered,
				Msg: fmt.Sprintf("that admin token holds scope %q, which your own token does not cover", sc)}
		}
	}
	return nil
}

// Rotate issues a successor of token id with the same scopes, sources, use
// limit and lifetime, re-checked against today's grants and engagement,
// and ends the old token after grace (at once if grace is zero). The
// successor of a derived token with a use limit gets only the uses left
// (none left: refused, token_expired).
func (a *Authority) Rotate(ctx context.Context, by Actor, id string, grace time.Duration) (iss Issued, err error) {
	rec := a.event(by, "token.rotate")
	rec.TokenID = id
	var old store.Token
	err = a.act(ctx, rec, func(r *audit.Record) error {
		if old, err = a.Token(ctx, id); err != nil {
			if !token.ValidID(id) {
				r.TokenID = "" // attacker-chosen text stays out of the log
			}
			return err
		}
		r.Contractor = old.Contractor
		next, err := a.successor(ctx, by, old, grace)
		if err != nil {
			return err
		}
		iss, err = a.generate(next)
		r.Reason = fmt.Sprintf("successor %s, old token ends %s; %s", iss.Token.ID,
			a.now().Add(grace).Format(time.RFC3339), describe(iss.Token))
		return err
	}, func() error {
		end := a.now().Add(grace)
		// Its derived tokens end with it (first: if the rotation then
		// fails, they merely end early).
		if err := a.endDerived(ctx, by, old, end); err != nil {
			return err
		}
		err := a.cfg.Store.RotateToken(ctx, old.ID, end, iss.Token)
		return storeErr(err, fmt.Sprintf("token %s", id))
	})
	if err != nil {
		return Issued{}, err
	}
	a.invalidate(old.ID)
	return iss, nil
}

// successor checks a rotation and returns the new token's record.
func (a *Authority) successor(ctx context.Context, by Actor, old store.Token, grace time.Duration) (store.Token, error) {
	now := a.now()
	switch {
	case !old.RevokedAt.IsZero():
		return store.Token{}, &Error{Reason: ReasonRevoked, Msg: fmt.Sprintf("token %s is revoked and cannot be rotated", old.ID), Err: store.ErrRevoked}
	case !now.Before(old.ExpiresAt):
		return store.Token{}, refuse(ReasonExpired, "token %s has expired and cannot be rotated", old.ID)
	case grace < 0:
		return store.Token{}, refuse(ReasonInvalid, "grace %v is negative", grace)
	case grace > a.cfg.MaxTTL:
		return store.Token{}, refuse(ReasonTTLTooLong, "grace %s exceeds the server's maximum token lifetime %s",
			timespec.Format(grace), timespec.Format(a.cfg.MaxTTL))
	}
	ttl := min(old.ExpiresAt.Sub(old.CreatedAt), a.cfg.MaxTTL)
	if !old.Admin {
		// Rotation keeps within today's policy: a successor never
		// outlives the effective max TTL.
		eff, err := a.policyFor(ctx, old.Contractor, old.Scopes)
		if err != nil {
			return store.Token{}, err
		}
		ttl = min(ttl, eff.MaxTTL.Value)
	}
	next := old
	next.ExpiresAt, next.CreatedAt, next.CreatedBy = now.Add(ttl), now, by.TokenID
	next.LastUsedAt, next.Uses, next.Parent = time.Time{}, 0, old.ID
	if old.DerivedFrom != "" && old.MaxUses > 0 {
		// A derived token's uses were carved out of its parent's: its
		// successor gets only those left, so rotating never adds uses.
		if next.MaxUses = old.MaxUses - old.Uses; next.MaxUses <= 0 {
			return store.Token{}, refuse(ReasonExpired, "token %s has used all %d of its uses and cannot be rotated", old.ID, old.MaxUses)
		}
	}
	if err := a.withinParent(ctx, &next); err != nil {
		return store.Token{}, err
	}
	var err error
	if next.Admin {
		err = a.checkAdmin(by, &next)
	} else {
		err = a.checkContractor(ctx, &next, now)
	}
	return next, err
}

// Authenticate checks a token text (admin or contractor) and returns its
// record and scopes. The record comes from an in-memory cache that every
// revocation, rotation and offboarding through this Authority invalidates
// at once. Every failure is an *Error whose reason is one of the gateway's
// contract words; the message never contains the token text.
//
// The cache keeps only what authentication and its callers use, so the
// record holds only ID, Admin, Contractor, Scopes, Hash, ExpiresAt, CIDRs,
// MaxUses and, for an admin token, Note; its other fields (a contractor
// token's Note, Uses, CreatedAt, CreatedBy, LastUsedAt, RevokedAt,
// RevokedBy, Parent) are zero: read those with Token. The Scopes and
// CIDRs slices and the Set are shared with the cache and with other
// tokens: the caller must not modify them.
//
// src is the request's source address: a token with CIDRs is refused
// (source_denied) from anywhere else, including an unknown (zero) source.
func (a *Authority) Authenticate(ctx context.Context, text string, src netip.Addr) (store.Token, scope.Set, error) {
	p, err := token.Parse(text)
	if err != nil {
		return store.Token{}, nil, &Error{Reason: ReasonMalformed, Msg: "malformed token", Err: err}
	}
	now := a.cfg.Now()
	e := a.cache.get(p.ID, now)
	if e == nil {
		if e, err = a.cache.load(ctx, a.cfg.Store, p.ID, now); errors.Is(err, store.ErrNotFound) {
			return store.Token{}, nil, refuse(ReasonUnknown, "unknown token")
		} else if err != nil {
			return store.Token{}, nil, err
		}
	}
	// The prefix is covered by the checksum, not the hash: a token
	// re-prefixed as the other kind is not the token that was issued.
	if !token.Verify(p, e.hash) || (p.Kind == token.Admin) != e.admin {
		return store.Token{}, nil, refuse(ReasonUnknown, "unknown token")
	}
	switch {
	case e.revoked:
		return store.Token{}, nil, refuse(ReasonRevoked, "token %s is revoked", p.ID)
	case !now.Before(e.expires):
		return store.Token{}, nil, refuse(ReasonExpired, "token %s has expired", p.ID)
	case e.disabled:
		return store.Token{}, nil, refuse(ReasonContractorDisabled, "contractor %q is disabled", e.terms.contractor)
	case !e.admin && !now.Before(e.until):
		return store.Token{}, nil, refuse(ReasonContractorDisabled, "contractor %q's engagement has ended", e.terms.contractor)
	case len(e.terms.cidrs) > 0 && !slices.ContainsFunc(e.terms.cidrs, func(p netip.Prefix) bool { return p.Contains(src.Unmap()) }):
		return store.Token{}, nil, refuse(ReasonSourceDenied, "token %s is not allowed from this address", p.ID)
	}
	return e.token(), e.terms.scopes, nil
}
