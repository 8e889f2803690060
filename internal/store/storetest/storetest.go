// Package storetest is the conformance suite every store.Store implementation must pass.
//
// An engine's tests call Run with a function that opens a fresh, empty
// store. Beyond the contracts documented on store.Store, the suite holds
// every engine to these rules, which callers may rely on:
//
//   - Times are kept to the millisecond in UTC: a stored time t comes back
//     as t.Truncate(time.Millisecond).UTC(), and the zero time.Time comes
//     back zero. The suite itself stores only such truncated times, so it
//     compares what it stored with what it gets back exactly, without a
//     tolerance.
//   - Empty and nil slices are interchangeable: a stored empty list may come
//     back nil.
//   - Values returned by the create methods (CreateGrant) are as a later
//     read returns them.
//   - The ErrDisabled of RotateToken takes precedence over its ErrRevoked:
//     offboarding revokes every token of a contractor, so a token of a
//     disabled contractor is always revoked too, and ErrDisabled is the
//     cause a caller can act on.
//   - RecordUse records no scope use for an admin token, which has no
//     contractor, and that is not an error.
//
// One thing the suite leaves open because store.Store does: whether
// AccessReport orders grant ids as strings ("10" before "9") or as numbers.
// It never gives one contractor two grants with the same scope.
package storetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"latchkey/internal/store"
)

// Run runs the conformance suite against the engine that open creates.
// open is called once per subtest, never concurrently, and must return a
// fresh, empty store; it fails t itself if it cannot. The suite closes each
// store it is given when the subtest ends, so open must not close it.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Contractors", testContractors},
		{"Services", testServices},
		{"Times", testTimes},
		{"Grants/Create", testGrantCreate},
		{"Grants/Errors", testGrantErrors},
		{"Grants/Filter", testGrantFilter},
		{"Grants/Revoke", testGrantRevoke},
		{"Tokens/RoundTrip", testTokenRoundTrip},
		{"Tokens/Errors", testTokenErrors},
		{"Tokens/Filter", testTokenFilter},
		{"Tokens/Revoke", testTokenRevoke},
		{"RotateToken", testRotate},
		{"RotateToken/Errors", testRotateErrors},
		{"Offboard", testOffboard},
		{"RecordUse", testRecordUse},
		{"RecordUse/Scopes", testRecordUseScopes},
		{"ConsumeUse", testConsumeUse},
		{"ActiveReport", testActiveReport},
		{"AccessReport", testAccessReport},
		{"UnusedTokens", testUnusedTokens},
		{"Concurrent", testConcurrent},
		{"Webhooks", testWebhooks},
		{"Deliveries", testDeliveries},
		{"Deliveries/ClaimConcurrent", testClaimConcurrent},
		{"Requests/Create", testRequestCreate},
		{"Requests/Approve", testRequestApprove},
		{"Requests/Deny", testRequestDeny},
		{"Requests/Fetch", testRequestFetch},
		{"Requests/FetchConcurrent", testRequestFetchConcurrent},
		{"Approvers", testApprovers},
		{"Policies", testPolicies},
		{"Lease", testLease},
		{"Claim", testClaim},
		{"EndEngagement", testEndEngagement},
		{"RotatedTokens", testRotatedTokens},
		{"ExpiryNotice", testExpiryNotice},
		{"Derived/Create", testDerive},
		{"Derived/Errors", testDeriveErrors},
		{"Derived/Uses", testDeriveUses},
		{"Derived/RevokeTree", testRevokeTree},
		{"Derived/End", testEndDerived},
		{"Invalidations/Tokens", testInvalidationsTokens},
		{"Invalidations/Contractors", testInvalidationsContractors},
		{"Invalidations/Read", testInvalidationsRead},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, s)
		})
	}
	t.Run("Close", func(t *testing.T) {
		s := open(t)
		mustContractor(t, s, "alice")
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	})
}

// t0 is the suite's reference instant. Every time the suite stores is t0
// plus whole milliseconds, in UTC, so it round-trips exactly.
var t0 = time.Date(2031, time.March, 4, 5, 6, 7, 890_000_000, time.UTC)

const day = 24 * time.Hour

// at is t0 + d.
func at(d time.Duration) time.Time { return t0.Add(d) }

// opts compare stored values: nil and empty slices are equal. Times
// compare with time.Time.Equal (go-cmp uses the Equal method).
var opts = cmp.Options{cmpopts.EquateEmpty()}

// diff fails t if got differs from want.
func diff(t *testing.T, what string, want, got any) {
	t.Helper()
	if d := cmp.Diff(want, got, opts); d != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", what, d)
	}
}

// wantErr fails t unless err matches target (nil for success).
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	switch {
	case target == nil && err != nil:
		t.Errorf("%s: unexpected error %v", what, err)
	case target != nil && !errors.Is(err, target):
		t.Errorf("%s: got error %v, want %v", what, err, target)
	}
}

// check fails t now if err is not nil.
func check(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func contractor(name string) store.Contractor {
	return store.Contractor{
		Name:      name,
		Email:     name + "@example.com",
		Company:   "Acme " + name,
		Sponsor:   "sponsor-of-" + name,
		Until:     at(90 * day),
		CreatedAt: at(-30 * day),
		CreatedBy: "lka_root",
	}
}

// mustContractor stores a contractor with the given name and returns it.
func mustContractor(t *testing.T, s store.Store, name string) store.Contractor {
	t.Helper()
	c := contractor(name)
	check(t, "CreateContractor "+name, s.CreateContractor(t.Context(), c))
	return c
}

// token is a contractor token (an admin token if contractor is "") with
// scopes, created at t0 and expiring at expires.
func token(id, contractor string, expires time.Time, scopes ...string) store.Token {
	return store.Token{
		ID:         id,
		Admin:      contractor == "",
		Contractor: contractor,
		Scopes:     scopes,
		Hash:       sha256.Sum256([]byte("secret of " + id)),
		ExpiresAt:  expires,
		CreatedAt:  t0,
		CreatedBy:  "lka_root",
	}
}

// mustToken stores tok.
func mustToken(t *testing.T, s store.Store, tok store.Token) store.Token {
	t.Helper()
	check(t, "CreateToken "+tok.ID, s.CreateToken(t.Context(), tok))
	return tok
}

func grant(contractor string, expires time.Time, scopes ...string) store.Grant {
	return store.Grant{
		Contractor: contractor,
		Scopes:     scopes,
		ExpiresAt:  expires,
		CreatedAt:  t0,
		CreatedBy:  "lka_root",
	}
}

// mustGrant stores g and returns it with its ID.
func mustGrant(t *testing.T, s store.Store, g store.Grant) store.Grant {
	t.Helper()
	g, err := s.CreateGrant(t.Context(), g)
	check(t, "CreateGrant", err)
	return g
}

// getToken reads a token that must exist.
func getToken(t *testing.T, s store.Store, id string) store.Token {
	t.Helper()
	tok, err := s.Token(t.Context(), id)
	check(t, "Token "+id, err)
	return tok
}

// offboard offboards a contractor that must exist.
func offboard(t *testing.T, s store.Store, name string) store.OffboardResult {
	t.Helper()
	res, err := s.Offboard(t.Context(), name, "lka_root", at(time.Hour))
	check(t, "Offboard "+name, err)
	return res
}

// ctx is shorthand for the test's context.
func ctx(t *testing.T) context.Context { return t.Context() }
