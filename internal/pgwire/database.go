package pgwire

import (
	"errors"
	"strings"

	"latchkey/internal/scope"
)

// ErrBadDatabase: the startup message's database parameter is not
// SERVICE/DATABASE.
var ErrBadDatabase = errors.New("pgwire: database must be SERVICE/DATABASE")

// maxDatabase is PostgreSQL's longest identifier (NAMEDATALEN - 1).
const maxDatabase = 63

// Target is what a client asks to reach: a postgres service and one of its
// databases.
type Target struct {
	Service  string
	Database string
}

// String returns the canonical text "SERVICE/DATABASE", which
// ParseDatabase maps back to t.
func (t Target) String() string { return t.Service + "/" + t.Database }

// Path is the scope path of t's database: "/DATABASE".
func (t Target) Path() string { return "/" + t.Database }

// ParseDatabase parses the startup message's database parameter,
// "SERVICE/DATABASE": SERVICE is a service name (scope.ValidServiceName),
// DATABASE 1 to 63 bytes of ASCII letters, digits, '_', '-' and '$',
// starting with a letter or '_'. It is strict: no other form (no quoting,
// no case folding, no trailing slash) is accepted, so that the database
// the scope names is exactly the one PostgreSQL opens.
func ParseDatabase(s string) (Target, error) {
	svc, db, ok := strings.Cut(s, "/")
	if !ok || !scope.ValidServiceName(svc) || !validDatabase(db) {
		return Target{}, ErrBadDatabase
	}
	return Target{Service: svc, Database: db}, nil
}

func validDatabase(db string) bool {
	if db == "" || len(db) > maxDatabase {
		return false
	}
	for i := 0; i < len(db); i++ {
		c := db[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', c == '_':
		case i > 0 && ('0' <= c && c <= '9' || c == '-' || c == '$'):
		default:
			return false
		}
	}
	return true
}

// Modes of a session: which upstream login it uses.
const (
	ModeRead  = "read"
	ModeWrite = "write"
)

// Mode returns the mode a token with scopes set may open t in, and the
// scope that allows it: ModeWrite if a scope with all of the write methods
// (SERVICE:write:/DATABASE, or "*") matches the database's path, else
// ModeRead if one with all of the read methods (SERVICE:read:/DATABASE)
// does, else false. A scope naming only some methods (GET, POST) allows
// nothing here.
func Mode(set scope.Set, t Target) (string, scope.Scope, bool) {
	var read scope.Scope
	found := false
	for _, s := range set {
		if s.IsAdmin() || s.IsRequest() || !s.Match(t.Service, "GET", t.Path()) && !s.Match(t.Service, "POST", t.Path()) {
			continue
		}
		m := s.Methods()
		if m.Has("POST") && m.Has("PUT") && m.Has("PATCH") && m.Has("DELETE") {
			return ModeWrite, s, true
		}
		if !found && m.Has("GET") && m.Has("HEAD") && m.Has("OPTIONS") {
			read, found = s, true
		}
	}
	return ModeRead, read, found
}
