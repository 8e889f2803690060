package web

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"sync"
	"time"

	"latchkey/internal/scope"
)

// Session lifetimes: a session ends after IdleTimeout without a request,
// MaxAge after sign-in, or when its admin token expires, whichever is
// first.
const (
	IdleTimeout = 8 * time.Hour
	MaxAge      = 12 * time.Hour
)

// CookieName is the session cookie.
const CookieName = "latchkey_session"

// session is one signed-in admin. It keeps the token's id and what the
// actor needs, never the token's text.
type session struct {
	tokenID   string
	name      string // the admin token's note
	scopes    scope.Set
	cidrs     []string
	tokExpiry time.Time
	created   time.Time
	lastSeen  time.Time
}

// expiry is when the session ends if it sees no further request.
func (s *session) expiry() time.Time {
	end := s.lastSeen.Add(IdleTimeout)
	for _, t := range []time.Time{s.created.Add(MaxAge), s.tokExpiry} {
		if t.Before(end) {
			end = t
		}
	}
	return end
}

func (s *session) can(resource, action string) bool { return s.scopes.AllowsAdmin(resource, action) }

// sessions are held in memory, per process: a restart signs everyone out,
// and two replicas do not share sessions.
type sessions struct {
	mu sync.Mutex
	m  map[string]*session
}

// newID is 32 bytes from crypto/rand, hex-encoded.
func newID() string {
	var b [32]byte
	rand.Read(b[:]) // never fails (crypto/rand panics rather)
	return hex.EncodeToString(b[:])
}

func (ss *sessions) add(s *session) string {
	id := newID()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.m == nil {
		ss.m = make(map[string]*session)
	}
	ss.m[id] = s
	return id
}

// get returns the live session id names and marks it seen at now; an
// ended session is dropped.
func (ss *sessions) get(id string, now time.Time) *session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.m[id]
	if s == nil {
		return nil
	}
	if !now.Before(s.expiry()) {
		delete(ss.m, id)
		return nil
	}
	s.lastSeen = now
	cp := *s
	return &cp
}

func (ss *sessions) remove(id string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.m, id)
}

// removeToken ends every session signed in with token id.
func (ss *sessions) removeToken(id string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for k, s := range ss.m {
		if s.tokenID == id {
			delete(ss.m, k)
		}
	}
}

func sessionCookie(r *http.Request, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: CookieName, Value: value, Path: "/ui/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil}
}
