package audit

import "testing"

// SetVerifyChunk makes Verify read n records at a time until the end of
// the test. Tests that call it must not run in parallel.
func SetVerifyChunk(t testing.TB, n int64) {
	old := verifyChunk
	verifyChunk = n
	t.Cleanup(func() { verifyChunk = old })
}
