// Package scope implements latchkey's scope grammar: parsing scopes into a
// canonical form, matching gateway requests and admin operations against
// them, and deciding whether one scope covers (is a superset of) another.
//
// # Grammar
//
// In ABNF (RFC 5234). Every quoted string is case-sensitive, as if written
// with RFC 7405's %s prefix: "GET" is a method, "get" is not.
//
//	scope          = resource-scope / admin-scope / request-scope
//	resource-scope = service ":" methods ":" path
//	service        = "*" / name              ; name is never "admin" nor "latchkey"
//	name           = %x61-7A 0*62( %x61-7A / DIGIT / "-" )
//	methods        = "*" / method-item *( "," method-item )
//	                                         ; no item twice
//	method-item    = "GET" / "HEAD" / "OPTIONS"
//	               / "POST" / "PUT" / "PATCH" / "DELETE"
//	               / "read"                  ; GET, HEAD, OPTIONS
//	               / "write"                 ; POST, PUT, PATCH, DELETE
//	path           = "/" / 1*( "/" segment ) ; at most 32 segments
//	segment        = "*"                     ; exactly one segment
//	               / "**"                    ; last only: zero or more segments
//	               / literal                 ; not "." or ".."
//	literal        = 1*( lchar / pct-encoded )
//	lchar          = ALPHA / DIGIT / "-" / "." / "_" / "~"
//	               / "!" / "$" / "&" / "'" / "(" / ")"
//	               / "+" / "," / ";" / "=" / ":" / "@"
//	pct-encoded    = "%" HEXUP HEXUP         ; not %00 %25 %2E %2F %5C
//	HEXUP          = DIGIT / "A" / "B" / "C" / "D" / "E" / "F"
//	admin-scope    = "admin:*" / "admin:" resource ":" action
//	resource       = "contractors" / "services" / "grants" / "tokens"
//	               / "reports" / "audit" / "policy" / "requests"
//	               / "approvers" / "*"
//	action         = "read" / "write" / "*"
//	request-scope  = "latchkey:request"      ; may ask for access, nothing else
//
// A scope is at most 512 bytes, and so is its canonical form, which can be
// longer when METHODS is rewritten ("write,GET" lists five methods). The
// escapes %00, %25, %2E, %2F and %5C (NUL, "%", ".", "/" and "\") are refused
// because they let one path be read two ways; lowercase hex escapes are
// refused because they are not canonical. A literal may contain ":" because
// the path is everything after the second colon.
//
// # Canonical form
//
// Parse accepts only the grammar above and String prints the canonical form,
// which Parse maps back to an equal Scope. Only two things are rewritten:
// METHODS becomes "*" when it names all seven methods, "read" or "write" when
// it names exactly that set, and otherwise lists the methods in the order
// GET, HEAD, OPTIONS, POST, PUT, PATCH, DELETE; and "admin:*:*" becomes
// "admin:*". Paths are never rewritten.
//
// # Meaning
//
// A resource scope allows a gateway request when the service and method
// match and the path pattern matches the request path segment by segment.
// The pattern "/" matches only the request path "/"; "*" matches one
// non-empty segment; a literal matches the identical (still escaped)
// segment; "**" matches whatever remains, including nothing and empty
// segments, so "/a/**" matches "/a", "/a/" and "/a/b/c", and "/**" matches
// every path.
//
// An admin scope allows an admin operation (resource, action) when each of
// its two parts is "*" or equal. "write" does not imply "read". Admin scopes
// never allow gateway requests, and resource scopes, even with service "*",
// never allow admin operations.
//
// The request scope latchkey:request lets a contractor token ask for access
// and fetch what was approved. It allows no gateway request and no admin
// operation, and covers, and is covered by, only itself.
//
// Scope A covers scope B when everything B allows, A allows too; callers use
// it to keep a token inside its contractor's grants and report ErrNotCovered
// otherwise.
package scope
