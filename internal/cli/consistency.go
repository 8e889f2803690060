package cli

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"latchkey/internal/adminapi"
	"latchkey/internal/audit"
)

// consistent is the JSON output of audit consistency.
type consistent struct {
	Old      int64  `json:"old_size"`
	New      int64  `json:"new_size"`
	OldRoot  []byte `json:"old_root"`
	NewRoot  []byte `json:"new_root"`
	Signed   bool   `json:"signatures_checked"`
	Verified bool   `json:"verified"`
}

func auditConsistencyCmd(g *globals) *cobra.Command {
	var oldPath, pub string
	c := &cobra.Command{
		Use:   "consistency --checkpoint FILE [--pub FILE]",
		Short: "Prove, and check locally, that the log still extends an older checkpoint",
		Long: `Fetch a freshly signed checkpoint and a consistency proof from the size of
the older checkpoint FILE to it, and check the proof locally: the server
cannot have rewritten or dropped any record the older checkpoint covers.
With --pub (audit.pub) both checkpoints' signatures are checked too.
Exit status 1 if the proof does not check.`,
		Args: cobra.NoArgs,
	}
	out := addOutput(c, formatText, formatJSON)
	c.Flags().StringVar(&oldPath, "checkpoint", "", "older signed checkpoint (required)")
	c.Flags().StringVar(&pub, "pub", "", "public key file (audit.pub) to check signatures")
	_ = c.MarkFlagRequired("checkpoint")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		old, err := loadCheckpoint(oldPath, pub)
		if err != nil {
			return err
		}
		return runAPI(cmd, g, out, func(ctx context.Context, cl *adminapi.Client) (consistent, error) {
			return checkConsistency(ctx, cl, old, pub)
		}, func(w io.Writer, r consistent) error {
			_, err := fmt.Fprintf(w, "verified: the log of %d records (root %s) extends the checkpoint of %d records (root %s)\n",
				r.New, base64.StdEncoding.EncodeToString(r.NewRoot), r.Old, base64.StdEncoding.EncodeToString(r.OldRoot))
			return err
		})
	}
	return c
}

// loadCheckpoint reads a signed checkpoint file, checking its signature if
// a public key file is given.
func loadCheckpoint(path, pub string) (audit.Checkpoint, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return audit.Checkpoint{}, usagef("--checkpoint: %v", err)
	}
	if pub == "" {
		return audit.ParseSigned(b)
	}
	v, err := audit.LoadVerifier(pub)
	if err != nil {
		return audit.Checkpoint{}, usagef("--pub: %v", err)
	}
	return audit.OpenCheckpoint(b, v)
}

func checkConsistency(ctx context.Context, cl *adminapi.Client, old audit.Checkpoint, pub string) (consistent, error) {
	scp, err := cl.AuditCheckpoint(ctx)
	if err != nil {
		return consistent{}, err
	}
	now, err := audit.ParseSigned([]byte(scp.Checkpoint))
	if pub != "" {
		var v note.Verifier
		if v, err = audit.LoadVerifier(pub); err == nil {
			now, err = audit.OpenCheckpoint([]byte(scp.Checkpoint), v)
		}
	}
	if err != nil {
		return consistent{}, fmt.Errorf("the server's checkpoint: %w", err)
	}
	r := consistent{Old: old.Size, New: now.Size, OldRoot: old.Root[:], NewRoot: now.Root[:], Signed: pub != ""}
	if old.Origin != now.Origin {
		return r, fmt.Errorf("the checkpoint is of log %q, the server's of %q", old.Origin, now.Origin)
	}
	if old.Size == 0 || old.Size == now.Size {
		if old.Size == now.Size && old.Root != now.Root || old.Size == 0 && old.Root != tlog.Hash(sha256.Sum256(nil)) {
			return r, fmt.Errorf("%w: same size %d, different root", audit.ErrNotExtend, old.Size)
		}
		r.Verified = true
		return r, nil
	}
	if now.Size < old.Size {
		return r, fmt.Errorf("the log has %d records, fewer than the checkpoint's %d: it was truncated", now.Size, old.Size)
	}
	p, err := cl.AuditConsistency(ctx, old.Size, now.Size)
	if err != nil {
		return r, err
	}
	proof := make(tlog.TreeProof, len(p.Proof))
	for i, h := range p.Proof {
		if len(h) != tlog.HashSize {
			return r, fmt.Errorf("malformed proof from the server")
		}
		copy(proof[i][:], h)
	}
	if err := tlog.CheckTree(proof, now.Size, now.Root, old.Size, old.Root); err != nil {
		return r, fmt.Errorf("%w: %v", audit.ErrNotExtend, err)
	}
	r.Verified = true
	return r, nil
}
