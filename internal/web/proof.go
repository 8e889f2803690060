package web

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"

	"golang.org/x/mod/sumdb/tlog"

	"latchkey/internal/access"
	"latchkey/internal/audit"
)

// proofView is an inclusion proof of one record in the tree of a signed
// checkpoint, checked on the server before it is shown. The CLI's
// `audit prove` and `audit verify` are the checks an auditor runs
// without trusting this server.
type proofView struct {
	Index      int64
	Record     audit.Record
	LeafHash   string
	Checkpoint string // signed note text
	Size       int64
	Hashes     []string
	Checked    bool
}

func (h *Handler) proof(ctx context.Context, w http.ResponseWriter, u user) error {
	if h.cfg.AuditLog == nil || h.cfg.Checkpoints == nil {
		return &access.Error{Reason: access.ReasonNotFound, Msg: "this server does not prove audit records here"}
	}
	index, err := strconv.ParseInt(u.r.PathValue("index"), 10, 64)
	if err != nil || index < 0 {
		return &access.Error{Reason: access.ReasonNotFound, Msg: fmt.Sprintf("no audit record %q", u.r.PathValue("index"))}
	}
	// The latest signed checkpoint, if it covers the record; else a new
	// one, signed now.
	var cp []byte
	var c audit.Checkpoint
	if h.cfg.LatestCheckpoint != nil {
		if cp, _, err = h.cfg.LatestCheckpoint(ctx); err != nil {
			return err
		}
	}
	if cp != nil {
		if c, err = audit.ParseSigned(cp); err != nil {
			return err
		}
	}
	if cp == nil || index >= c.Size {
		if cp, err = h.cfg.Checkpoints(ctx, true); err != nil {
			return err
		}
		if c, err = audit.ParseSigned(cp); err != nil {
			return err
		}
		if index >= c.Size {
			return &access.Error{Reason: access.ReasonNotFound, Msg: fmt.Sprintf("no audit record %d in a log of %d records", index, c.Size)}
		}
	}
	rec, leaf, err := h.cfg.AuditLog.Record(ctx, index)
	if err != nil {
		return err
	}
	p, err := h.cfg.AuditLog.ProveRecord(ctx, index, c.Size)
	if err != nil {
		return err
	}
	lh := tlog.RecordHash(leaf)
	v := proofView{Index: index, Record: rec, LeafHash: base64.StdEncoding.EncodeToString(lh[:]),
		Checkpoint: string(cp), Size: c.Size, Checked: tlog.CheckRecord(p, c.Size, c.Root, index, lh) == nil}
	for _, x := range p {
		v.Hashes = append(v.Hashes, base64.StdEncoding.EncodeToString(x[:]))
	}
	h.render(w, &u, http.StatusOK, "proof", fmt.Sprintf("Audit record %d: inclusion proof", index), v)
	return nil
}
