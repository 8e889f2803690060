package web

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"

	"latchkey/internal/access"
	"latchkey/internal/audit"
)

// verifyTimeout bounds one verification of the audit log.
const verifyTimeout = 60 * time.Second

// verifyWait is how long "Verify now" waits for the verification before
// showing the audit page, so that a small log's result shows at once.
const verifyWait = 5 * time.Second

// verifyResult is the outcome of one verification of the audit log.
type verifyResult struct {
	Started, Ended time.Time
	By             string // the admin token that asked
	Size           int64
	Root           string // base64, as in a checkpoint
	Err            string // what failed, "" if the log verified
}

// Took is how long the verification ran.
func (r verifyResult) Took() time.Duration { return r.Ended.Sub(r.Started).Round(time.Millisecond) }

// verifications holds the running verification of the audit log, if any,
// and the last result, per process: at most one runs at a time.
type verifications struct {
	mu      sync.Mutex
	running time.Time // when the running one started, zero if none
	last    *verifyResult
}

// claim marks a verification as running from now, unless one already
// is: then it returns false and when that one started.
func (v *verifications) claim(now time.Time) (bool, time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.running.IsZero() {
		return false, v.running
	}
	v.running = now
	return true, now
}

// finish records r as the last result and frees the slot (r nil: the
// claimed verification never ran).
func (v *verifications) finish(r *verifyResult) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.running = time.Time{}
	if r != nil {
		v.last = r
	}
}

// state returns when the running verification started (zero if none) and
// the last result (nil if none).
func (v *verifications) state() (time.Time, *verifyResult) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.running, v.last
}

// verify starts a verification of the audit log in the background (the
// admin listener's write timeout is no longer than a big log's
// verification), waits up to verifyWait for it, and sends the admin back
// to the audit page, which shows it running or its result. It is refused
// while one runs.
func (h *Handler) verify(ctx context.Context, w http.ResponseWriter, u user) error {
	if h.cfg.AuditLog == nil {
		return &access.Error{Reason: access.ReasonNotFound, Msg: "this server does not verify its audit log"}
	}
	ok, since := h.verifies.claim(h.cfg.Now())
	req := access.Request{Method: u.r.Method, Path: u.r.URL.Path, Status: http.StatusSeeOther}
	if !ok {
		req.Status, req.Reason = http.StatusConflict, access.ReasonConflict
	}
	if err := h.cfg.Authority.RecordRequest(ctx, u.actor(), req); err != nil {
		if ok {
			h.verifies.finish(nil)
		}
		return err
	}
	if !ok {
		return &access.Error{Reason: access.ReasonConflict,
			Msg: "A verification of the audit log is already running, since " + when(since) + "."}
	}
	done := make(chan struct{})
	h.bg.Add(1)
	go func() {
		defer h.bg.Done()
		defer close(done)
		h.verifies.finish(h.runVerify(since, u.s.tokenID))
	}()
	t := time.NewTimer(verifyWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	case <-ctx.Done():
	}
	http.Redirect(w, u.r, "/ui/audit#verification", http.StatusSeeOther)
	return nil
}

// runVerify verifies the audit log, within verifyTimeout or until Close.
func (h *Handler) runVerify(started time.Time, by string) *verifyResult {
	ctx, cancel := context.WithTimeout(h.base, verifyTimeout)
	defer cancel()
	size, root, err := h.cfg.AuditLog.Verify(ctx, nil)
	r := &verifyResult{Started: started, Ended: h.cfg.Now(), By: by, Size: size, Root: base64.StdEncoding.EncodeToString(root[:])}
	var ve *audit.VerifyError
	switch {
	case err == nil:
		h.cfg.Log.Info("web: audit log verified", "size", size, "by", by)
		return r
	case errors.As(err, &ve):
		r.Err = ve.Error()
	case errors.Is(err, context.DeadlineExceeded):
		r.Err = fmt.Sprintf("did not finish within %v", verifyTimeout)
	case errors.Is(err, context.Canceled):
		r.Err = "stopped: the server is shutting down"
	default:
		r.Err = "the log could not be read; see the server log"
	}
	r.Size, r.Root = 0, ""
	h.cfg.Log.Error("web: audit log verification failed", "by", by, "err", err)
	return r
}

// Close stops a running verification of the audit log and waits for it.
func (h *Handler) Close() {
	h.stop()
	h.bg.Wait()
}

// checkpointView is what the audit page shows of the latest signed
// checkpoint.
type checkpointView struct {
	Size   int64
	Root   string // base64
	Signed time.Time
	Keys   []string // key ids (name+hash) of its signatures
}

// latestCheckpoint returns the latest signed checkpoint, nil if there is
// none or this server does not sign them.
func (h *Handler) latestCheckpoint(ctx context.Context) (*checkpointView, error) {
	if h.cfg.LatestCheckpoint == nil {
		return nil, nil
	}
	b, at, err := h.cfg.LatestCheckpoint(ctx)
	if err != nil || b == nil {
		return nil, err
	}
	cp, err := audit.ParseSigned(b)
	if err != nil {
		return nil, err
	}
	return &checkpointView{Size: cp.Size, Root: base64.StdEncoding.EncodeToString(cp.Root[:]), Signed: at, Keys: keyIDs(b)}, nil
}

// keyIDs returns the key ids (name+hash, as in a verifier key) of a
// note's signatures, without verifying them: with no known key, note.Open
// reports every signature as unverified.
func keyIDs(b []byte) []string {
	var e *note.UnverifiedNoteError
	if _, err := note.Open(b, note.VerifierList()); !errors.As(err, &e) {
		return nil
	}
	var ids []string
	for _, s := range e.Note.UnverifiedSigs {
		ids = append(ids, fmt.Sprintf("%s+%08x", s.Name, s.Hash))
	}
	return ids
}
