package access_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"latchkey/internal/access"
)

// cutWithin waits for ctx to be cancelled and checks its cause. The bound
// is for liveness only.
func cutWithin(t *testing.T, ctx context.Context, cause error) {
	t.Helper()
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("held context not cancelled, want cause %v", cause)
	}
	if got := context.Cause(ctx); !errors.Is(got, cause) {
		t.Fatalf("cause %v, want %v", got, cause)
	}
}

func stillHeld(t *testing.T, ctx context.Context) {
	t.Helper()
	if err := context.Cause(ctx); err != nil {
		t.Fatalf("held context cancelled: %v", err)
	}
}

// hold holds a request of token id, failing the test if it cannot.
func hold(t *testing.T, e *env, id string) (context.Context, func()) {
	t.Helper()
	ctx, release, err := e.a.Hold(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return ctx, release
}

func issueFor(t *testing.T, e *env, ttl time.Duration) access.Issued {
	t.Helper()
	iss, err := e.a.Issue(context.Background(), root, access.IssueRequest{Contractor: "alice", Scopes: []string{"billing:read:/v1/**"}, TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

func TestHoldCutOnRevoke(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	iss := issueFor(t, e, time.Hour)
	other := issueFor(t, e, time.Hour)
	ctx1, release1 := hold(t, e, iss.Token.ID)
	defer release1()
	ctx2, release2 := hold(t, e, iss.Token.ID)
	defer release2()
	ctxOther, releaseOther := hold(t, e, other.Token.ID)
	defer releaseOther()

	if err := e.a.Revoke(context.Background(), root, iss.Token.ID); err != nil {
		t.Fatal(err)
	}
	cutWithin(t, ctx1, access.ErrTokenCut)
	cutWithin(t, ctx2, access.ErrTokenCut)
	stillHeld(t, ctxOther)
	if _, _, err := e.a.Hold(context.Background(), iss.Token.ID); access.ReasonOf(err) != access.ReasonExpired {
		t.Fatalf("Hold of a revoked token: %v, want a refusal", err)
	}
}

func TestHoldCutAtExpiry(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	// The test clock stands still: the token ends one second of real time after
	// the hold.
	iss := issueFor(t, e, time.Second)
	ctx, release := hold(t, e, iss.Token.ID)
	defer release()
	cutWithin(t, ctx, access.ErrTokenEnded)
}

func TestHoldOffboard(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	iss := issueFor(t, e, time.Hour)
	ctx, release := hold(t, e, iss.Token.ID)
	defer release()
	if _, err := e.a.Offboard(context.Background(), root, "alice"); err != nil {
		t.Fatal(err)
	}
	cutWithin(t, ctx, access.ErrTokenCut)
}

// TestHoldRotate: a rotation with a grace keeps the old token's requests
// until the grace ends; one without cuts them at once.
func TestHoldRotate(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	graced := issueFor(t, e, time.Hour)
	ctx, release := hold(t, e, graced.Token.ID)
	defer release()
	if _, err := e.a.Rotate(context.Background(), root, graced.Token.ID, 400*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	stillHeld(t, ctx) // re-timed to the grace, not cut
	cutWithin(t, ctx, access.ErrTokenEnded)

	now := issueFor(t, e, time.Hour)
	ctx, release2 := hold(t, e, now.Token.ID)
	defer release2()
	if _, err := e.a.Rotate(context.Background(), root, now.Token.ID, 0); err != nil {
		t.Fatal(err)
	}
	cutWithin(t, ctx, access.ErrTokenCut)
}

// TestHoldRelease: a released hold is cancelled without a cause of the
// token's, and revoking afterwards finds nothing to cut.
func TestHoldRelease(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	iss := issueFor(t, e, time.Hour)
	ctx, release := hold(t, e, iss.Token.ID)
	release()
	if got := context.Cause(ctx); !errors.Is(got, context.Canceled) {
		t.Fatalf("released hold: cause %v, want context.Canceled", got)
	}
	if err := e.a.Revoke(context.Background(), root, iss.Token.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.a.Hold(context.Background(), "nosuchtoken1"); err == nil {
		t.Fatal("Hold of an unknown token succeeded")
	}
}
