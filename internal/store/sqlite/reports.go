package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"

	"latchkey/internal/store"
)

// The reports read tokens in primary key order, (contractor, id), rather
// than through tokens_by_liveness: when most tokens are live, as in the
// sizing target, reading them in key order costs far less than looking
// each live token up from the index, and it needs no sort. The unary + on
// revoked_at keeps the planner off that index. (Should revoked and expired
// tokens come to outnumber live ones many times over, the index would win;
// the plans are worth revisiting then.)
const liveToken = `+revoked_at IS NULL AND expires_at > ?1 AND contractor != ''`

// ActiveReport lists contractors holding tokens active at t, ordered by
// contractor name. Admin tokens belong to no contractor and are left out.
func (s *Store) ActiveReport(ctx context.Context, t time.Time) ([]store.ActiveRow, error) {
	// Walks contractors by name and each one's tokens by key prefix.
	rows, err := s.scan.QueryContext(ctx, `SELECT c.name, c.email, c.sponsor, c.until_at, count(*),
			min(t.expires_at), max(t.expires_at), max(t.last_used_at)
		FROM contractors c JOIN tokens t ON t.contractor = c.name
		WHERE +t.revoked_at IS NULL AND t.expires_at > ?1
		GROUP BY c.name ORDER BY c.name`, bound(t))
	if err != nil {
		return nil, fmt.Errorf("sqlite: active report: %w", err)
	}
	out, err := scanAll(rows, func(rows *sql.Rows) (store.ActiveRow, error) {
		var r store.ActiveRow
		var until, next, latest, last sql.NullInt64
		err := rows.Scan(&r.Contractor, &r.Email, &r.Sponsor, &until, &r.Tokens, &next, &latest, &last)
		r.Until, r.NextExpiry, r.LatestExpiry, r.LastUsedAt = timeOf(until), timeOf(next), timeOf(latest), timeOf(last)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: active report: %w", err)
	}
	return out, nil
}

// AccessReport lists the scopes of grants live at t and of contractor
// tokens active at t, for one contractor or (contractor == "") for all,
// ordered by contractor, scope, source, id. IDs compare as strings, so
// grant "10" comes before grant "9".
//
// Grants and tokens are both read in contractor order, then merged one
// contractor at a time, so only that contractor's rows are ever sorted.
func (s *Store) AccessReport(ctx context.Context, contractor string, t time.Time) ([]store.AccessRow, error) {
	grantQ := `SELECT contractor, id, scopes, expires_at FROM grants
		WHERE revoked_at IS NULL AND expires_at > ?1`
	tokenQ := `SELECT contractor, id, scopes, expires_at FROM tokens WHERE ` + liveToken
	args := []any{bound(t)}
	if contractor != "" {
		grantQ += ` AND contractor = ?2`
		tokenQ += ` AND contractor = ?2`
		args = append(args, contractor)
	}
	var out []store.AccessRow
	err := s.readScan(ctx, func(tx *sql.Tx) error {
		r := accessReader{in: interner{}, lists: map[string][]string{}}
		grants, err := r.read(ctx, tx, "grant", grantQ+` ORDER BY contractor, id`, args)
		if err != nil {
			return err
		}
		tokens, err := r.read(ctx, tx, "token", tokenQ+` ORDER BY contractor, id`, args)
		if err != nil {
			return err
		}
		out = mergeAccess(grants, tokens, r.rows)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: access report: %w", err)
	}
	return out, nil
}

// accessItem is a grant or a token as AccessReport reads it. Each of its
// scopes makes one row of the report.
type accessItem struct {
	source  string // "grant" or "token"
	who, id string // contractor, grant or token id
	scopes  []string
	until   time.Time
}

// accessReader reads the grants and tokens that AccessReport selects.
type accessReader struct {
	in    interner
	lists map[string][]string // parsed scope lists by stored form; shared, never changed
	rows  int                 // how many rows the items read so far make

	who, scopes sql.RawBytes // buffers kept from row to row
}

// read runs q, which selects contractor, id, scopes and expiry of grants or
// tokens, and returns them in the query's order.
func (r *accessReader) read(ctx context.Context, tx *sql.Tx, source, q string, args []any) ([]accessItem, error) {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return scanAll(rows, func(rows *sql.Rows) (accessItem, error) {
		it := accessItem{source: source}
		var expires sql.NullInt64
		if err := rows.Scan(&r.who, &it.id, &r.scopes, &expires); err != nil {
			return it, err
		}
		l, ok := r.lists[string(r.scopes)]
		if !ok {
			var err error
			if l, err = appendList(nil, r.scopes, r.in); err != nil {
				return it, err
			}
			r.lists[string(r.scopes)] = l
		}
		it.who, it.scopes, it.until = r.in.str(r.who), l, timeOf(expires)
		r.rows += len(l)
		return it, nil
	})
}

// mergeAccess makes the n report rows of grants and tokens, each ordered
// by contractor: one contractor at a time, it lays out that contractor's
// rows and sorts them.
func mergeAccess(grants, tokens []accessItem, n int) []store.AccessRow {
	out := make([]store.AccessRow, 0, n)
	for len(grants) > 0 || len(tokens) > 0 {
		var who string
		switch {
		case len(grants) == 0:
			who = tokens[0].who
		case len(tokens) == 0:
			who = grants[0].who
		default:
			who = min(grants[0].who, tokens[0].who)
		}
		start := len(out)
		out, grants = expand(out, grants, who)
		out, tokens = expand(out, tokens, who)
		slices.SortFunc(out[start:], func(a, b store.AccessRow) int {
			return cmp.Or(cmp.Compare(a.Scope, b.Scope), cmp.Compare(a.Source, b.Source), cmp.Compare(a.ID, b.ID))
		})
	}
	return out
}

// expand appends to out the rows of the leading items that belong to the
// contractor who, and returns the items after them.
func expand(out []store.AccessRow, items []accessItem, who string) ([]store.AccessRow, []accessItem) {
	for len(items) > 0 && items[0].who == who {
		it := items[0]
		for _, sc := range it.scopes {
			out = append(out, store.AccessRow{Contractor: who, Scope: sc, Source: it.source, ID: it.id, Until: it.until})
		}
		items = items[1:]
	}
	return out, items
}

// UnusedTokens lists contractor tokens active at t that were neither used
// nor created after cutoff, ordered by contractor, id.
//
// It counts them first, in the same snapshot, so that the result is
// allocated once at its size: tokens are large, and growing or copying a
// slice of them costs more than the count.
func (s *Store) UnusedTokens(ctx context.Context, cutoff, t time.Time) ([]store.UnusedToken, error) {
	rows, err := s.scan.QueryContext(ctx, `SELECT id, contractor, scopes, expires_at, created_at, last_used_at, note
		FROM tokens WHERE `+liveToken+`
		AND (created_at IS NULL OR created_at <= ?2)
		AND (last_used_at IS NULL OR last_used_at <= ?2)
		ORDER BY contractor, id`, bound(t), bound(cutoff))
	var out []store.UnusedToken
	if err == nil {
		in, lists := interner{}, map[string][]string{}
		var who, scopes, note sql.RawBytes
		out, err = scanAll(rows, func(rows *sql.Rows) (store.UnusedToken, error) {
			var u store.UnusedToken
			var exp, created, used sql.NullInt64
			if err := rows.Scan(&u.ID, &who, &scopes, &exp, &created, &used, &note); err != nil {
				return u, err
			}
			l, ok := lists[string(scopes)]
			if !ok {
				var err error
				if l, err = appendList(nil, scopes, in); err != nil {
					return u, err
				}
				lists[string(scopes)] = l
			}
			u.Contractor, u.Scopes, u.Note = in.str(who), l, in.str(note)
			u.ExpiresAt, u.CreatedAt, u.LastUsedAt = timeOf(exp), timeOf(created), timeOf(used)
			return u, nil
		})
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: unused tokens: %w", err)
	}
	return out, nil
}
