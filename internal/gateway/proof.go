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
// Bearer needs none. Otherwise the token must be DPoP-bound, sent with the
// DPoP scheme (section 7.1), and carry exactly one DPoP header whose proof
// dpop.Verifier accepts for this request: method, the URI PublicURL +
// path, the token's text (ath) and its cnf jkt. When it reports false the
// request has been denied 401 proof_invalid (counted against the source's
// failure budget) with a WWW-Authenticate DPoP challenge whose error is
// invalid_dpop_proof, or use_dpop_nonce with a fresh DPoP-Nonce header.
func (h *Handler) proven(w *recorder, r *http.Request, src netip.Addr, rec *access.GatewayRequest, tok store.Token, scheme, text string) bool {
	now := h.cfg.Now()
	var err error
	switch {
	case tok.CnfJKT == "" && scheme == schemeBearer:
		return true
	case tok.CnfJKT == "":
		err = errors.New("token " + tok.ID + " is not bound to a key: the DPoP scheme is only for DPoP-bound tokens")
	case scheme != schemeDPoP:
		err = errors.New("token " + tok.ID + " is bound to a DPoP key: send it as Authorization: DPoP with a DPoP proof header, never as a bearer token")
	default:
		_, err = h.dpop.Verify(dpop.Request{
			Proofs: r.Header.Values("DPoP"), Method: r.Method, URI: h.target(r),
			Token: text, JKT: tok.CnfJKT,
		})
	}
	if n := h.dpop.Nonces(); n != nil {
		w.Header().Set("DPoP-Nonce", n.Issue(now))
	}
	if err == nil {
		return true
	}
	h.failures.allow(src, now)
	code := dpop.CodeInvalidProof
	if errors.Is(err, dpop.ErrNonce) {
		code = dpop.CodeUseNonce
	}
	if errors.Is(err, dpop.ErrReplayFull) {
		h.cfg.Log.Warn("gateway: DPoP replay cache full: proof refused (fail closed)", "token", tok.ID, "refused", h.dpop.ReplayRefusals())
	}
	w.Header().Set("WWW-Authenticate", `DPoP realm="latchkey", error="`+code+`", algs="`+dpop.AlgList+`"`)
	h.deny(w, r, rec, http.StatusUnauthorized, ReasonProofInvalid, "DPoP proof refused: "+err.Error())
	return false
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
