package pgwire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Wire limits.
const (
	// maxStartup is the largest startup packet accepted (PostgreSQL's
	// MAX_STARTUP_PACKET_LENGTH).
	maxStartup = 10000
	// maxPassword is the largest PasswordMessage accepted: a token is 53
	// bytes.
	maxPassword = 1024
	// DefaultMaxMessage is Config.MaxMessage's default.
	DefaultMaxMessage = 16 << 20
)

// Startup packet codes (the first 4 bytes after the length).
const (
	codeCancel = 80877102
	codeSSL    = 80877103
	codeGSSEnc = 80877104
)

var (
	errTooLarge = errors.New("pgwire: message too large")
	errProtocol = errors.New("pgwire: protocol violation")
)

// readStartup reads one startup-phase packet: a big-endian int32 length
// (counting itself) and that many bytes, at most maxStartup. It returns
// the decoded message: *pgproto3.StartupMessage (protocol 3.0 or 3.2, user
// required), *pgproto3.SSLRequest, *pgproto3.GSSEncRequest or
// *pgproto3.CancelRequest. Anything else is an error.
func readStartup(r io.Reader) (pgproto3.FrontendMessage, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n < 8 || n > maxStartup {
		return nil, fmt.Errorf("%w: startup packet of %d bytes", errProtocol, n)
	}
	body := make([]byte, n-4)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	return decodeStartup(body)
}

// decodeStartup decodes a startup packet's body (after the length).
func decodeStartup(body []byte) (pgproto3.FrontendMessage, error) {
	code := binary.BigEndian.Uint32(body)
	var msg interface {
		pgproto3.FrontendMessage
		Decode([]byte) error
	}
	switch code {
	case codeSSL, codeGSSEnc:
		if len(body) != 4 {
			return nil, fmt.Errorf("%w: encryption request of %d bytes", errProtocol, len(body))
		}
	}
	switch code {
	case codeSSL:
		msg = &pgproto3.SSLRequest{}
	case codeGSSEnc:
		msg = &pgproto3.GSSEncRequest{}
	case codeCancel:
		if len(body) != 12 { // protocol 3.0: a 4-byte key
			return nil, fmt.Errorf("%w: cancel request of %d bytes", errProtocol, len(body))
		}
		msg = &pgproto3.CancelRequest{}
	default:
		sm := &pgproto3.StartupMessage{}
		if err := sm.Decode(body); err != nil {
			return nil, fmt.Errorf("%w: %v", errProtocol, err)
		}
		if sm.Parameters["user"] == "" {
			return nil, fmt.Errorf("%w: no user in the startup message", errProtocol)
		}
		return sm, nil
	}
	if err := msg.Decode(body); err != nil {
		return nil, fmt.Errorf("%w: %v", errProtocol, err)
	}
	return msg, nil
}

// frame is one regular protocol message: its type byte and body.
type frame struct {
	typ  byte
	body []byte
}

// readFrame reads one regular message (type byte, int32 length counting
// itself, body) of at most max body bytes into buf (reused when large
// enough). The returned body aliases buf.
func readFrame(r *bufio.Reader, max int, buf []byte) (frame, []byte, error) {
	hdr, err := r.Peek(5)
	if err != nil {
		if len(hdr) == 0 && errors.Is(err, io.EOF) {
			return frame{}, buf, io.EOF
		}
		return frame{}, buf, io.ErrUnexpectedEOF
	}
	typ := hdr[0]
	n := int64(binary.BigEndian.Uint32(hdr[1:5]))
	if n < 4 {
		return frame{}, buf, fmt.Errorf("%w: message length %d", errProtocol, n)
	}
	if n-4 > int64(max) {
		return frame{}, buf, fmt.Errorf("%w: %d bytes, limit %d", errTooLarge, n-4, max)
	}
	r.Discard(5)
	size := int(n - 4)
	if cap(buf) < size {
		buf = make([]byte, size)
	}
	buf = buf[:size]
	if _, err := io.ReadFull(r, buf); err != nil {
		return frame{}, buf, io.ErrUnexpectedEOF
	}
	return frame{typ: typ, body: buf}, buf, nil
}

// appendFrame appends the encoding of f to dst.
func appendFrame(dst []byte, f frame) []byte {
	dst = append(dst, f.typ)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(f.body)+4))
	return append(dst, f.body...)
}

// encode appends the encoding of a message to dst; the message types this
// package sends always encode.
func encode(dst []byte, m pgproto3.BackendMessage) []byte {
	out, err := m.Encode(dst)
	if err != nil {
		panic(fmt.Sprintf("pgwire: cannot encode %T: %v", m, err))
	}
	return out
}

// SQLSTATE codes the gateway answers with.
const (
	codeInvalidPassword    = "28P01"
	codeInvalidAuthSpec    = "28000"
	codeInvalidCatalog     = "3D000"
	codeProtocolViolation  = "08P01"
	codeConnectionFailure  = "08006"
	codeAdminShutdown      = "57P01"
	codeSystemError        = "58000"
	codeLimitExceeded      = "54000"
	codeTooManyConnections = "53300"
)

// fatal returns a FATAL ErrorResponse "latchkey: REASON: MSG".
func fatal(code, reason, msg string) *pgproto3.ErrorResponse {
	return &pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: code,
		Message: "latchkey: " + reason + ": " + msg}
}
