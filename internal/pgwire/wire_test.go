package pgwire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgproto3"
)

func startupPacket(m pgproto3.FrontendMessage) []byte {
	b, err := m.Encode(nil)
	if err != nil {
		panic(err)
	}
	return b
}

func TestReadStartup(t *testing.T) {
	sm := &pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: map[string]string{"user": "alice", "database": "pg/app"}}
	got, err := readStartup(bytes.NewReader(startupPacket(sm)))
	if err != nil || !cmp.Equal(got, sm) {
		t.Fatalf("startup: %v %v", got, err)
	}
	for name, b := range map[string][]byte{
		"too long":     binary.BigEndian.AppendUint32(nil, maxStartup+1),
		"too short":    binary.BigEndian.AppendUint32(nil, 7),
		"no user":      startupPacket(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: map[string]string{"database": "x"}}),
		"version 2":    append(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 9), 2<<16), 0),
		"cancel short": binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 12), codeCancel), 1),
		"ssl long":     binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 12), codeSSL), 1),
	} {
		if _, err := readStartup(bytes.NewReader(b)); !errors.Is(err, errProtocol) {
			t.Errorf("%s: %v, want errProtocol", name, err)
		}
	}
}

func FuzzDecodeStartup(f *testing.F) {
	f.Add(startupPacket(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: map[string]string{"user": "alice", "database": "pg/app"}})[4:])
	f.Add(startupPacket(&pgproto3.SSLRequest{})[4:])
	f.Add(startupPacket(&pgproto3.CancelRequest{ProcessID: 1, SecretKey: []byte{1, 2, 3, 4}})[4:])
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) < 4 || len(body) > maxStartup {
			return
		}
		m, err := decodeStartup(body)
		if err != nil {
			return
		}
		again, err := decodeStartup(startupPacket(m)[4:])
		if err != nil || !cmp.Equal(m, again) {
			t.Fatalf("%T does not round-trip: %v", m, err)
		}
	})
}

func TestReadFrame(t *testing.T) {
	msg := appendFrame(nil, frame{typ: 'Q', body: []byte("SELECT 1\x00")})
	f, _, err := readFrame(bufio.NewReader(bytes.NewReader(msg)), 100, nil)
	if err != nil || f.typ != 'Q' || string(f.body) != "SELECT 1\x00" {
		t.Fatalf("%v %v", f, err)
	}
	if _, _, err := readFrame(bufio.NewReader(bytes.NewReader(msg)), 4, nil); !errors.Is(err, errTooLarge) {
		t.Fatalf("over the limit: %v", err)
	}
	if _, _, err := readFrame(bufio.NewReader(bytes.NewReader([]byte{'Q', 0, 0, 0, 3})), 100, nil); !errors.Is(err, errProtocol) {
		t.Fatalf("length 3: %v", err)
	}
	if _, _, err := readFrame(bufio.NewReader(bytes.NewReader(msg[:7])), 100, nil); err == nil {
		t.Fatal("short body accepted")
	}
}

// frames encodes client messages.
func frames(t testing.TB, ms ...pgproto3.FrontendMessage) []frame {
	var out []frame
	for _, m := range ms {
		b, err := m.Encode(nil)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, frame{typ: b[0], body: b[5:]})
	}
	return out
}

// TestStatementsCandidates: a reused name keeps the texts it may stand
// for, so that an Execute's record names whatever may run.
func TestStatementsCandidates(t *testing.T) {
	var s statements
	run := func(ms ...pgproto3.FrontendMessage) *statement {
		t.Helper()
		var last *statement
		for _, f := range frames(t, ms...) {
			st, err := s.observe(f)
			if err != nil {
				t.Fatal(err)
			}
			if st != nil {
				last = st
			}
		}
		return last
	}
	st := run(&pgproto3.Parse{Name: "s1", Query: "DELETE FROM items"}, &pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if text(st) != "DELETE FROM items" || st.kind != KindExecute {
		t.Fatalf("%+v", st)
	}
	// PostgreSQL refuses to Parse s1 again: the DELETE stays.
	st = run(&pgproto3.Parse{Name: "s1", Query: "SELECT 1"}, &pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if r := st.reason(); !strings.Contains(r, "DELETE FROM items /* or */ SELECT 1") || strings.Count(r, ",") != 1 {
		t.Fatalf("reused name: %q", r)
	}
	run(&pgproto3.Close{ObjectType: 'S', Name: "s1"})
	st = run(&pgproto3.Parse{Name: "s1", Query: "SELECT 2"}, &pgproto3.Bind{PreparedStatement: "s1", Parameters: [][]byte{[]byte("v"), nil}}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if text(st) != "SELECT 2" || st.nparams != 2 || len(st.params) != 32 {
		t.Fatalf("after Close: %+v", st)
	}
	// A named portal bound twice in one transaction keeps both bindings;
	// after an idle ReadyForQuery it is gone.
	run(&pgproto3.Parse{Name: "a", Query: "UPDATE items SET v = 'x'"}, &pgproto3.Parse{Name: "b", Query: "SELECT 3"})
	st = run(&pgproto3.Bind{DestinationPortal: "p", PreparedStatement: "a"}, &pgproto3.Bind{DestinationPortal: "p", PreparedStatement: "b"}, &pgproto3.Execute{Portal: "p"})
	if r := st.reason(); !strings.Contains(r, "UPDATE items") || !strings.Contains(r, "SELECT 3") {
		t.Fatalf("rebound portal: %q", r)
	}
	run(&pgproto3.Sync{})
	s.idleBelow.Store(s.syncs)
	st = run(&pgproto3.Bind{DestinationPortal: "p", PreparedStatement: "b"}, &pgproto3.Execute{Portal: "p"})
	if text(st) != "SELECT 3" {
		t.Fatalf("portal after its transaction: %q", text(st))
	}
	for range maxCandidates - 1 { // "a" has one already
		run(&pgproto3.Parse{Name: "a", Query: "SELECT 4"})
	}
	if _, err := s.observe(frames(t, &pgproto3.Parse{Name: "a", Query: "x"})[0]); err == nil {
		t.Fatal("unbounded candidates")
	}
	if _, err := s.observe(frame{typ: 'p', body: []byte("x\x00")}); err == nil {
		t.Fatal("password message after start accepted")
	}
}

func TestStatementReason(t *testing.T) {
	st := &statement{kind: KindQuery, texts: []sqlText{newSQLText(strings.Repeat("€", 600))}}
	r := st.reason()
	if len(r) > maxReason || !utf8.ValidString(r) || !strings.HasSuffix(r, "…[truncated]") {
		t.Fatalf("len %d, %q", len(r), r[len(r)-40:])
	}
	st = &statement{kind: KindQuery, texts: []sqlText{newSQLText("SELECT 1")}}
	if r := st.reason(); r != "sql_sha256=e004ebd5b5532a4b85984a62f8ad48a81aa3460c1ca07701f386135d72cdecf5 params=0 sql=SELECT 1" {
		t.Fatalf("%q", r)
	}
}

func FuzzStatements(f *testing.F) {
	var seed []byte
	for _, fr := range frames(f, &pgproto3.Parse{Name: "s", Query: "SELECT $1"}, &pgproto3.Bind{PreparedStatement: "s", Parameters: [][]byte{[]byte("secret")}},
		&pgproto3.Execute{}, &pgproto3.Sync{}, &pgproto3.Query{String: "SELECT 1"}, &pgproto3.Close{ObjectType: 'S', Name: "s"}) {
		seed = appendFrame(seed, fr)
	}
	f.Add(seed)
	f.Fuzz(func(t *testing.T, b []byte) {
		var s statements
		r := bufio.NewReader(bytes.NewReader(b))
		for {
			fr, _, err := readFrame(r, 1<<16, nil)
			if err != nil {
				return
			}
			st, err := s.observe(fr)
			if err != nil {
				return
			}
			if st == nil {
				continue
			}
			reason := st.reason()
			if len(reason) > maxReason || !utf8.ValidString(reason) || !strings.HasPrefix(reason, "sql_sha256=") {
				t.Fatalf("reason %q", reason)
			}
			if st.kind == KindExecute && strings.Contains(reason, "secret") && !strings.Contains(text(st), "secret") {
				t.Fatalf("a parameter value in the record: %q", reason)
			}
		}
	})
}

// text returns the one text of st.
func text(st *statement) string {
	if len(st.texts) != 1 {
		return fmt.Sprintf("%d texts", len(st.texts))
	}
	return st.texts[0].head
}
