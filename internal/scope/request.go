package scope

import "errors"

// Request is the request scope. A contractor token holding it may ask for
// access (latchkey request create) and fetch what was approved, and
// nothing else: it matches no gateway request, and it covers, and is
// covered by, only itself. The service name "latchkey" is reserved for it.
const Request = "latchkey:request"

// reservedService is the SERVICE part of the request scope; no service may
// take that name.
const reservedService = "latchkey"

// parseRequest parses what follows "latchkey:"; colon reports whether
// there was a colon after "latchkey".
func parseRequest(rest string, colon bool) (Scope, error) {
	if !colon || rest != "request" {
		return Scope{}, errors.New(`"latchkey" is reserved for the request scope "latchkey:request"`)
	}
	return Scope{service: reservedService, resource: "request", request: true}, nil
}

// IsRequest reports whether s is the request scope latchkey:request.
func (s Scope) IsRequest() bool { return s.request }
