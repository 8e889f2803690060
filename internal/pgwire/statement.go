package pgwire

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Limits on what a session tracks of the extended protocol.
const (
	maxStatements = 2048 // named prepared statements and portals, each
	maxCandidates = 4    // texts one name may stand for (see statements)
	// maxReason is the longest statement reason written: access caps
	// every audit field at 1024 bytes.
	maxReason = 1000
)

// Statement kinds, the Method of a db.statement record: the protocol
// message that runs the statement.
const (
	KindQuery    = "Query"
	KindExecute  = "Execute"
	KindFunction = "FunctionCall"
)

// sqlText is a statement's text as a session keeps it: its first
// maxReason bytes (all a record can show) and the SHA-256 of all of it,
// so that a session's memory does not grow with the texts it prepares.
type sqlText struct {
	head string
	sum  [32]byte
}

func newSQLText(s string) sqlText {
	t := sqlText{head: s, sum: sha256.Sum256([]byte(s))}
	if len(s) > maxReason {
		t.head = strings.Clone(s[:maxReason])
	}
	return t
}

// statement is what one db.statement record says.
type statement struct {
	kind    string
	texts   []sqlText // the statement's text, or several candidates (see statements)
	nparams int
	params  []byte // SHA-256 of the parameter values (see hashParams); nil without parameters
}

// reason formats a statement record's reason:
//
//	sql_sha256=HEX[,HEX...] params=N [params_sha256=HEX] sql=TEXT
//
// sql_sha256 is the SHA-256 of the whole text (of each candidate, when
// several may have run, TEXT then naming them all, separated by
// " /* or */ "); TEXT is cut, at a UTF-8 boundary, so that the reason fits
// maxReason bytes, and then ends with "…[truncated]". params_sha256 is
// present when N > 0. Parameter values themselves never appear.
func (st *statement) reason() string {
	var b strings.Builder
	b.WriteString("sql_sha256=")
	heads := make([]string, len(st.texts))
	for i, t := range st.texts {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(hex.EncodeToString(t.sum[:]))
		heads[i] = t.head
	}
	text := strings.Join(heads, " /* or */ ")
	if len(st.texts) > 1 {
		text = "/* latchkey: one of these ran */ " + text
	}
	b.WriteString(" params=")
	b.WriteString(strconv.Itoa(st.nparams))
	if st.params != nil {
		b.WriteString(" params_sha256=")
		b.WriteString(hex.EncodeToString(st.params))
	}
	b.WriteString(" sql=")
	text = strings.ToValidUTF8(text, "\uFFFD")
	const marker = "…[truncated]"
	if room := maxReason - b.Len(); len(text) > room {
		cut := room - len(marker)
		for cut > 0 && !utf8.RuneStart(text[cut]) {
			cut--
		}
		text = text[:cut] + marker
	}
	b.WriteString(text)
	return b.String()
}

// hashParams returns the SHA-256 of parameter values as they are on the
// wire: for each, its length as a big-endian uint32 (0xFFFFFFFF for NULL)
// and its bytes. An auditor who knows the values can recompute it; the
// log never holds them.
func hashParams(values [][]byte) []byte {
	h := sha256.New()
	var n [4]byte
	for _, v := range values {
		l := uint32(len(v))
		if v == nil {
			l = 0xFFFFFFFF
		}
		binary.BigEndian.PutUint32(n[:], l)
		h.Write(n[:])
		h.Write(v)
	}
	return h.Sum(nil)
}

// binding is what a portal was bound from.
type binding struct {
	texts   []sqlText // the candidate texts of its statement
	nparams int
	params  []byte
	seq     int64 // sync points sent before the Bind
}

// statements tracks a session's prepared statements and portals so that
// an Execute is audited with the text it runs. The gateway does not read
// the upstream's answers (but ReadyForQuery), so when a client reuses a
// name that may still exist upstream (PostgreSQL then refuses the new
// Parse or Bind and keeps the old one), both are kept as candidates and
// the record names all of them: a record may say more than ran, never
// less. A portal is known to be gone once a ReadyForQuery with status idle
// answers a sync point sent after its Bind (idleBelow).
type statements struct {
	stmts   map[string][]sqlText
	portals map[string][]binding
	syncs   int64 // sync points (Sync, Query, FunctionCall) sent
	// idleBelow is the count of ReadyForQuery messages, at the last idle one.
	idleBelow atomic.Int64
}

// observe notes a client message and returns the statement to audit
// before forwarding it, if it runs one. An error is a protocol violation
// or a limit exceeded: the session ends.
func (s *statements) observe(f frame) (*statement, error) {
	switch f.typ {
	case 'Q':
		var m pgproto3.Query
		if err := m.Decode(f.body); err != nil {
			return nil, fmt.Errorf("invalid Query message")
		}
		s.syncs++
		return &statement{kind: KindQuery, texts: []sqlText{newSQLText(m.String)}}, nil
	case 'P':
		var m pgproto3.Parse
		if err := m.Decode(f.body); err != nil {
			return nil, fmt.Errorf("invalid Parse message")
		}
		return nil, s.parse(m.Name, m.Query)
	case 'B':
		var m pgproto3.Bind
		if err := m.Decode(f.body); err != nil {
			return nil, fmt.Errorf("invalid Bind message")
		}
		return nil, s.bind(&m)
	case 'E':
		var m pgproto3.Execute
		if err := m.Decode(f.body); err != nil {
			return nil, fmt.Errorf("invalid Execute message")
		}
		return s.execute(m.Portal), nil
	case 'F':
		var m pgproto3.FunctionCall
		if err := m.Decode(f.body); err != nil {
			return nil, fmt.Errorf("invalid FunctionCall message")
		}
		s.syncs++
		st := &statement{kind: KindFunction, texts: []sqlText{newSQLText(fmt.Sprintf("function call oid %d", m.Function))}, nparams: len(m.Arguments)}
		if len(m.Arguments) > 0 {
			st.params = hashParams(m.Arguments)
		}
		return st, nil
	case 'C':
		var m pgproto3.Close
		if err := m.Decode(f.body); err != nil {
			return nil, fmt.Errorf("invalid Close message")
		}
		if m.ObjectType == 'S' {
			delete(s.stmts, m.Name)
		} else {
			delete(s.portals, m.Name)
		}
	case 'S':
		s.syncs++
	case 'D', 'H', 'd', 'c', 'f', 'X':
	default:
		return nil, fmt.Errorf("unexpected message type %q", f.typ)
	}
	return nil, nil
}

// parse notes a Parse. The unnamed statement is always replaced
// (PostgreSQL drops it first); a named one already known gains a
// candidate.
func (s *statements) parse(name, query string) error {
	if s.stmts == nil {
		s.stmts = make(map[string][]sqlText)
	}
	text := newSQLText(query)
	old, ok := s.stmts[name]
	switch {
	case name == "" || !ok:
		if !ok && len(s.stmts) >= maxStatements {
			return fmt.Errorf("more than %d prepared statements: close some", maxStatements)
		}
		s.stmts[name] = []sqlText{text}
	case len(old) >= maxCandidates:
		return fmt.Errorf("prepared statement %q parsed %d times without Close", name, maxCandidates)
	default:
		s.stmts[name] = append(old, text)
	}
	return nil
}

// bind notes a Bind.
func (s *statements) bind(m *pgproto3.Bind) error {
	if s.portals == nil {
		s.portals = make(map[string][]binding)
	}
	texts, ok := s.stmts[m.PreparedStatement]
	if !ok {
		texts = []sqlText{newSQLText(fmt.Sprintf("(prepared statement %q, not parsed by this session's protocol messages: see its PREPARE)", m.PreparedStatement))}
	}
	b := binding{texts: texts, nparams: len(m.Parameters), seq: s.syncs}
	if len(m.Parameters) > 0 {
		b.params = hashParams(m.Parameters)
	}
	dead := s.idleBelow.Load()
	old := s.portals[m.DestinationPortal]
	live := old[:0]
	for _, o := range old {
		if o.seq >= dead {
			live = append(live, o)
		}
	}
	switch {
	case m.DestinationPortal == "" || len(live) == 0:
		if len(old) == 0 && len(s.portals) >= maxStatements {
			return fmt.Errorf("more than %d portals: close some", maxStatements)
		}
		s.portals[m.DestinationPortal] = []binding{b}
	case len(live) >= maxCandidates:
		return fmt.Errorf("portal %q bound %d times in one transaction", m.DestinationPortal, maxCandidates)
	default:
		s.portals[m.DestinationPortal] = append(live, b)
	}
	return nil
}

// execute returns the statement an Execute of portal runs.
func (s *statements) execute(portal string) *statement {
	bs := s.portals[portal]
	if len(bs) == 0 {
		return &statement{kind: KindExecute, texts: []sqlText{newSQLText(fmt.Sprintf("(portal %q, not bound by this session's protocol messages: a cursor?)", portal))}}
	}
	if len(bs) == 1 {
		return &statement{kind: KindExecute, texts: bs[0].texts, nparams: bs[0].nparams, params: bs[0].params}
	}
	// Several bindings: name every text, with a hash of all parameters.
	h := sha256.New()
	st := &statement{kind: KindExecute}
	n := 0
	for _, b := range bs {
		st.texts = append(st.texts, b.texts...)
		h.Write(b.params)
		n += b.nparams
	}
	st.nparams = n
	if n > 0 {
		st.params = h.Sum(nil)
	}
	return st
}

// limit returns a reader of the next n bytes of r.
func limit(r io.Reader, n int) io.Reader { return io.LimitReader(r, int64(n)) }
