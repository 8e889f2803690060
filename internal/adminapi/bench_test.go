package adminapi_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"latchkey/internal/access"
	"latchkey/internal/adminapi"
	"latchkey/internal/scope"
	"latchkey/internal/seal"
	"latchkey/internal/store/sqlite"
	"latchkey/internal/store/storetest"
)

// The report benchmarks measure what `latchkey report ...` waits for: the
// HTTP round trip, the report, and the JSON encoding and decoding of every
// row, over storetest.Sizing (10,000 contractors, 100,000 tokens).
var (
	benchOnce   sync.Once
	benchClient *adminapi.Client
	benchErr    error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

var benchDir string

func benchSetup(b *testing.B) *adminapi.Client {
	benchOnce.Do(func() { benchClient, benchErr = seedServer() })
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchClient
}

func seedServer() (*adminapi.Client, error) {
	ctx := context.Background()
	now := time.Date(2031, time.March, 4, 12, 0, 0, 0, time.UTC)
	dir, err := os.MkdirTemp("", "latchkey-api-bench-")
	if err != nil {
		return nil, err
	}
	benchDir = dir
	st, err := sqlite.Open(ctx, filepath.Join(dir, "latchkey.db"))
	if err != nil {
		return nil, err
	}
	if err := storetest.Seed(ctx, st, now, storetest.Sizing); err != nil {
		return nil, err
	}
	key, _ := seal.LoadOrCreateKey(filepath.Join(dir, "seal.key"))
	box, _ := seal.New(key)
	clock := func() time.Time { return now }
	a, err := access.New(access.Config{Store: st, Box: box, Now: clock})
	if err != nil {
		return nil, err
	}
	api, err := adminapi.New(adminapi.Config{Authority: a, Now: clock})
	if err != nil {
		return nil, err
	}
	iss, err := a.Issue(ctx, access.Actor{TokenID: "init", Scopes: scope.Set{scope.MustParse("admin:*")}},
		access.IssueRequest{Admin: true, Scopes: []string{"admin:reports:read"}, TTL: time.Hour})
	if err != nil {
		return nil, err
	}
	srv := newLoopbackServer(api)
	return &adminapi.Client{Addr: srv, Token: iss.Text}, nil
}

func BenchmarkHTTPActiveReport(b *testing.B) {
	c := benchSetup(b)
	for b.Loop() {
		if _, err := c.ActiveReport(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHTTPAccessReport(b *testing.B) {
	c := benchSetup(b)
	for b.Loop() {
		if _, err := c.AccessReport(b.Context(), ""); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHTTPUnusedReport(b *testing.B) {
	c := benchSetup(b)
	for b.Loop() {
		if _, err := c.UnusedReport(b.Context(), "30d"); err != nil {
			b.Fatal(err)
		}
	}
}

// newLoopbackServer serves h on 127.0.0.1 for the rest of the test binary.
func newLoopbackServer(h http.Handler) string {
	return httptest.NewServer(h).URL
}
