package adminapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"

	"latchkey/internal/access"
	"latchkey/internal/leak"
)

// Headers of a signed leak report (GitHub secret scanning).
const (
	headerKeyID     = "Github-Public-Key-Identifier"
	headerSignature = "Github-Public-Key-Signature"
)

// Reason words of refused leak reports.
const (
	reasonSignature  = "signature_invalid" // missing, malformed or wrong signature
	reasonKeyUnknown = "key_unknown"       // the report names no configured key
	reasonNoLeakKeys = "leak_keys_missing" // serve runs without --leak-keys
)

// LeakReceipt is the reply to an accepted POST /v1/leaks: the same for
// every report of the same size, whatever its tokens were.
type LeakReceipt struct {
	Status  string `json:"status"` // "received"
	Entries int    `json:"entries"`
}

// LeakedToken is the body of POST /v1/tokens/leaked: the text of a token
// found in the wild.
type LeakedToken struct {
	Token string `json:"token"`
}

// LeakOutcome is the reply to POST /v1/tokens/leaked. The caller is an
// admin, so it says which token the text was and what was done.
type LeakOutcome struct {
	ID         string `json:"id"`
	Kind       string `json:"kind"`
	Contractor string `json:"contractor,omitempty"`
	// Revoked is true if this report revoked the token, false if it was
	// already revoked (RevokedReason says why).
	Revoked       bool     `json:"revoked"`
	RevokedReason string   `json:"revoked_reason,omitempty"`
	Derived       []string `json:"derived_revoked"` // tokens derived from it, revoked with it
}

// NewDerived is the body of POST /v1/self/tokens. TTL is mandatory.
type NewDerived struct {
	Scopes []string `json:"scopes"`
	TTL    string   `json:"ttl"`
	CIDRs  []string `json:"cidrs,omitempty"`
	Uses   int64    `json:"uses,omitempty"`
	Note   string   `json:"note,omitempty"`
}

// leaks serves POST /v1/leaks. It is authenticated by the report's
// signature, not by a token: nothing is parsed before the signature over
// the raw body verifies, and a refused report changes nothing. Every
// refusal and every accepted report is audited. An accepted report gets
// 200 and the same body whether its tokens were ours, unknown, malformed
// or already revoked; only the signer (GitHub) can get that answer at all.
func (s *Server) leaks(w http.ResponseWriter, r *http.Request) {
	src, _ := netip.ParseAddrPort(r.RemoteAddr)
	by := access.Actor{Name: "leak report", Source: src.Addr().String()}
	if s.cfg.LeakKeys == nil {
		s.refuse(w, r, by, http.StatusServiceUnavailable, reasonNoLeakKeys, "this server takes no leak reports: no keys are configured (serve --leak-keys)")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, leak.MaxReport))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.refuse(w, r, by, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("a leak report is at most %d bytes", leak.MaxReport))
			return
		}
		s.refuse(w, r, by, http.StatusBadRequest, access.ReasonInvalid, "cannot read the request body")
		return
	}
	keyID := r.Header.Get(headerKeyID)
	switch err := s.cfg.LeakKeys.Verify(keyID, r.Header.Get(headerSignature), body); {
	case errors.Is(err, leak.ErrUnknownKey):
		s.refuse(w, r, by, http.StatusUnauthorized, reasonKeyUnknown, "the report is not signed with a configured key ("+headerKeyID+")")
		return
	case err != nil:
		s.refuse(w, r, by, http.StatusUnauthorized, reasonSignature, "the report's signature does not verify ("+headerSignature+")")
		return
	}
	by.Name = "leak report, key " + keyID
	entries, err := leak.ParseReport(body)
	if errors.Is(err, leak.ErrTooLarge) {
		s.refuse(w, r, by, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("a leak report has at most %d entries", leak.MaxEntries))
		return
	}
	if err != nil {
		s.refuse(w, r, by, http.StatusBadRequest, access.ReasonInvalid, err.Error())
		return
	}
	if err := s.cfg.Authority.RecordLeakReport(r.Context(), by, keyID, len(entries)); err != nil {
		s.fail(w, r, err)
		return
	}
	for _, e := range entries {
		_, err := s.cfg.Authority.ReportLeak(r.Context(), by, e.Token)
		if err != nil && access.ReasonOf(err) != access.ReasonMalformed && access.ReasonOf(err) != access.ReasonUnknown {
			// The audit log or the store failed: the reporter retries.
			s.fail(w, r, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, LeakReceipt{Status: "received", Entries: len(entries)})
}

// reportLeak serves POST /v1/tokens/leaked for an admin who found a token.
func (s *Server) reportLeak(ctx context.Context, c caller, r *http.Request) (int, any, error) {
	var in LeakedToken
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	l, err := s.cfg.Authority.ReportLeak(ctx, c.actor(), in.Token)
	switch access.ReasonOf(err) {
	case access.ReasonMalformed:
		return 0, nil, invalid("that is not a latchkey token")
	case access.ReasonUnknown:
		return 0, nil, &access.Error{Reason: access.ReasonNotFound, Msg: "no token of this server matches that text"}
	}
	if err != nil {
		return 0, nil, err
	}
	t := l.Token
	out := LeakOutcome{ID: t.ID, Kind: kind(t.Admin), Contractor: t.Contractor, Revoked: l.Revoked, Derived: nonNil(l.Derived)}
	if !l.Revoked {
		out.RevokedReason = t.RevokedReason
	}
	return 200, out, nil
}

// derive serves POST /v1/self/tokens: the calling contractor token
// derives a narrower child.
func (s *Server) derive(ctx context.Context, c caller, r *http.Request) (int, any, error) {
	var in NewDerived
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	ttl, err := optionalTTL(in.TTL)
	if err != nil {
		return 0, nil, err
	}
	iss, err := s.cfg.Authority.Derive(ctx, c.actor(), access.DeriveRequest{
		Scopes: in.Scopes, TTL: ttl, CIDRs: in.CIDRs, MaxUses: in.Uses, Note: in.Note,
	})
	return 201, toIssued(iss), err
}
