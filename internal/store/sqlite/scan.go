package sqlite

import "database/sql"

// Reports read up to a few hundred thousand rows, and growing one slice of
// several megabytes by append (copying it at each step, with the garbage
// collector's write barriers on) costs more than the driver spends reading
// the rows. So a result is allocated once at its size where a count in the
// same snapshot is cheap (scanInto), and otherwise collects in a buffer
// (scanAll). Strings that repeat across rows are shared through an
// interner.

// buffer collects a query's results in chunks, so that reading a large
// result never copies what it has already read; all returns them as one
// slice. (Growing one slice of a few megabytes by append costs more than
// the driver spends reading the rows.)
type buffer[T any] struct {
	chunks [][]T
	n      int
}

func (b *buffer[T]) add(vs ...T) {
	for len(vs) > 0 {
		if len(b.chunks) == 0 || len(b.chunks[len(b.chunks)-1]) == cap(b.chunks[len(b.chunks)-1]) {
			b.chunks = append(b.chunks, make([]T, 0, min(64<<len(b.chunks), 8192)))
		}
		last := &b.chunks[len(b.chunks)-1]
		n := min(len(vs), cap(*last)-len(*last))
		*last = append(*last, vs[:n]...)
		b.n += n
		vs = vs[n:]
	}
}

// all returns everything added, in order; nil if nothing was.
func (b *buffer[T]) all() []T {
	if b.n == 0 {
		return nil
	}
	out := make([]T, 0, b.n)
	for _, c := range b.chunks {
		out = append(out, c...)
	}
	return out
}

// scanAll reads every row of rows with scan and closes rows.
func scanAll[T any](rows *sql.Rows, scan func(*sql.Rows) (T, error)) ([]T, error) {
	defer rows.Close()
	var buf buffer[T]
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		buf.add(v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return buf.all(), nil
}

// scanInto appends every row of rows, read with scan, to dst and closes
// rows.
func scanInto[T any](rows *sql.Rows, dst []T, scan func(*sql.Rows) (T, error)) ([]T, error) {
	defer rows.Close()
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		dst = append(dst, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(dst) == 0 {
		return nil, nil
	}
	return dst, nil
}

// interner shares one string among equal values read in one query, so
// that a report does not allocate the same scope or contractor name once
// per row. A nil interner allocates every string.
type interner map[string]string

func (in interner) str(b []byte) string {
	if in == nil {
		return string(b)
	}
	if s, ok := in[string(b)]; ok {
		return s
	}
	s := string(b)
	in[s] = s
	return s
}
