package storetest

import (
	"context"
	"crypto/sha256"
	"fmt"
	"time"

	"latchkey/internal/store"
)

// Scale sizes the data Seed writes.
type Scale struct {
	Contractors int // contractors c00000, c00001, ...
	TokensPer   int // tokens per contractor (the pattern repeats every 10)
	Admins      int // admin tokens
	Scopes      int // distinct scopes in use
}

// Sizing is the project's sizing target for reports: 10,000 contractors
// holding 100,000 tokens.
var Sizing = Scale{Contractors: 10_000, TokensPer: 10, Admins: 100, Scopes: 50}

// Seed fills an empty store through its public API with data relative to
// now, for benchmarks of the reports. Contractor i holds tokens j: j%10 < 6
// active, 6 and 7 expired, 8 and 9 revoked; two tokens in three were used
// within the last 60 days. Each contractor has one or two grants, one in
// ten revoked and some expired. Scopes are svcNN:read:/v1/**.
func Seed(ctx context.Context, s store.Store, now time.Time, sc Scale) error {
	var uses []store.Use
	for i := range sc.Contractors {
		name := fmt.Sprintf("c%05d", i)
		err := s.CreateContractor(ctx, store.Contractor{Name: name, Email: name + "@example.com",
			Sponsor: "sponsor", Until: now.Add(90 * 24 * time.Hour), CreatedAt: now.Add(-100 * 24 * time.Hour)})
		if err != nil {
			return err
		}
		for j := range sc.TokensPer {
			tok := SeedToken(sc, now, i, j, name)
			if err := s.CreateToken(ctx, tok); err != nil {
				return err
			}
			if (i+j)%3 != 0 {
				uses = append(uses, store.Use{TokenID: tok.ID, Count: int64(j + 1), Scopes: tok.Scopes,
					At: now.Add(-time.Duration((i*7+j)%(60*24)) * time.Hour)})
			}
		}
		if err := seedGrants(ctx, s, sc, now, i, name); err != nil {
			return err
		}
	}
	for i := range sc.Admins {
		tok := SeedToken(sc, now, i, 0, "")
		tok.ID, tok.Admin, tok.Scopes = fmt.Sprintf("a%05d000000", i), true, []string{"admin:*"}
		if err := s.CreateToken(ctx, tok); err != nil {
			return err
		}
	}
	for len(uses) > 0 {
		n := min(len(uses), 5000)
		if err := s.RecordUse(ctx, uses[:n]); err != nil {
			return err
		}
		uses = uses[n:]
	}
	return nil
}

func seedGrants(ctx context.Context, s store.Store, sc Scale, now time.Time, i int, name string) error {
	for k := range 1 + i%2 {
		g := store.Grant{Contractor: name, Scopes: []string{seedScope(sc, i+k), seedScope(sc, i+k+7)},
			ExpiresAt: now.Add(time.Duration(30-(i+k)%40) * 24 * time.Hour), CreatedAt: now.Add(-50 * 24 * time.Hour)}
		if (i+k)%10 == 0 {
			g.RevokedAt = now.Add(-time.Hour)
		}
		if _, err := s.CreateGrant(ctx, g); err != nil {
			return err
		}
	}
	return nil
}

func seedScope(sc Scale, i int) string { return fmt.Sprintf("svc%02d:read:/v1/**", i%sc.Scopes) }

// SeedToken is token j of contractor i as Seed writes it; its id is a
// valid 12-character token id.
func SeedToken(sc Scale, now time.Time, i, j int, contractor string) store.Token {
	id := fmt.Sprintf("t%05d%06d", i, j)
	day := 24 * time.Hour
	tok := store.Token{
		ID:         id,
		Contractor: contractor,
		Hash:       sha256.Sum256([]byte(id)),
		CreatedAt:  now.Add(-time.Duration(1+(i+j)%90) * day),
		CreatedBy:  "root",
		ExpiresAt:  now.Add(time.Duration(1+(i*j)%60) * day),
		Note:       "benchmark token",
	}
	for k := range 1 + (i+j)%3 {
		tok.Scopes = append(tok.Scopes, seedScope(sc, i+j+k*13))
	}
	switch j % 10 {
	case 6, 7:
		tok.ExpiresAt = now.Add(-time.Duration(1+i%30) * day)
	case 8, 9:
		tok.RevokedAt, tok.RevokedBy = now.Add(-day), "root"
	}
	return tok
}
