// Package sweeper implements the server's periodic sweep: each pass
// revokes tokens idle past their effective idle timeout, ends the
// engagements whose end has passed (revoking the contractor's tokens and
// grants and disabling it), finishes rotations whose grace has passed,
// and sends the expiring-soon notice of tokens that expire within the
// notice lead time, once each.
//
// Several replicas sharing one store may each run a Sweeper: a pass first
// takes the store lease "sweep" (so one replica sweeps at a time), and
// every action is also claimed in the store before it is audited and
// taken (package access), so that even two passes that overlap (a lease
// that expired mid-pass) never act twice nor write a second audit record.
// Progress goes to the application log; no secret is ever logged.
package sweeper

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"latchkey/internal/access"
	"latchkey/internal/store"
)

// Defaults of Config.
const (
	DefaultEvery        = 30 * time.Second
	DefaultExpiryNotice = 24 * time.Hour
	// LeaseName is the store lease a pass holds.
	LeaseName = "sweep"
)

// Config configures a Sweeper. The zero value of every field but
// Authority is a usable default.
type Config struct {
	// Authority takes every action (audited). Required.
	Authority *access.Authority
	// Holder names this instance in the lease and claims; it must differ
	// between replicas. Default: random.
	Holder string
	// Every is the time between passes of Run. Default DefaultEvery.
	Every time.Duration
	// Lease is how long a pass holds the sweep lease: another replica
	// takes over this long after the holder stops. Default 3 × Every,
	// at least one minute.
	Lease time.Duration
	// ExpiryNotice is the lead time of the expiring-soon notice.
	// Default DefaultExpiryNotice.
	ExpiryNotice time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Log is the application log. Default slog.Default().
	Log *slog.Logger
}

// Sweeper runs sweep passes.
type Sweeper struct {
	cfg Config
	st  store.Store
}

// Counts is what a pass did. Skipped is set when another instance held
// the lease (the pass did nothing).
type Counts struct {
	Idle            int // tokens revoked for idleness
	EngagementEnded int // contractors whose engagement was ended
	Rotated         int // old tokens revoked at the end of their rotation grace
	ExpiryNotices   int // expiring-soon notices sent
	Skipped         bool
}

// New validates cfg and returns a Sweeper.
func New(cfg Config) (*Sweeper, error) {
	if cfg.Authority == nil {
		return nil, errors.New("sweeper: Authority is required")
	}
	if cfg.Every < 0 || cfg.Lease < 0 || cfg.ExpiryNotice < 0 {
		return nil, errors.New("sweeper: negative duration")
	}
	if cfg.Every == 0 {
		cfg.Every = DefaultEvery
	}
	if cfg.Lease == 0 {
		cfg.Lease = max(3*cfg.Every, time.Minute)
	}
	if cfg.ExpiryNotice == 0 {
		cfg.ExpiryNotice = DefaultExpiryNotice
	}
	if cfg.Holder == "" {
		b := make([]byte, 8)
		rand.Read(b)
		cfg.Holder = "sweeper-" + hex.EncodeToString(b)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Sweeper{cfg: cfg, st: cfg.Authority.Store()}, nil
}

// Run sweeps every cfg.Every until ctx is done. Errors of a pass are
// logged; the next pass carries on.
func (s *Sweeper) Run(ctx context.Context) {
	t := time.NewTicker(s.cfg.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := s.Pass(ctx); err != nil && ctx.Err() == nil {
			s.cfg.Log.Error("sweep pass failed", "err", err)
		}
	}
}

// Pass runs one sweep at the clock's now and returns what it did. It
// carries on past the failure of one action and returns the errors joined.
func (s *Sweeper) Pass(ctx context.Context) (Counts, error) {
	now := s.cfg.Now().UTC().Truncate(time.Millisecond)
	ok, err := s.st.AcquireLease(ctx, LeaseName, s.cfg.Holder, now, now.Add(s.cfg.Lease))
	if err != nil {
		return Counts{}, fmt.Errorf("sweeper: %w", err)
	}
	if !ok {
		return Counts{Skipped: true}, nil
	}
	var c Counts
	errs := []error{
		s.engagements(ctx, now, &c),
		s.idle(ctx, now, &c),
		s.rotations(ctx, now, &c),
		s.expiring(ctx, now, &c),
	}
	if c != (Counts{}) {
		s.cfg.Log.Info("sweep pass", "holder", s.cfg.Holder, "idle_reaped", c.Idle,
			"engagements_ended", c.EngagementEnded, "rotations_finished", c.Rotated, "expiry_notices", c.ExpiryNotices)
	}
	return c, errors.Join(errs...)
}

// engagements ends the engagements that have ended.
func (s *Sweeper) engagements(ctx context.Context, now time.Time, c *Counts) error {
	cs, err := s.st.Contractors(ctx)
	if err != nil {
		return fmt.Errorf("sweeper: engagements: %w", err)
	}
	var errs []error
	for _, ct := range cs {
		if ct.Disabled || now.Before(ct.Until) {
			continue
		}
		res, done, err := s.cfg.Authority.EndEngagement(ctx, s.cfg.Holder, ct.Name, now)
		if err != nil {
			errs = append(errs, fmt.Errorf("sweeper: end engagement of %q: %w", ct.Name, err))
			continue
		}
		if done {
			c.EngagementEnded++
			s.cfg.Log.Info("engagement ended", "contractor", ct.Name, "tokens_revoked", res.TokensRevoked, "grants_revoked", res.GrantsRevoked)
		}
	}
	return errors.Join(errs...)
}

// idle reaps idle tokens.
func (s *Sweeper) idle(ctx context.Context, now time.Time, c *Counts) error {
	ts, err := s.cfg.Authority.IdleTokens(ctx, now)
	if err != nil {
		return fmt.Errorf("sweeper: idle tokens: %w", err)
	}
	var errs []error
	for _, t := range ts {
		done, err := s.cfg.Authority.ReapIdle(ctx, s.cfg.Holder, t.ID, now)
		if err != nil {
			errs = append(errs, fmt.Errorf("sweeper: reap idle token %s: %w", t.ID, err))
			continue
		}
		if done {
			c.Idle++
			s.cfg.Log.Info("idle token revoked", "token", t.ID, "last_used", t.LastUsed, "idle", t.Idle.Value, "set_by", t.Idle.From)
		}
	}
	return errors.Join(errs...)
}

// rotations revokes old tokens whose rotation grace has passed.
func (s *Sweeper) rotations(ctx context.Context, now time.Time, c *Counts) error {
	ts, err := s.st.RotatedTokens(ctx, now)
	if err != nil {
		return fmt.Errorf("sweeper: rotated tokens: %w", err)
	}
	var errs []error
	for _, t := range ts {
		done, err := s.cfg.Authority.FinishRotation(ctx, s.cfg.Holder, t.ID, now)
		if err != nil {
			errs = append(errs, fmt.Errorf("sweeper: finish rotation of %s: %w", t.ID, err))
			continue
		}
		if done {
			c.Rotated++
			s.cfg.Log.Info("rotation finished", "token", t.ID)
		}
	}
	return errors.Join(errs...)
}

// expiring sends the expiring-soon notices.
func (s *Sweeper) expiring(ctx context.Context, now time.Time, c *Counts) error {
	ts, err := s.st.ExpiringTokens(ctx, now, now.Add(s.cfg.ExpiryNotice))
	if err != nil {
		return fmt.Errorf("sweeper: expiring tokens: %w", err)
	}
	var errs []error
	for _, t := range ts {
		done, err := s.cfg.Authority.NoticeExpiry(ctx, t.ID, now)
		if err != nil {
			errs = append(errs, fmt.Errorf("sweeper: expiry notice of %s: %w", t.ID, err))
			continue
		}
		if done {
			c.ExpiryNotices++
		}
	}
	return errors.Join(errs...)
}
