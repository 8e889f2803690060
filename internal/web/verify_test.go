package web

import (
	"testing"
	"time"
)

// TestOneVerificationAtATime: while a verification runs, another is
// refused and told since when; once it ends, its result is the last one
// and the next may start.
func TestOneVerificationAtATime(t *testing.T) {
	var v verifications
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if ok, _ := v.claim(t0); !ok {
		t.Fatal("the first claim was refused")
	}
	if ok, since := v.claim(t0.Add(time.Second)); ok || !since.Equal(t0) {
		t.Fatalf("a second claim while one runs: %v since %v, want refused since %v", ok, since, t0)
	}
	if running, last := v.state(); !running.Equal(t0) || last != nil {
		t.Fatalf("state while running: %v, %v", running, last)
	}
	v.finish(&verifyResult{Started: t0, Ended: t0.Add(2 * time.Second), Size: 7})
	running, last := v.state()
	if !running.IsZero() || last == nil || last.Size != 7 || last.Took() != 2*time.Second {
		t.Fatalf("state after: %v, %+v", running, last)
	}
	if ok, _ := v.claim(t0.Add(3 * time.Second)); !ok {
		t.Fatal("a claim after the first ended was refused")
	}
	v.finish(nil) // never ran: the last result stays
	if _, last := v.state(); last == nil || last.Size != 7 {
		t.Fatalf("last result after an aborted claim: %+v", last)
	}
}
