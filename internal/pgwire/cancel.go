package pgwire

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"net"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// cancelKey is the gateway's BackendKeyData of one session and the
// upstream's, to which a matching CancelRequest is sent on.
type cancelKey struct {
	secret   [4]byte
	addr     string // upstream host:port
	pid      uint32
	upSecret []byte
}

// cancelKeys holds the cancel keys of live sessions, by process id.
type cancelKeys struct {
	mu sync.Mutex
	m  map[uint32]*cancelKey
}

// add registers a session's upstream key and returns the process id of
// the gateway's key for it, random and unused.
func (c *cancelKeys) add(addr string, pid uint32, secret []byte) uint32 {
	k := &cancelKey{addr: addr, pid: pid, upSecret: secret}
	rand.Read(k.secret[:])
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[uint32]*cancelKey)
	}
	for {
		var b [4]byte
		rand.Read(b[:])
		id := binary.BigEndian.Uint32(b[:]) &^ (1 << 31) // positive, as PostgreSQL's pids
		if _, taken := c.m[id]; !taken && id != 0 {
			c.m[id] = k
			return id
		}
	}
}

// secret returns the gateway's cancel secret of process id.
func (c *cancelKeys) secret(id uint32) [4]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if k := c.m[id]; k != nil {
		return k.secret
	}
	return [4]byte{}
}

// get returns the key of process id, or nil.
func (c *cancelKeys) get(id uint32) *cancelKey {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[id]
}

func (c *cancelKeys) remove(id uint32) {
	c.mu.Lock()
	delete(c.m, id)
	c.mu.Unlock()
}

// cancel sends a CancelRequest on to the upstream if its key is one the
// gateway gave out (compared in constant time); otherwise, like
// PostgreSQL, it does nothing and says nothing.
func (s *Server) cancel(m *pgproto3.CancelRequest) {
	s.cancels.mu.Lock()
	k := s.cancels.m[m.ProcessID]
	s.cancels.mu.Unlock()
	if k == nil || len(m.SecretKey) != 4 || subtle.ConstantTimeCompare(k.secret[:], m.SecretKey) != 1 {
		return
	}
	s.cancelUpstream(k)
}

// cancelUpstream sends the upstream a CancelRequest for session key k.
func (s *Server) cancelUpstream(k *cancelKey) {
	c, err := net.DialTimeout("tcp", k.addr, 5*time.Second)
	if err != nil {
		s.cfg.Log.Warn("pgwire: cannot forward a cancel request", "err", err)
		return
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	b, _ := (&pgproto3.CancelRequest{ProcessID: k.pid, SecretKey: k.upSecret}).Encode(nil)
	c.Write(b)
	var one [1]byte
	c.Read(one[:]) // the server closes the connection when done
}
