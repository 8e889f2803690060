package access

import (
	"encoding/base64"

	"latchkey/internal/store"
)

// Proof-of-possession bindings (IssueRequest.Bind).
const (
	BindDPoP = "dpop" // RFC 9449: Authorization: DPoP with a proof signed by the key
	BindMTLS = "mtls" // RFC 8705: only over a TLS connection with that client certificate
)

// bind sets t's binding from an issue request's bind method and
// thumbprint: a SHA-256 thumbprint, base64url without padding (43
// characters), as RFC 7638 and RFC 8705 write them.
func bind(t *store.Token, method, thumbprint string) error {
	switch method {
	case "":
		if thumbprint != "" {
			return refuse(ReasonInvalid, "a thumbprint needs a binding: --bind dpop --jkt T or --bind mtls --x5t T")
		}
		return nil
	case BindDPoP, BindMTLS:
	default:
		return refuse(ReasonInvalid, "unknown binding %q: want dpop or mtls", method)
	}
	if thumbprint == "" {
		return refuse(ReasonInvalid, "binding %s needs the key's thumbprint (--jkt for dpop, --x5t for mtls)", method)
	}
	if !validThumbprint(thumbprint) {
		return refuse(ReasonInvalid, "invalid thumbprint %q: want the base64url (no padding) SHA-256 thumbprint, 43 characters", trunc(thumbprint))
	}
	if method == BindDPoP {
		t.CnfJKT = thumbprint
	} else {
		t.CnfX5T = thumbprint
	}
	return nil
}

// validThumbprint reports whether s is a SHA-256 digest in canonical
// base64url without padding.
func validThumbprint(s string) bool {
	if len(s) != 43 {
		return false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	return err == nil && len(b) == 32
}

// trunc shortens client text quoted in a message.
func trunc(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
