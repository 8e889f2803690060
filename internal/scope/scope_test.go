package scope

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// equal reports whether two scopes are identical, field by field.
func equal(a, b Scope) bool {
	return cmp.Equal(a, b, cmp.AllowUnexported(Scope{}))
}

// longPath returns a path pattern of n literal segments "s".
func longPath(n int) string {
	return strings.Repeat("/s", n)
}

func TestParseCanonical(t *testing.T) {
	maxService := "a" + strings.Repeat("-", 62)
	exact512 := "b:GET:/" + strings.Repeat("x", maxLen-len("b:GET:/"))
	tests := []struct {
		in, want string
	}{
		{"billing:GET,HEAD:/v1/x", "billing:GET,HEAD:/v1/x"},
		{"billing:HEAD,GET,OPTIONS:/x", "billing:read:/x"},
		{"b:POST,PUT,PATCH,DELETE:/", "b:write:/"},
		{"admin:*:*", "admin:*"},
		{"admin:*", "admin:*"},
		{"admin:tokens:read", "admin:tokens:read"},
		{"admin:*:write", "admin:*:write"},
		{"admin:audit:*", "admin:audit:*"},
		{"admin:policy:read", "admin:policy:read"},
		{"*:*:/**", "*:*:/**"},
		{"billing:read,write:/", "billing:*:/"},
		{"billing:GET,HEAD,OPTIONS,POST,PUT,PATCH,DELETE:/", "billing:*:/"},
		{"billing:GET,read:/", "billing:read:/"},
		{"billing:DELETE,GET:/a", "billing:GET,DELETE:/a"},
		{"billing:write,GET:/a", "billing:GET,POST,PUT,PATCH,DELETE:/a"},
		{"billing:read:/v1/invoices/**", "billing:read:/v1/invoices/**"},
		{"billing:POST:/v1/invoices/*/notes", "billing:POST:/v1/invoices/*/notes"},
		{"billing:GET:/*/**", "billing:GET:/*/**"},
		{"b:GET:/A-z0.9_~!$&'()+,;=:@", "b:GET:/A-z0.9_~!$&'()+,;=:@"},
		{"b:GET:/caf%C3%A9/%20", "b:GET:/caf%C3%A9/%20"},
		{"b:GET:/a.b/.../.a/a..", "b:GET:/a.b/.../.a/a.."},
		{"b:GET:/a:b", "b:GET:/a:b"},
		{"b:GET:" + longPath(maxSegments), "b:GET:" + longPath(maxSegments)},
		{maxService + ":GET:/", maxService + ":GET:/"},
		{"x1:GET:/", "x1:GET:/"},
		{"a-:GET:/", "a-:GET:/"},
		{"administrator:GET:/", "administrator:GET:/"},
		{exact512, exact512},
	}
	for _, tt := range tests {
		sc, err := Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if got := sc.String(); got != tt.want {
			t.Errorf("Parse(%q).String() = %q, want %q", tt.in, got, tt.want)
		}
		again, err := Parse(sc.String())
		if err != nil || !equal(again, sc) {
			t.Errorf("Parse(%q) = %v, %v; want a scope equal to Parse(%q)", sc.String(), again, err, tt.in)
		}
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "empty scope"},
		{"service only", "billing", "missing methods and path"},
		{"no path", "billing:GET", "missing path"},
		{"empty path", "billing:GET:", "missing path"},
		{"empty service", ":GET:/", "missing service"},
		{"empty methods", "billing::/", "missing methods"},
		{"too many parts", "billing:GET:x:/y", "too many parts"},
		{"too many admin parts", "admin:tokens:read:x", "too many parts"},
		{"uppercase service", "Billing:GET:/", `invalid service name "Billing"`},
		{"digit first", "1billing:GET:/", "invalid service name"},
		{"underscore", "bil_ling:GET:/", "invalid service name"},
		{"long service", "a" + strings.Repeat("b", 63) + ":GET:/", "invalid service name"},
		{"double star service", "**:GET:/", "invalid service name"},
		{"admin as service", "admin:GET:/v1", `unknown admin resource "GET"`},
		{"admin read all", "admin:read:/v1", `unknown admin resource "read"`},
		{"admin alone", "admin", "missing admin resource"},
		{"admin colon", "admin:", "missing admin resource"},
		{"admin no action", "admin:tokens", `missing admin action after "tokens"`},
		{"admin empty action", "admin:tokens:", "missing admin action"},
		{"admin star empty action", "admin:*:", "missing admin action"},
		{"admin unknown resource", "admin:users:read", `unknown admin resource "users"`},
		{"admin uppercase resource", "admin:Tokens:read", `unknown admin resource "Tokens"`},
		{"admin unknown action", "admin:tokens:delete", `unknown admin action "delete"`},
		{"admin uppercase action", "admin:*:READ", `unknown admin action "READ"`},
		{"lowercase method", "billing:get:/", `unknown method "get" (methods are case-sensitive: use "GET")`},
		{"TRACE", "billing:TRACE:/", `unknown method "TRACE"`},
		{"CONNECT", "billing:GET,CONNECT:/", `unknown method "CONNECT"`},
		{"uppercase alias", "billing:READ:/", `unknown method "READ"`},
		{"method with space", "billing:GET, HEAD:/", `unknown method " HEAD"`},
		{"empty item", "billing:GET,,HEAD:/", "empty method item"},
		{"trailing comma", "billing:GET,:/", "empty method item"},
		{"leading comma", "billing:,GET:/", "empty method item"},
		{"duplicate method", "billing:GET,HEAD,GET:/", `duplicate method "GET"`},
		{"duplicate alias", "billing:read,read:/", `duplicate method "read"`},
		{"star in list", "billing:GET,*:/", `"*" must be the only method`},
		{"relative path", "billing:GET:v1/x", `path "v1/x" must start with "/"`},
		{"double slash", "billing:GET:/a//b", "empty path segment"},
		{"root double slash", "billing:GET://", "empty path segment"},
		{"trailing slash", "billing:GET:/a/", `trailing "/" in path`},
		{"globstar not last", "billing:GET:/**/a", `"**" must be the last path segment`},
		{"triple star", "billing:GET:/***", `"*" inside path segment "***"`},
		{"star in literal", "billing:GET:/a*", `"*" inside path segment "a*"`},
		{"dot", "billing:GET:/.", `dot segment "."`},
		{"dot dot", "billing:GET:/a/../b", `dot segment ".."`},
		{"encoded slash", "billing:GET:/a%2Fb", `ambiguous percent-escape "%2F"`},
		{"encoded dot lower", "billing:GET:/%2e", `ambiguous percent-escape "%2e"`},
		{"encoded dot", "billing:GET:/%2E%2E", `ambiguous percent-escape "%2E"`},
		{"encoded percent", "billing:GET:/a%25", `ambiguous percent-escape "%25"`},
		{"encoded NUL", "billing:GET:/a%00", `ambiguous percent-escape "%00"`},
		{"encoded backslash", "billing:GET:/a%5C", `ambiguous percent-escape "%5C"`},
		{"encoded slash lower", "billing:GET:/a%2fb", `ambiguous percent-escape "%2f"`},
		{"lowercase hex", "billing:GET:/caf%c3%a9", `non-canonical percent-escape "%c3"`},
		{"bad escape", "billing:GET:/%G1", `invalid percent-escape "%G1"`},
		{"short escape", "billing:GET:/%4", `invalid percent-escape "%4"`},
		{"bare percent", "billing:GET:/a%", `invalid percent-escape "%"`},
		{"space", "billing:GET:/a b", `invalid character " "`},
		{"non-ASCII", "billing:GET:/café", `invalid character "\xc3"`},
		{"NUL", "billing:GET:/a\x00", `invalid character "\x00"`},
		{"backslash", `billing:GET:/a\b`, `invalid character "\\"`},
		{"query", "billing:GET:/a?b", `invalid character "?"`},
		{"fragment", "billing:GET:/a#b", `invalid character "#"`},
		{"too long", "b:GET:/" + strings.Repeat("x", 600), "(607 bytes): longer than 512 bytes"},
		{"one byte too long", "b:GET:/" + strings.Repeat("x", maxLen-6), "longer than 512 bytes"},
		{"canonical too long", "b:HEAD,OPTIONS,write:/" + strings.Repeat("x", maxLen-22), "canonical form"},
		{"40 segments", "b:GET:" + longPath(40), "too many path segments (40, at most 32)"},
		{"33 segments", "b:GET:" + longPath(33), "too many path segments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc, err := Parse(tt.in)
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("Parse(%q) = %v, %v; want an error wrapping ErrSyntax", tt.in, sc, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse(%q) error %q does not contain %q", tt.in, err, tt.want)
			}
			if len(tt.in) <= maxLen && !strings.Contains(err.Error(), strconv.Quote(tt.in)) {
				t.Errorf("Parse(%q) error %q does not name the scope", tt.in, err)
			}
			if !equal(sc, Scope{}) {
				t.Errorf("Parse(%q) returned non-zero scope %v with error", tt.in, sc)
			}
		})
	}
}

func TestErrorMessage(t *testing.T) {
	_, err := Parse("billing:GET:/a//b")
	want := `invalid scope "billing:GET:/a//b": empty path segment`
	if err == nil || err.Error() != want {
		t.Errorf("Parse error = %v, want %s", err, want)
	}
}

func TestMustParse(t *testing.T) {
	if got := MustParse("b:read:/x").String(); got != "b:read:/x" {
		t.Errorf("MustParse = %q", got)
	}
	defer func() {
		if err, _ := recover().(error); !errors.Is(err, ErrSyntax) {
			t.Errorf("MustParse panicked with %v, want an ErrSyntax error", err)
		}
	}()
	MustParse("b:get:/")
	t.Error("MustParse did not panic")
}

func TestAccessors(t *testing.T) {
	tests := []struct {
		in, service, path, methods string
		admin                      bool
	}{
		{"billing:GET,HEAD:/v1/*/x", "billing", "/v1/*/x", "GET,HEAD", false},
		{"*:write:/", "*", "/", "write", false},
		{"admin:tokens:read", "admin", "", "", true},
		{"admin:*", "admin", "", "", true},
	}
	for _, tt := range tests {
		sc := MustParse(tt.in)
		got := []any{sc.Service(), sc.Path(), sc.Methods().String(), sc.IsAdmin()}
		want := []any{tt.service, tt.path, tt.methods, tt.admin}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%q accessors (-want +got):\n%s", tt.in, diff)
		}
	}
	var zero Scope
	if zero.String() != "" || zero.Path() != "" || zero.Service() != "" {
		t.Errorf("zero Scope prints %q, path %q", zero.String(), zero.Path())
	}
}

func TestValidServiceName(t *testing.T) {
	tests := map[string]bool{
		"billing": true, "a": true, "x1": true, "a-b-": true,
		"a" + strings.Repeat("0", 62): true,
		"a" + strings.Repeat("0", 63): false,
		"":                            false, "*": false, "admin": false, "Admin": false,
		"1a": false, "-a": false, "a_b": false, "a.b": false, "a b": false, "é": false,
	}
	for s, want := range tests {
		if got := ValidServiceName(s); got != want {
			t.Errorf("ValidServiceName(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestMethods(t *testing.T) {
	for i, name := range methodNames {
		b, ok := MethodBit(name)
		if !ok || b != 1<<i {
			t.Errorf("MethodBit(%q) = %v, %v; want %v, true", name, b, ok, Methods(1<<i))
		}
	}
	for _, name := range []string{"", "get", "Get", "TRACE", "CONNECT", "read", "*", "GET "} {
		if b, ok := MethodBit(name); ok || b != 0 {
			t.Errorf("MethodBit(%q) = %v, %v; want 0, false", name, b, ok)
		}
	}
	m := methodGET | methodPOST
	for method, want := range map[string]bool{"GET": true, "POST": true, "HEAD": false, "get": false, "TRACE": false} {
		if got := m.Has(method); got != want {
			t.Errorf("(%v).Has(%q) = %v, want %v", m, method, got, want)
		}
	}
	strs := map[Methods]string{
		0: "", allMethods: "*", readMethods: "read", writeMethods: "write",
		methodGET | methodDELETE: "GET,DELETE", 0x80 | methodHEAD: "HEAD", 0xFF: "*",
		readMethods | methodPOST: "GET,HEAD,OPTIONS,POST",
	}
	for m, want := range strs {
		if got := m.String(); got != want {
			t.Errorf("Methods(%#x).String() = %q, want %q", uint8(m), got, want)
		}
	}
}
