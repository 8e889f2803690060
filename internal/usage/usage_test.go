package usage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"latchkey/internal/store"
	"latchkey/internal/store/sqlite"
)

// t0 is the base of every recorded time; offsets are whole milliseconds,
// so stored times compare exactly.
var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

// Tokens the tests record use of: two of alice, one of bob, one admin.
const (
	aliceA = "tokalice0001"
	aliceB = "tokalice0002"
	bobA   = "tokbob000001"
	admin  = "tokadmin0001"
)

// openStore opens a real SQLite store in a temporary directory, holding
// the tokens above. It is closed when the test ends.
func openStore(t testing.TB) (*sqlite.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "usage.db")
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	ctx := context.Background()
	for _, name := range []string{"alice", "bob"} {
		c := store.Contractor{Name: name, Email: name + "@example.com", Sponsor: "sam", Until: t0.Add(365 * 24 * time.Hour), CreatedAt: t0}
		if err := s.CreateContractor(ctx, c); err != nil {
			t.Fatalf("CreateContractor %s: %v", name, err)
		}
	}
	for id, who := range map[string]string{aliceA: "alice", aliceB: "alice", bobA: "bob", admin: ""} {
		tok := store.Token{ID: id, Admin: who == "", Contractor: who, Scopes: []string{"wiki:read"},
			Hash: sha256.Sum256([]byte(id)), ExpiresAt: t0.Add(24 * time.Hour), CreatedAt: t0, CreatedBy: "root"}
		if err := s.CreateToken(ctx, tok); err != nil {
			t.Fatalf("CreateToken %s: %v", id, err)
		}
	}
	return s, path
}

// newRecorder returns a Recorder on s whose loop never fires during the
// test, so that only explicit Flush and Close calls write. It is closed
// when the test ends.
func newRecorder(t testing.TB, s store.Store) *Recorder {
	t.Helper()
	r := New(Config{Store: s, Interval: time.Hour, Log: slog.New(slog.DiscardHandler)})
	t.Cleanup(func() { r.Close(context.Background()) })
	return r
}

// stored is what the store holds of one token's use.
type stored struct {
	Uses     int64
	LastUsed time.Time
}

func usesOf(t *testing.T, s store.Store, ids ...string) map[string]stored {
	t.Helper()
	got := make(map[string]stored)
	for _, id := range ids {
		tok, err := s.Token(t.Context(), id)
		if err != nil {
			t.Fatalf("Token %s: %v", id, err)
		}
		got[id] = stored{tok.Uses, tok.LastUsedAt}
	}
	return got
}

func scopeUses(t *testing.T, s store.Store) []store.ScopeUse {
	t.Helper()
	got, err := s.ScopeUses(t.Context(), time.Time{})
	if err != nil {
		t.Fatalf("ScopeUses: %v", err)
	}
	return got
}

// pendingOf copies what r holds unflushed. It waits for a flush in
// progress, during which the batch is out of r.pending.
func pendingOf(r *Recorder) map[string]entry {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]entry, len(r.pending))
	for id, e := range r.pending {
		out[id] = entry{at: e.at, count: e.count, scopes: slices.Clone(e.scopes)}
	}
	return out
}

// cmpEntry compares entries, their scopes as sets.
var cmpEntry = []cmp.Option{
	cmp.AllowUnexported(entry{}),
	cmpopts.SortSlices(func(a, b string) bool { return a < b }),
	cmpopts.EquateEmpty(),
}

func TestRecordConcurrentThenFlush(t *testing.T) {
	s, _ := openStore(t)
	r := newRecorder(t, s)

	const workers, perWorker = 16, 500
	ids := []string{aliceA, aliceB, bobA, admin}
	owner := map[string]string{aliceA: "alice", aliceB: "alice", bobA: "bob"}
	scopes := []string{"wiki:read", "git:read", "ci:run"}
	// use is what worker w records at step i; the expectations below are
	// computed from the same function.
	use := func(w, i int) (id, sc string, when time.Time) {
		id = ids[(w+i)%len(ids)]
		if id != admin { // admin requests have no resource scope
			sc = scopes[(w*i)%len(scopes)]
		}
		return id, sc, at((w*7919 + i*104729) % 3_600_000)
	}

	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				r.Record(use(w, i))
			}
		})
	}
	wg.Wait()
	if err := r.Flush(t.Context()); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if n := len(pendingOf(r)); n != 0 {
		t.Errorf("after Flush, %d tokens still pending", n)
	}

	want := make(map[string]stored)
	seen := make(map[string]map[string]bool) // token -> scopes it recorded
	for w := range workers {
		for i := range perWorker {
			id, sc, when := use(w, i)
			st := want[id]
			st.Uses++
			if when.After(st.LastUsed) {
				st.LastUsed = when
			}
			want[id] = st
			if sc != "" {
				if seen[id] == nil {
					seen[id] = make(map[string]bool)
				}
				seen[id][sc] = true
			}
		}
	}
	if diff := cmp.Diff(want, usesOf(t, s, ids...)); diff != "" {
		t.Errorf("token uses after Flush (-want +got):\n%s", diff)
	}

	// One batch carries one time per token: the last use of the token. Each
	// scope it recorded gets that time for its contractor, the later of the
	// contractor's tokens winning.
	last := make(map[[2]string]time.Time)
	for id, scs := range seen {
		for sc := range scs {
			k := [2]string{owner[id], sc}
			if want[id].LastUsed.After(last[k]) {
				last[k] = want[id].LastUsed
			}
		}
	}
	var wantScopes []store.ScopeUse
	for k, when := range last {
		wantScopes = append(wantScopes, store.ScopeUse{Contractor: k[0], Scope: k[1], LastUsedAt: when})
	}
	sortScopes := cmpopts.SortSlices(func(a, b store.ScopeUse) bool {
		return a.Contractor+"\x00"+a.Scope < b.Contractor+"\x00"+b.Scope
	})
	if diff := cmp.Diff(wantScopes, scopeUses(t, s), sortScopes); diff != "" {
		t.Errorf("ScopeUses after Flush (-want +got):\n%s", diff)
	}
}

func TestLastUsedNeverLowered(t *testing.T) {
	s, _ := openStore(t)
	r := newRecorder(t, s)

	// Within one batch: the later time is kept whatever the order.
	r.Record(aliceA, "wiki:read", at(5000))
	r.Record(aliceA, "git:read", at(1000))
	if err := r.Flush(t.Context()); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	// Across batches: an older time recorded later lowers nothing.
	r.Record(aliceA, "wiki:read", at(2000))
	if err := r.Flush(t.Context()); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if diff := cmp.Diff(map[string]stored{aliceA: {3, at(5000)}}, usesOf(t, s, aliceA)); diff != "" {
		t.Errorf("token (-want +got):\n%s", diff)
	}
	want := []store.ScopeUse{
		{Contractor: "alice", Scope: "git:read", LastUsedAt: at(5000)},
		{Contractor: "alice", Scope: "wiki:read", LastUsedAt: at(5000)},
	}
	if diff := cmp.Diff(want, scopeUses(t, s)); diff != "" {
		t.Errorf("ScopeUses (-want +got):\n%s", diff)
	}

	// Sub-millisecond times are stored truncated, as the store keeps them.
	r.Record(bobA, "", at(9000).Add(999*time.Microsecond))
	if err := r.Flush(t.Context()); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if diff := cmp.Diff(map[string]stored{bobA: {1, at(9000)}}, usesOf(t, s, bobA)); diff != "" {
		t.Errorf("token (-want +got):\n%s", diff)
	}
}

func TestFlushNothingPending(t *testing.T) {
	s, _ := openStore(t)
	r := newRecorder(t, s)
	// A closed store fails every call: Flush must not make one.
	if err := s.Close(); err != nil {
		t.Fatalf("Close store: %v", err)
	}
	for range 2 {
		if err := r.Flush(t.Context()); err != nil {
			t.Errorf("Flush with nothing pending: %v", err)
		}
	}
}

func TestFailedFlushRequeues(t *testing.T) {
	s, _ := openStore(t)
	r := newRecorder(t, s)
	r.Record(aliceA, "wiki:read", at(3000))
	r.Record(aliceA, "wiki:read", at(1000))
	r.Record(bobA, "", at(2000))
	if err := s.Close(); err != nil {
		t.Fatalf("Close store: %v", err)
	}

	if err := r.Flush(t.Context()); err == nil {
		t.Fatal("Flush to a closed store: got nil error")
	}
	want := map[string]entry{
		aliceA: {at: at(3000), count: 2, scopes: []string{"wiki:read"}},
		bobA:   {at: at(2000), count: 1},
	}
	if diff := cmp.Diff(want, pendingOf(r), cmpEntry...); diff != "" {
		t.Fatalf("pending after failed Flush (-want +got):\n%s", diff)
	}

	// More use adds up with what was put back, and a second failure
	// keeps all of it.
	r.Record(aliceA, "git:read", at(500))
	r.Record(aliceB, "ci:run", at(4000))
	if err := r.Flush(t.Context()); err == nil {
		t.Fatal("second Flush to a closed store: got nil error")
	}
	want[aliceA] = entry{at: at(3000), count: 3, scopes: []string{"wiki:read", "git:read"}}
	want[aliceB] = entry{at: at(4000), count: 1, scopes: []string{"ci:run"}}
	if diff := cmp.Diff(want, pendingOf(r), cmpEntry...); diff != "" {
		t.Errorf("pending after second failed Flush (-want +got):\n%s", diff)
	}
	if err := r.Close(t.Context()); err == nil {
		t.Error("Close with a closed store: got nil error, want the failed final flush")
	}
}

// TestFailedFlushRetried fails a flush against an open store (its context
// is cancelled) and checks that the next flush writes everything.
func TestFailedFlushRetried(t *testing.T) {
	s, _ := openStore(t)
	r := newRecorder(t, s)
	r.Record(aliceA, "wiki:read", at(3000))
	r.Record(bobA, "wiki:read", at(2000))

	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	if err := r.Flush(cancelled); !errors.Is(err, context.Canceled) {
		t.Fatalf("Flush with a cancelled context: got %v, want context.Canceled", err)
	}
	if diff := cmp.Diff(map[string]stored{aliceA: {}, bobA: {}}, usesOf(t, s, aliceA, bobA)); diff != "" {
		t.Fatalf("store after failed Flush (-want +got):\n%s", diff)
	}

	r.Record(aliceA, "git:read", at(1000))
	r.Record(aliceA, "wiki:read", at(4000))
	if err := r.Flush(t.Context()); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	want := map[string]stored{aliceA: {3, at(4000)}, bobA: {1, at(2000)}}
	if diff := cmp.Diff(want, usesOf(t, s, aliceA, bobA)); diff != "" {
		t.Errorf("store after retried Flush (-want +got):\n%s", diff)
	}
	wantScopes := []store.ScopeUse{
		{Contractor: "alice", Scope: "git:read", LastUsedAt: at(4000)},
		{Contractor: "alice", Scope: "wiki:read", LastUsedAt: at(4000)},
		{Contractor: "bob", Scope: "wiki:read", LastUsedAt: at(2000)},
	}
	if diff := cmp.Diff(wantScopes, scopeUses(t, s)); diff != "" {
		t.Errorf("ScopeUses after retried Flush (-want +got):\n%s", diff)
	}
}

// TestRequeueMerges covers use recorded while a failing flush was in
// progress: requeue merges the failed batch into it.
func TestRequeueMerges(t *testing.T) {
	r := &Recorder{pending: map[string]*entry{
		aliceA: {at: at(1000), count: 2, scopes: []string{"git:read"}},
		aliceB: {at: at(9000), count: 1, scopes: []string{"ci:run"}},
	}}
	r.requeue(map[string]*entry{
		aliceA: {at: at(5000), count: 3, scopes: []string{"wiki:read", "git:read"}},
		aliceB: {at: at(2000), count: 4},
		bobA:   {at: at(7000), count: 1, scopes: []string{"wiki:read"}},
	})
	want := map[string]entry{
		aliceA: {at: at(5000), count: 5, scopes: []string{"git:read", "wiki:read"}},
		aliceB: {at: at(9000), count: 5, scopes: []string{"ci:run"}},
		bobA:   {at: at(7000), count: 1, scopes: []string{"wiki:read"}},
	}
	if diff := cmp.Diff(want, pendingOf(r), cmpEntry...); diff != "" {
		t.Errorf("pending after requeue (-want +got):\n%s", diff)
	}
}

func TestCloseFlushes(t *testing.T) {
	s, _ := openStore(t)
	r := New(Config{Store: s, Interval: time.Hour, Log: slog.New(slog.DiscardHandler)})
	r.Record(aliceA, "wiki:read", at(1000))
	r.Record(admin, "", at(2000))
	if err := r.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	want := map[string]stored{aliceA: {1, at(1000)}, admin: {1, at(2000)}}
	if diff := cmp.Diff(want, usesOf(t, s, aliceA, admin)); diff != "" {
		t.Errorf("store after Close (-want +got):\n%s", diff)
	}
}

// TestCloseRetries checks that a failed final flush keeps its batch and
// that Close can be called again to retry it.
func TestCloseRetries(t *testing.T) {
	s, _ := openStore(t)
	r := New(Config{Store: s, Interval: time.Hour, Log: slog.New(slog.DiscardHandler)})
	r.Record(aliceA, "wiki:read", at(1000))
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	if err := r.Close(cancelled); !errors.Is(err, context.Canceled) {
		t.Fatalf("Close with a cancelled context: got %v, want context.Canceled", err)
	}
	if err := r.Close(t.Context()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if diff := cmp.Diff(map[string]stored{aliceA: {1, at(1000)}}, usesOf(t, s, aliceA)); diff != "" {
		t.Errorf("store after retried Close (-want +got):\n%s", diff)
	}
}

// poll calls cond until it returns "" or 5 seconds pass, and then fails
// with its last answer.
func poll(t *testing.T, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 5s: %s", msg)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestLoopFlushes(t *testing.T) {
	s, _ := openStore(t)
	r := New(Config{Store: s, Interval: 10 * time.Millisecond, Log: slog.New(slog.DiscardHandler)})
	t.Cleanup(func() { r.Close(context.Background()) })

	for i := range 3 {
		r.Record(aliceA, "wiki:read", at(1000*(i+1)))
	}
	want := map[string]stored{aliceA: {3, at(3000)}}
	poll(t, func() string {
		return diffOrEmpty("store without a Flush call", want, usesOf(t, s, aliceA))
	})
	// The loop keeps running after a flush.
	r.Record(aliceA, "git:read", at(500))
	want = map[string]stored{aliceA: {4, at(3000)}}
	poll(t, func() string {
		return diffOrEmpty("store after a second batch", want, usesOf(t, s, aliceA))
	})
}

// TestLoopLogsFailures checks that a failing background flush is logged
// and keeps the batch.
func TestLoopLogsFailures(t *testing.T) {
	s, _ := openStore(t)
	var log syncBuffer
	r := New(Config{Store: s, Interval: 10 * time.Millisecond, Log: slog.New(slog.NewTextHandler(&log, nil))})
	t.Cleanup(func() { r.Close(context.Background()) })
	if err := s.Close(); err != nil {
		t.Fatalf("Close store: %v", err)
	}
	r.Record(aliceA, "wiki:read", at(1000))
	poll(t, func() string {
		if strings.Contains(log.String(), "usage flush failed") {
			return ""
		}
		return fmt.Sprintf("log %q has no failed flush", log.String())
	})
	want := map[string]entry{aliceA: {at: at(1000), count: 1, scopes: []string{"wiki:read"}}}
	if diff := cmp.Diff(want, pendingOf(r), cmpEntry...); diff != "" {
		t.Errorf("pending after failed background flushes (-want +got):\n%s", diff)
	}
}

func diffOrEmpty(what string, want, got any) string {
	if d := cmp.Diff(want, got); d != "" {
		return fmt.Sprintf("%s (-want +got):\n%s", what, d)
	}
	return ""
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// BenchmarkRecord measures Record, the only part of usage on the request
// path, from parallel goroutines over a few hot tokens while the loop
// flushes to a real store in the background at the default interval.
func BenchmarkRecord(b *testing.B) {
	s, _ := openStore(b)
	r := New(Config{Store: s, Log: slog.New(slog.DiscardHandler)})
	b.Cleanup(func() { r.Close(context.Background()) })
	ids := make([]string, 64)
	for i := range ids {
		ids[i] = fmt.Sprintf("tokbench%04d", i)
	}
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			r.Record(ids[i%len(ids)], "wiki:read", now)
			i++
		}
	})
}

func TestRecordCountedAddsNoUse(t *testing.T) {
	s, _ := openStore(t)
	r := newRecorder(t, s)
	r.RecordCounted(aliceA, "wiki:read", at(4000))
	r.Record(aliceB, "wiki:read", at(1000))
	r.RecordCounted(aliceB, "git:read", at(2000))
	if err := r.Flush(t.Context()); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	want := map[string]stored{aliceA: {0, at(4000)}, aliceB: {1, at(2000)}}
	if diff := cmp.Diff(want, usesOf(t, s, aliceA, aliceB)); diff != "" {
		t.Errorf("tokens (-want +got):\n%s", diff)
	}
	wantScopes := []store.ScopeUse{
		{Contractor: "alice", Scope: "git:read", LastUsedAt: at(2000)},
		{Contractor: "alice", Scope: "wiki:read", LastUsedAt: at(4000)},
	}
	if diff := cmp.Diff(wantScopes, scopeUses(t, s)); diff != "" {
		t.Errorf("ScopeUses (-want +got):\n%s", diff)
	}
}

// chunks counts the RecordUse transactions a store is given, failing the
// one numbered failAt (1-based; 0 never).
type chunks struct {
	store.Store
	sizes      []int
	failAt     int
	mu         sync.Mutex
	start, end []time.Time // of each chunk's transaction
}

func (c *chunks) RecordUse(ctx context.Context, uses []store.Use) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.start = append(c.start, time.Now())
	defer func() { c.end = append(c.end, time.Now()) }()
	c.sizes = append(c.sizes, len(uses))
	if len(c.sizes) == c.failAt {
		return errors.New("disk gone")
	}
	return c.Store.RecordUse(ctx, uses)
}

// TestFlushInChunks: a flush writes at most flushChunk uses per store
// transaction, so that it never holds the store's only writer for long;
// when a chunk fails, it and every later one are put back, and the
// chunks already written are not.
func TestFlushInChunks(t *testing.T) {
	s, _ := openStore(t)
	c := &chunks{Store: s, failAt: 3}
	r := New(Config{Store: c, Interval: time.Hour, Log: slog.New(slog.DiscardHandler)})
	defer r.Close(context.Background())
	const n = 3*flushChunk + 10
	for i := range n {
		r.Record(fmt.Sprintf("unknown%05d", i), "", at(i))
	}
	if err := r.Flush(t.Context()); err == nil {
		t.Fatal("Flush with a failing chunk: nil error")
	}
	if want := []int{flushChunk, flushChunk, flushChunk}; !slices.Equal(c.sizes, want) {
		t.Fatalf("transactions of %v uses, want %v", c.sizes, want)
	}
	if got := len(pendingOf(r)); got != n-2*flushChunk {
		t.Fatalf("%d uses put back, want the failed chunk and the rest, %d", got, n-2*flushChunk)
	}
	c.sizes, c.failAt = nil, 0
	if err := r.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if want := []int{flushChunk, 10}; !slices.Equal(c.sizes, want) {
		t.Fatalf("retry: transactions of %v uses, want %v", c.sizes, want)
	}
}

// TestLoopFlushPaced: the background flush rests after each chunk at
// least as long as the chunk's transaction took, so that it never holds a
// processor for more than a chunk at a time; Flush (Close's) does not.
func TestLoopFlushPaced(t *testing.T) {
	s, _ := openStore(t)
	c := &chunks{Store: s}
	r := New(Config{Store: c, Interval: 10 * time.Millisecond, Log: slog.New(slog.DiscardHandler)})
	t.Cleanup(func() { r.Close(context.Background()) })
	const n = 4 * flushChunk
	for i := range n {
		r.Record(fmt.Sprintf("unknown%05d", i), "", at(i))
	}
	poll(t, func() string {
		c.mu.Lock()
		defer c.mu.Unlock()
		if len(c.end) < 4 {
			return fmt.Sprintf("%d chunks written, want 4", len(c.end))
		}
		return ""
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	if want := []int{flushChunk, flushChunk, flushChunk, flushChunk}; !slices.Equal(c.sizes[:4], want) {
		t.Fatalf("transactions of %v uses, want %v", c.sizes, want)
	}
	for i := range 3 {
		took, rest := c.end[i].Sub(c.start[i]), c.start[i+1].Sub(c.end[i])
		if rest < took {
			t.Errorf("chunk %d took %v, and the next began %v after it: want a rest at least as long", i, took, rest)
		}
	}
}
