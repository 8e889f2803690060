// Package audit implements latchkey's tamper-evident audit log: an
// append-only sequence of records that are the leaves of an RFC 6962
// Merkle tree (golang.org/x/mod/sumdb/tlog), with signed checkpoints in the
// C2SP tlog-checkpoint format (golang.org/x/mod/sumdb/note).
//
// A [Log] appends records with group commit: concurrent callers share one
// storage transaction, and each returns only once its record is committed,
// or with an error if it is not (fail closed). [Log.Verify] recomputes every
// stored hash from the records and names the first bad index;
// [CheckExtends] proves that the log still extends an older signed
// checkpoint, which is what catches a truncated tail.
//
// # Record encoding, version 1
//
// A record is stored, hashed and exported as its leaf: the bytes of
// [Record.Encode]. The encoding is canonical: a record has exactly one
// encoding, and [Decode] accepts nothing else. Byte by byte:
//
//	offset  size     field
//	0       1        version: 0x01
//	1       8        Time: unix nanoseconds (UTC), int64 two's complement, big-endian
//	9       string   Actor
//	        string   ActorName
//	        string   Action
//	        string   Contractor
//	        string   TokenID
//	        string   Service
//	        string   Method
//	        string   Path
//	        uvarint  Status
//	        string   Decision
//	        string   Reason
//	        string   Source
//
// where uvarint is an unsigned LEB128 varint (encoding/binary.AppendUvarint)
// in its shortest form, and string is a uvarint byte length followed by that
// many bytes of valid UTF-8. Nothing follows Source. Limits: each string is
// at most [MaxField] bytes, Status is at most 999, Decision is "", "allow"
// or "deny", Action is not empty, and the whole leaf is at most
// [MaxLeafSize] bytes. A future incompatible encoding takes a new version
// byte; a version-1 decoder refuses it.
//
// The leaf hash is tlog.RecordHash(leaf) = SHA-256(0x00 || leaf).
package audit

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// Version is the leading byte of every leaf this package writes.
const Version = 0x01

// Limits on a record, checked by [Record.Validate] and [Decode].
const (
	MaxField    = 4096 // bytes in one string field
	MaxLeafSize = 8192 // bytes in one encoded record
	maxStatus   = 999
)

// Decisions of a gateway request. Admin actions leave Decision empty.
const (
	Allow = "allow"
	Deny  = "deny"
)

// Record is one audited event. No secret ever goes into a record: tokens
// appear only by their public id.
type Record struct {
	Time       time.Time // when it happened; stored to the nanosecond, in UTC
	Actor      string    // token id of whoever acted (admin or contractor token)
	ActorName  string    // identity behind Actor, e.g. a contractor or admin name
	Action     string    // e.g. "token.issue", "grant.revoke", "gateway.request"
	Contractor string    // contractor concerned, if any
	TokenID    string    // token concerned, if any
	Service    string    // service concerned, if any
	Method     string    // HTTP method of a gateway request
	Path       string    // request path as authorized (escaped form, valid UTF-8)
	Status     int       // HTTP status returned, 0 if none
	Decision   string    // Allow, Deny, or "" for admin actions
	Reason     string    // why: a denial reason, a note
	Source     string    // client address
}

// ErrMalformed: a leaf is not a valid, canonical version-1 encoding.
var ErrMalformed = errors.New("audit: malformed record")

// fields returns pointers to the string fields of r in encoding order;
// Status comes between fields[statusAt-1] and fields[statusAt].
func (r *Record) fields() [11]*string {
	return [11]*string{&r.Actor, &r.ActorName, &r.Action, &r.Contractor,
		&r.TokenID, &r.Service, &r.Method, &r.Path, &r.Decision, &r.Reason, &r.Source}
}

const statusAt = 8

var fieldNames = [...]string{"actor", "actor name", "action", "contractor",
	"token id", "service", "method", "path", "decision", "reason", "source"}

// Validate reports whether r can be encoded and decoded back unchanged:
// a time representable in int64 unix nanoseconds, string fields of valid
// UTF-8 within [MaxField], a non-empty Action, a Status in 0..999, a
// known Decision, and an encoding within [MaxLeafSize].
func (r Record) Validate() error {
	if r.Time.IsZero() || !time.Unix(0, r.Time.UnixNano()).Equal(r.Time) {
		return fmt.Errorf("%w: time %v out of range", ErrMalformed, r.Time)
	}
	for i, p := range r.fields() {
		if len(*p) > MaxField {
			return fmt.Errorf("%w: %s longer than %d bytes", ErrMalformed, fieldNames[i], MaxField)
		}
		if !utf8.ValidString(*p) {
			return fmt.Errorf("%w: %s is not valid UTF-8", ErrMalformed, fieldNames[i])
		}
	}
	if r.Action == "" {
		return fmt.Errorf("%w: empty action", ErrMalformed)
	}
	if r.Status < 0 || r.Status > maxStatus {
		return fmt.Errorf("%w: status %d out of range", ErrMalformed, r.Status)
	}
	switch r.Decision {
	case "", Allow, Deny:
	default:
		return fmt.Errorf("%w: unknown decision %q", ErrMalformed, r.Decision)
	}
	if n := r.size(); n > MaxLeafSize {
		return fmt.Errorf("%w: %d bytes encoded, limit %d", ErrMalformed, n, MaxLeafSize)
	}
	return nil
}

// size is the length of r's encoding.
func (r Record) size() int {
	n := 1 + 8 + uvarintLen(uint64(r.Status))
	for _, p := range r.fields() {
		n += uvarintLen(uint64(len(*p))) + len(*p)
	}
	return n
}

func uvarintLen(v uint64) int {
	n := 1
	for ; v >= 0x80; v >>= 7 {
		n++
	}
	return n
}

// Encode returns the canonical version-1 leaf of r (see the package doc).
// Only a record that passes [Record.Validate] decodes back to itself.
func (r Record) Encode() []byte {
	b := make([]byte, 0, r.size())
	b = append(b, Version)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Time.UnixNano()))
	for i, p := range r.fields() {
		if i == statusAt {
			b = binary.AppendUvarint(b, uint64(r.Status))
		}
		b = appendString(b, *p)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// Decode parses a version-1 leaf. It is strict: it refuses an unknown
// version, a varint not in its shortest form, a length past the end or
// over a limit, invalid UTF-8, an invalid record (see [Record.Validate])
// and trailing bytes, all with an error wrapping [ErrMalformed]. The
// returned Time is in UTC.
func Decode(b []byte) (Record, error) {
	var r Record
	if len(b) > MaxLeafSize {
		return r, fmt.Errorf("%w: %d bytes, limit %d", ErrMalformed, len(b), MaxLeafSize)
	}
	if len(b) < 9 {
		return r, fmt.Errorf("%w: short", ErrMalformed)
	}
	if b[0] != Version {
		return r, fmt.Errorf("%w: unknown version %#x", ErrMalformed, b[0])
	}
	r.Time = time.Unix(0, int64(binary.BigEndian.Uint64(b[1:9]))).UTC()
	d := decoder{b: b[9:]}
	for i, p := range r.fields() {
		if i == statusAt {
			r.Status = int(d.uvarint(maxStatus))
		}
		*p = d.string()
	}
	if d.err != nil {
		return Record{}, d.err
	}
	if len(d.b) != 0 {
		return Record{}, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(d.b))
	}
	if err := r.Validate(); err != nil {
		return Record{}, err
	}
	return r, nil
}

// decoder reads fields from b, keeping the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint(limit uint64) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	switch {
	case n <= 0:
		d.err = fmt.Errorf("%w: bad varint", ErrMalformed)
	case n != uvarintLen(v):
		d.err = fmt.Errorf("%w: non-canonical varint", ErrMalformed)
	case v > limit:
		d.err = fmt.Errorf("%w: value %d over limit %d", ErrMalformed, v, limit)
	default:
		d.b = d.b[n:]
		return v
	}
	return 0
}

func (d *decoder) string() string {
	n := d.uvarint(MaxField)
	if d.err != nil {
		return ""
	}
	if uint64(len(d.b)) < n {
		d.err = fmt.Errorf("%w: string past end", ErrMalformed)
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
