package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"latchkey/internal/access"
	"latchkey/internal/dpop"
	"latchkey/internal/store"
)

// Authorization schemes, as credentials returns them.
const (
	schemeBearer = "Bearer"
	schemeDPoP   = "DPoP"
)

// proven checks a token's proof of possession of its DPoP key (RFC 9449),
// after Authenticate and before the scope check. An unbound token sent as
// Bearer needs none (the zero Proof). Otherwise the token must be
// DPoP-bound, sent with the DPoP scheme (section 7.1), and carry exactly
// one DPoP header whose proof dpop.Verifier.Check accepts for this
// request: method, the URI PublicURL + path, the token's text (ath) and
// its cnf jkt. Its jti is recorded later, by fresh, once the request has
// passed the scope and rate checks, so that refused requests do not fill
// the replay cache (a proof refused 429 may be sent again). When it
// reports false the request has been denied 401 proof_invalid (counted
// against the source's failure budget) with a WWW-Authenticate DPoP
// challenge whose error is invalid_dpop_proof, or use_dpop_nonce with a
// fresh DPoP-Nonce header.
func (h *Handler) proven(w *recorder, r *http.Request, src netip.Addr, rec *access.GatewayRequest, tok store.Token, scheme, text string) (dpop.Proof, bool) {
	now := h.cfg.Now()
	var p dpop.Proof
	var err error
	switch {
	case tok.CnfJKT == "" && scheme == schemeBearer:
		return p, true
	case tok.CnfJKT == "":
		err = errors.New("token " + tok.ID + " is not bound to a key: the DPoP scheme is only for DPoP-bound tokens")
	case scheme != schemeDPoP:
		err = errors.New("token " + tok.ID + " is bound to a DPoP key: send it as Authorization: DPoP with a DPoP proof header, never as a bearer token")
	default:
		p, err = h.dpop.Check(dpop.Request{
			Proofs: r.Header.Values("DPoP"), Method: r.Method, URI: h.target(r),
			Token: text, JKT: tok.CnfJKT,
		})
	}
	// A fresh nonce goes only to clients that speak DPoP: nothing to
	// compute for the bearer requests, which are most.
	if n := h.dpop.Nonces(); n != nil && scheme == schemeDPoP {
		w.Header().Set("DPoP-Nonce", n.Issue(now))
	}
	if err == nil {
		return p, true
	}
	h.denyProof(w, r, src, rec, tok, err)
	return p, false
}

// fresh records the jti of a proof that proven accepted (none for the
// zero Proof), and denies the request as proven does if it is a replay or
// the replay cache is full.
func (h *Handler) fresh(w *recorder, r *http.Request, src netip.Addr, rec *access.GatewayRequest, tok store.Token, p dpop.Proof) bool {
	if p.JTI == "" {
		return true
	}
	if err := h.dpop.Record(p); err != nil {
		h.denyProof(w, r, src, rec, tok, err)
		return false
	}
	return true
}

// denyProof answers 401 proof_invalid for err, with the DPoP challenge.
func (h *Handler) denyProof(w *recorder, r *http.Request, src netip.Addr, rec *access.GatewayRequest, tok store.Token, err error) {
	// A full replay cache is the server's limit, not the client's fault:
	// it must not spend the source's failure budget into 429s.
	if !errors.Is(err, dpop.ErrReplayFull) {
		h.failures.allow(src, h.cfg.Now())
	}
	code := dpop.CodeInvalidProof
	if errors.Is(err, dpop.ErrNonce) {
		code = dpop.CodeUseNonce
	}
	if errors.Is(err, dpop.ErrReplayFull) {
		h.cfg.Log.Warn("gateway: DPoP replay cache full: proof refused (fail closed)", "token", tok.ID, "refused", h.dpop.ReplayRefusals())
	}
	w.Header().Set("WWW-Authenticate", `DPoP realm="latchkey", error="`+code+`", algs="`+dpop.AlgList+`"`)
	h.deny(w, r, rec, http.StatusUnauthorized, ReasonProofInvalid, "DPoP proof refused: "+err.Error())
}

// target is the URI a DPoP proof of r must name (htu): the public base URL
// and the path as the client sent it.
func (h *Handler) target(r *http.Request) string {
	base := h.public
	if base == "" {
		scheme := "http://"
		if r.TLS != nil {
			scheme = "https://"
		}
		base = scheme + r.Host
	}
	return base + requestPath(r)
}

// DPoPReplayRefusals is how many DPoP proofs were refused because the jti
// replay cache was full (see dpop.Config.MaxReplay).
func (h *Handler) DPoPReplayRefusals() uint64 { return h.dpop.ReplayRefusals() }

// DPoPReplayEntries is how many jti values the replay cache holds.
func (h *Handler) DPoPReplayEntries() int { return h.dpop.ReplayEntries() }

// publicURL validates Config.PublicURL and returns it without a trailing
// "/" ("" stays "").
func publicURL(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	if _, err := dpop.NormalizeURI(s); err != nil || strings.ContainsAny(s, "?#") {
		return "", fmt.Errorf("gateway: PublicURL %q: want an absolute http or https URL without query or fragment", s)
	}
	return strings.TrimSuffix(s, "/"), nil
}
