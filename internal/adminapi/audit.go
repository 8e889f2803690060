package adminapi

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"latchkey/internal/access"
	"latchkey/internal/audit"
)

// AuditRecord is one audit log record as the API shows it. LeafHash is
// tlog.RecordHash of the stored leaf (base64 in JSON), the tree's leaf.
type AuditRecord struct {
	Index      int64     `json:"index"`
	Time       time.Time `json:"time"`
	Actor      string    `json:"actor,omitempty"`
	ActorName  string    `json:"actor_name,omitempty"`
	Action     string    `json:"action"`
	Contractor string    `json:"contractor,omitempty"`
	TokenID    string    `json:"token_id,omitempty"`
	Service    string    `json:"service,omitempty"`
	Method     string    `json:"method,omitempty"`
	Path       string    `json:"path,omitempty"`
	Status     int       `json:"status,omitempty"`
	Decision   string    `json:"decision,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	Source     string    `json:"source,omitempty"`
	LeafHash   []byte    `json:"leaf_hash"`
}

// AuditPage is the reply to GET /v1/audit: records newest first; Next is
// the cursor (pass it as before=) for the following page, 0 at the end.
type AuditPage struct {
	Records []AuditRecord `json:"records"`
	Next    int64         `json:"next,omitempty"`
}

// SignedCheckpoint is the reply to GET /v1/audit/checkpoint: the text of
// a signed C2SP tlog-checkpoint, and what it says.
type SignedCheckpoint struct {
	Checkpoint string `json:"checkpoint"`
	Origin     string `json:"origin"`
	Size       int64  `json:"size"`
	Root       []byte `json:"root"`
}

// InclusionProof is the reply to GET /v1/audit/proof/{index}: the leaf
// and the hashes that prove it is record Index of the tree of Size
// records (tlog.CheckRecord).
type InclusionProof struct {
	Index  int64       `json:"index"`
	Size   int64       `json:"size"`
	Leaf   []byte      `json:"leaf"`
	Record AuditRecord `json:"record"`
	Proof  [][]byte    `json:"proof"`
}

// ConsistencyProof is the reply to GET /v1/audit/consistency: the hashes
// that prove the tree of New records extends the tree of Old records
// (tlog.CheckTree).
type ConsistencyProof struct {
	Old   int64    `json:"old"`
	New   int64    `json:"new"`
	Proof [][]byte `json:"proof"`
}

// ExportLine is one line of GET /v1/audit/export (JSON Lines): the stored
// leaf, enough with the public key to verify the log offline, and its
// leaf hash tlog.RecordHash(leaf).
type ExportLine struct {
	Index int64  `json:"index"`
	Leaf  []byte `json:"leaf"`
	Hash  []byte `json:"hash"`
}

func toAuditRecord(index int64, r audit.Record, leaf []byte) AuditRecord {
	h := tlog.RecordHash(leaf)
	return AuditRecord{index, r.Time, r.Actor, r.ActorName, r.Action, r.Contractor, r.TokenID, r.Service,
		r.Method, r.Path, r.Status, r.Decision, r.Reason, r.Source, h[:]}
}

func (s *Server) auditRoutes() []route {
	return []route{
		{"GET", "/v1/audit", "audit", "read", "Search the audit log, newest first", nil, AuditPage{},
			[]string{"contractor", "token", "service", "action", "decision", "since", "until", "before", "limit"}, 200, s.auditSearch},
		{"GET", "/v1/audit/checkpoint", "audit", "read", "Sign and return a checkpoint of the audit log now", nil, SignedCheckpoint{}, nil, 200, s.auditCheckpoint},
		{"GET", "/v1/audit/proof/{index}", "audit", "read", "Inclusion proof of one record", nil, InclusionProof{}, []string{"size"}, 200, s.auditProof},
		{"GET", "/v1/audit/consistency", "audit", "read", "Consistency proof between two tree sizes", nil, ConsistencyProof{}, []string{"old", "new"}, 200, s.auditConsistency},
		{"GET", "/v1/audit/export", "audit", "read", "Every record from ?from= as JSON Lines of {index, leaf}, for a SIEM or the offline verifier",
			nil, ExportLine{}, []string{"from"}, 200, s.auditExport},
	}
}

func (s *Server) auditSearch(ctx context.Context, c caller, r *http.Request) (int, any, error) {
	q := r.URL.Query()
	f := audit.Filter{Contractor: q.Get("contractor"), TokenID: q.Get("token"), Service: q.Get("service"),
		Action: q.Get("action"), Decision: q.Get("decision")}
	var err error
	if f.Since, err = s.parseTime("since", q.Get("since"), false); err != nil {
		return 0, nil, err
	}
	if f.Until, err = s.parseTime("until", q.Get("until"), false); err != nil {
		return 0, nil, err
	}
	if f.Before, err = intParam(q.Get("before"), 0, 1<<62); err != nil {
		return 0, nil, err
	}
	limit, err := intParam(q.Get("limit"), 0, audit.MaxSearch)
	if err != nil {
		return 0, nil, err
	}
	f.Limit = int(limit)
	if f.Limit == 0 {
		f.Limit = 100
	}
	switch f.Decision {
	case "", audit.Allow, audit.Deny:
	default:
		return 0, nil, invalid("invalid decision %q: want allow or deny", f.Decision)
	}
	if s.cfg.Audit != nil {
		// A search sees every record acknowledged before it.
		if err := s.cfg.Audit.Sync(ctx); err != nil {
			return 0, nil, err
		}
	}
	entries, err := s.cfg.AuditStorage.Search(ctx, f)
	if err != nil {
		return 0, nil, err
	}
	page := AuditPage{Records: make([]AuditRecord, 0, len(entries))}
	for _, e := range entries {
		page.Records = append(page.Records, toAuditRecord(e.Index, e.Record, e.Leaf))
	}
	if len(entries) == f.Limit {
		page.Next = entries[len(entries)-1].Index
	}
	return 200, page, nil
}

func (s *Server) auditCheckpoint(ctx context.Context, c caller, r *http.Request) (int, any, error) {
	cp, err := s.cfg.Checkpoints(ctx, true)
	if err != nil {
		return 0, nil, err
	}
	parsed, err := audit.ParseSigned(cp)
	if err != nil {
		return 0, nil, err
	}
	return 200, SignedCheckpoint{string(cp), parsed.Origin, parsed.Size, parsed.Root[:]}, nil
}

func (s *Server) auditProof(ctx context.Context, c caller, r *http.Request) (int, any, error) {
	size, err := s.cfg.Audit.Size(ctx)
	if err != nil {
		return 0, nil, err
	}
	index, err := intParam(r.PathValue("index"), 0, size-1)
	if err != nil {
		return 0, nil, &access.Error{Reason: access.ReasonNotFound, Msg: fmt.Sprintf("no audit record %q in a log of %d records", r.PathValue("index"), size)}
	}
	if raw := r.URL.Query().Get("size"); raw != "" {
		if size, err = intParam(raw, index+1, size); err != nil {
			return 0, nil, err
		}
	}
	rec, leaf, err := s.cfg.Audit.Record(ctx, index)
	if err != nil {
		return 0, nil, err
	}
	proof, err := s.cfg.Audit.ProveRecord(ctx, index, size)
	if err != nil {
		return 0, nil, err
	}
	return 200, InclusionProof{index, size, leaf, toAuditRecord(index, rec, leaf), hashes(proof)}, nil
}

func (s *Server) auditConsistency(ctx context.Context, c caller, r *http.Request) (int, any, error) {
	size, err := s.cfg.Audit.Size(ctx)
	if err != nil {
		return 0, nil, err
	}
	q := r.URL.Query()
	newSize := size
	if raw := q.Get("new"); raw != "" {
		if newSize, err = intParam(raw, 1, size); err != nil {
			return 0, nil, err
		}
	}
	oldSize, err := intParam(q.Get("old"), 1, newSize)
	if err != nil || q.Get("old") == "" {
		return 0, nil, invalid("old must be a tree size from 1 to %d", newSize)
	}
	proof, err := s.cfg.Audit.ProveTree(ctx, oldSize, newSize)
	if err != nil {
		return 0, nil, err
	}
	return 200, ConsistencyProof{oldSize, newSize, hashes(proof)}, nil
}

// auditExport streams every record from ?from= (default 0) as JSON Lines,
// with the log size at the start in the X-Latchkey-Audit-Size header.
func (s *Server) auditExport(ctx context.Context, c caller, r *http.Request) (int, any, error) {
	size, err := s.cfg.Audit.Size(ctx)
	if err != nil {
		return 0, nil, err
	}
	from, err := intParam(r.URL.Query().Get("from"), 0, size)
	if err != nil {
		return 0, nil, err
	}
	return 200, streamer(func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.Header().Set("X-Latchkey-Audit-Size", strconv.FormatInt(size, 10))
		bw := bufio.NewWriterSize(w, 64<<10)
		defer bw.Flush()
		enc := json.NewEncoder(bw)
		const chunk = 1000
		for i := from; i < size; i += chunk {
			leaves, err := s.cfg.AuditStorage.ReadLeaves(ctx, i, min(chunk, size-i))
			if err != nil {
				// The client sees fewer lines than the size header says.
				s.cfg.Log.Error("audit export failed", "index", i, "err", err)
				return
			}
			for j, leaf := range leaves {
				h := tlog.RecordHash(leaf)
				if enc.Encode(ExportLine{i + int64(j), leaf, h[:]}) != nil {
					return
				}
			}
		}
	}), nil
}

func hashes(p []tlog.Hash) [][]byte {
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = p[i][:]
	}
	return out
}

// intParam parses an optional decimal integer in [lo, hi]; "" is 0.
func intParam(raw string, lo, hi int64) (int64, error) {
	if raw == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, invalid("invalid number %q: want %d to %d", raw, lo, hi)
	}
	return n, nil
}
