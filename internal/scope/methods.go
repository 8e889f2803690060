package scope

import (
	"errors"
	"fmt"
	"math/bits"
	"strings"
)

// Methods is a set of HTTP request methods, one bit per registered method.
// The zero value is the empty set.
type Methods uint8

const (
	methodGET Methods = 1 << iota
	methodHEAD
	methodOPTIONS
	methodPOST
	methodPUT
	methodPATCH
	methodDELETE

	readMethods  = methodGET | methodHEAD | methodOPTIONS
	writeMethods = methodPOST | methodPUT | methodPATCH | methodDELETE
	allMethods   = readMethods | writeMethods
)

// methodNames lists the registered methods in canonical order; the name of
// bit 1<<i is methodNames[i].
var methodNames = [...]string{"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"}

// Item ids for duplicate detection in parseMethods: 0-6 are the methods'
// bit positions, then the two aliases.
const (
	itemRead  = 7
	itemWrite = 8
)

// MethodBit returns the bit of a registered request method. It reports false
// for anything else, including unregistered methods such as TRACE and
// CONNECT and other spellings such as "get": methods are case-sensitive.
func MethodBit(m string) (Methods, bool) {
	switch m {
	case "GET":
		return methodGET, true
	case "HEAD":
		return methodHEAD, true
	case "OPTIONS":
		return methodOPTIONS, true
	case "POST":
		return methodPOST, true
	case "PUT":
		return methodPUT, true
	case "PATCH":
		return methodPATCH, true
	case "DELETE":
		return methodDELETE, true
	}
	return 0, false
}

// Has reports whether method is a registered method in m.
func (m Methods) Has(method string) bool {
	b, ok := MethodBit(method)
	return ok && m&b != 0
}

// String returns the canonical METHODS text of m: "*" for all seven methods,
// "read" or "write" for exactly those sets, and otherwise the methods in the
// order GET, HEAD, OPTIONS, POST, PUT, PATCH, DELETE joined by commas. It
// returns "" for the empty set, ignores bits that name no method, and does
// not allocate.
func (m Methods) String() string {
	return methodStrings[m&allMethods]
}

// methodStrings holds the canonical text of every set of methods.
var methodStrings = func() (t [allMethods + 1]string) {
	for m := range t {
		t[m] = methodsText(Methods(m))
	}
	return t
}()

// methodsText computes the canonical text of m, which has only method bits.
func methodsText(m Methods) string {
	switch m {
	case allMethods:
		return "*"
	case readMethods:
		return "read"
	case writeMethods:
		return "write"
	}
	var names []string
	for i, name := range methodNames {
		if m&(1<<i) != 0 {
			names = append(names, name)
		}
	}
	return strings.Join(names, ",")
}

// parseMethods parses the METHODS part of a resource scope.
func parseMethods(f string) (Methods, error) {
	switch f {
	case "":
		return 0, errors.New("missing methods")
	case "*":
		return allMethods, nil
	}
	var m Methods
	var seen uint16
	for rest, more := f, true; more; {
		var item string
		item, rest, more = strings.Cut(rest, ",")
		id, b, err := methodItem(item)
		if err != nil {
			return 0, err
		}
		if seen&(1<<id) != 0 {
			return 0, fmt.Errorf("duplicate method %q", item)
		}
		seen |= 1 << id
		m |= b
	}
	return m, nil
}

// methodItem returns the duplicate-detection id and the bits of one item of
// a METHODS list.
func methodItem(item string) (id int, m Methods, err error) {
	switch item {
	case "":
		return 0, 0, errors.New("empty method item")
	case "*":
		return 0, 0, errors.New(`"*" must be the only method`)
	case "read":
		return itemRead, readMethods, nil
	case "write":
		return itemWrite, writeMethods, nil
	}
	if b, ok := MethodBit(item); ok {
		return bits.TrailingZeros8(uint8(b)), b, nil
	}
	if _, ok := MethodBit(strings.ToUpper(item)); ok {
		return 0, 0, fmt.Errorf("unknown method %q (methods are case-sensitive: use %q)",
			item, strings.ToUpper(item))
	}
	return 0, 0, fmt.Errorf("unknown method %q", item)
}
