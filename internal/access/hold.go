package access

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Causes with which a held context is cancelled; see Authority.Hold.
var (
	ErrTokenEnded = errors.New("access: the token expired or the contractor's engagement ended")
	ErrTokenCut   = errors.New("access: the token was revoked, rotated out or its contractor offboarded")
)

// held is one request serving under a token.
type held struct {
	cancel context.CancelCauseFunc
	timer  *time.Timer // fires at the token's end
}

// holds tracks the requests in flight under each token, so that a
// revocation can cut them. It is empty unless requests are in flight.
type holds struct {
	mu sync.Mutex
	m  map[string]map[*held]struct{}
}

// Hold returns a context for serving one request of token id, which must
// have just been authenticated. The context is cancelled, with cause
// ErrTokenEnded, when the token expires or its contractor's engagement
// ends; and with cause ErrTokenCut as soon as the token is revoked, its
// expiry is moved (a rotation's grace) past its end, or its contractor is
// offboarded through this Authority. A long-lived stream or WebSocket
// forwarded under the context is therefore cut when its token ends.
//
// The caller must call the returned release func when the request is done.
func (a *Authority) Hold(ctx context.Context, id string) (context.Context, func(), error) {
	now := a.cfg.Now()
	gen := a.cache.generation()
	e := a.cache.lookup(id, now) // not counted: Authenticate has counted this request
	if e == nil {
		var err error
		if e, err = a.cache.load(ctx, a.cfg.Store, id, now); err != nil {
			return nil, nil, err
		}
	}
	end, ok := e.end(now)
	if !ok {
		return nil, nil, refuse(ReasonExpired, "token %s has ended", id)
	}
	held, release := a.holds.add(ctx, id, end.Sub(now))
	// A change that landed between the read above and the add was
	// rechecked without this request: read the token again.
	if a.cache.generation() != gen {
		e, err := a.cache.load(ctx, a.cfg.Store, id, now)
		if err == nil {
			end, ok = e.end(now)
		}
		if err != nil || !ok {
			release()
			if err == nil {
				err = refuse(ReasonExpired, "token %s has ended", id)
			}
			return nil, nil, err
		}
		a.holds.retime(id, end.Sub(now))
	}
	return held, release, nil
}

// retime sets when the requests held under id end.
func (hs *holds) retime(id string, left time.Duration) {
	for _, h := range hs.of(id) {
		h.timer.Reset(left)
	}
}

// end returns when the cached token stops being usable, and whether it is
// usable at now.
func (e *cached) end(now time.Time) (time.Time, bool) {
	end := e.expires
	if !e.admin && e.until.Before(end) {
		end = e.until
	}
	ok := !e.revoked && !e.disabled && now.Before(end)
	return end, ok
}

func (hs *holds) add(ctx context.Context, id string, left time.Duration) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	h := &held{cancel: cancel}
	h.timer = time.AfterFunc(left, func() { cancel(ErrTokenEnded) })
	hs.mu.Lock()
	if hs.m == nil {
		hs.m = make(map[string]map[*held]struct{})
	}
	set := hs.m[id]
	if set == nil {
		set = make(map[*held]struct{}, 1)
		hs.m[id] = set
	}
	set[h] = struct{}{}
	hs.mu.Unlock()
	release := func() {
		h.timer.Stop()
		cancel(nil)
		hs.mu.Lock()
		if set := hs.m[id]; set != nil {
			delete(set, h)
			if len(set) == 0 {
				delete(hs.m, id)
			}
		}
		hs.mu.Unlock()
	}
	return ctx, release
}

// of returns the requests held under id.
func (hs *holds) of(id string) []*held {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	set := hs.m[id]
	out := make([]*held, 0, len(set))
	for h := range set {
		out = append(out, h)
	}
	return out
}

// ids returns the ids of the tokens with requests held.
func (hs *holds) ids() []string {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	ids := make([]string, 0, len(hs.m))
	for id := range hs.m {
		ids = append(ids, id)
	}
	return ids
}

// recheck re-reads token id after a change and cuts or re-times the
// requests held under it. A token that can no longer be read is cut: fail
// closed.
func (a *Authority) recheck(id string) {
	hs := a.holds.of(id)
	if len(hs) == 0 {
		return
	}
	now := a.cfg.Now()
	e, err := a.cache.load(context.Background(), a.cfg.Store, id, now)
	if err != nil {
		a.cfg.Log.Error("access: cannot re-read a token after a change: cutting its requests", "token", id, "err", err)
	}
	if err == nil {
		if end, ok := e.end(now); ok {
			a.holds.retime(id, end.Sub(now))
			return
		}
	}
	for _, h := range hs {
		h.timer.Stop()
		h.cancel(ErrTokenCut)
	}
	a.cfg.Log.Info("access: cut requests in flight", "token", id, "requests", len(hs))
}
