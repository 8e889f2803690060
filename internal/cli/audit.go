package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"latchkey/internal/adminapi"
	"latchkey/internal/audit"
	"latchkey/internal/auditfile"
	"latchkey/internal/server"
)

func auditCmd(g *globals) *cobra.Command {
	return group("audit", "Search, prove, export and verify the tamper-evident audit log",
		auditSearchCmd(g), auditCheckpointCmd(g), auditProveCmd(g), auditConsistencyCmd(g), auditExportCmd(g), auditVerifyCmd(), auditIndexCmd())
}

func auditSearchCmd(g *globals) *cobra.Command {
	var q adminapi.AuditQuery
	c := &cobra.Command{
		Use:   "search [--contractor C] [--token ID] [--service S] [--action A] [--decision allow|deny] [--since T] [--until T] [--limit N] [--before CURSOR]",
		Short: "Find audit records, newest first",
		Long: `Find audit records, newest first, one page at a time (--limit, default 100,
at most 1000). When there are more, a hint on stderr gives the cursor for
the next page: pass it as --before. Times are RFC 3339 or relative (8h, 30d).

--output json gives the page: {"records": [...], "next": CURSOR}.

Here --token is the token filter, as in "latchkey token list": it shadows
the global --token, so give the admin token in $LATCHKEY_TOKEN.`,
		Args: cobra.NoArgs,
	}
	out := addOutput(c, formatTable, formatJSON)
	f := c.Flags()
	f.StringVar(&q.Contractor, "contractor", "", "only records about this contractor")
	f.StringVar(&q.Token, "token", "", "only records about this token id")
	f.StringVar(&q.Service, "service", "", "only records about this service")
	f.StringVar(&q.Action, "action", "", "only this action, e.g. token.issue, admin.request")
	f.StringVar(&q.Decision, "decision", "", "only allow or deny")
	f.StringVar(&q.Since, "since", "", "only records at or after this time")
	f.StringVar(&q.Until, "until", "", "only records before this time")
	f.IntVar(&q.Limit, "limit", 0, "records per page, 1 to 1000 (default 100)")
	f.Int64Var(&q.Before, "before", 0, "cursor: only records with an index below it")
	_ = c.RegisterFlagCompletionFunc("decision", cobra.FixedCompletions([]string{audit.Allow, audit.Deny}, cobra.ShellCompDirectiveNoFileComp))
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := checkSearch(cmd, &q); err != nil {
			return err
		}
		return runAPI(cmd, g, out, func(ctx context.Context, c *adminapi.Client) (adminapi.AuditPage, error) {
			p, err := c.AuditSearch(ctx, q)
			p.Records = nonNil(p.Records)
			if err == nil && p.Next > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "more records: add --before %d for the next page\n", p.Next)
			}
			return p, err
		}, auditTable)
	}
	return c
}

// checkSearch refuses malformed search flags before any request, and
// reads a token text given to --token as its id.
func checkSearch(cmd *cobra.Command, q *adminapi.AuditQuery) error {
	switch q.Decision {
	case "", audit.Allow, audit.Deny:
	default:
		return usagef("--decision %q: want allow or deny", trunc(q.Decision))
	}
	if err := checkTime("since", q.Since); err != nil {
		return err
	}
	if err := checkTime("until", q.Until); err != nil {
		return err
	}
	if cmd.Flags().Changed("limit") && (q.Limit < 1 || q.Limit > audit.MaxSearch) {
		return usagef("--limit %d: want 1 to %d", q.Limit, audit.MaxSearch)
	}
	if cmd.Flags().Changed("before") && q.Before < 1 {
		return usagef("--before %d: want a cursor printed by a previous search", q.Before)
	}
	if q.Token != "" {
		id, err := tokenID(q.Token)
		if err != nil {
			return err
		}
		q.Token = id
	}
	return nil
}

// auditTable writes a page of records as a table.
func auditTable(w io.Writer, p adminapi.AuditPage) error {
	t := newTable(w, "INDEX", "TIME", "ACTION", "DECISION", "ACTOR", "CONTRACTOR", "TOKEN", "SERVICE", "METHOD", "PATH", "STATUS", "REASON")
	for _, r := range p.Records {
		status := ""
		if r.Status != 0 {
			status = strconv.Itoa(r.Status)
		}
		t.row(strconv.FormatInt(r.Index, 10), r.Time.UTC().Format(time.RFC3339Nano), r.Action, r.Decision, r.Actor,
			r.Contractor, r.TokenID, r.Service, r.Method, r.Path, status, r.Reason)
	}
	return t.flush()
}

func auditCheckpointCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "checkpoint [--output json]",
		Short: "Print a freshly signed checkpoint of the audit log",
		Long: `Have the server sign a checkpoint of the audit log as it is now and print it
exactly, so that "latchkey audit checkpoint > cp.txt" saves it for a later
"latchkey audit verify --checkpoint cp.txt". It is a C2SP tlog-checkpoint:
the log's name, its size and its base64 root hash, one a line, then a
blank line and the Ed25519 signature line.`,
		Args: cobra.NoArgs,
	}
	out := addOutput(c, formatText, formatJSON)
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		return runAPI(cmd, g, out, func(ctx context.Context, c *adminapi.Client) (adminapi.SignedCheckpoint, error) {
			return c.AuditCheckpoint(ctx)
		}, func(w io.Writer, cp adminapi.SignedCheckpoint) error {
			_, err := io.WriteString(w, cp.Checkpoint)
			return err
		})
	}
	return c
}

// proved is the JSON output of audit prove.
type proved struct {
	Index    int64                `json:"index"`
	Size     int64                `json:"size"`
	Root     []byte               `json:"root"`
	Signed   bool                 `json:"signature_checked"`
	Record   adminapi.AuditRecord `json:"record"`
	Verified bool                 `json:"verified"`
}

func auditProveCmd(g *globals) *cobra.Command {
	var size int64
	var pub string
	c := &cobra.Command{
		Use:   "prove INDEX [--size N] [--pub FILE]",
		Short: "Prove, and check locally, that one record is in the log",
		Long: `Fetch a freshly signed checkpoint and the inclusion proof of record INDEX, and
check the proof here, against the checkpoint's root: the server is not
trusted. With --pub (the log's audit.pub) the checkpoint's signature is
checked too; without, it is only parsed. With --size N the record is
proved in the tree of the first N records, and a consistency proof shows
that the signed checkpoint extends that tree.

Exit status 1 if a proof does not check.`,
		Args: cobra.ExactArgs(1),
	}
	out := addOutput(c, formatTable, formatJSON)
	c.Flags().Int64Var(&size, "size", 0, "prove in the tree of the first N records (default: the whole signed log)")
	c.Flags().StringVar(&pub, "pub", "", "public key file (audit.pub) to check the checkpoint's signature with")
	c.RunE = func(cmd *cobra.Command, args []string) error {
		index, err := strconv.ParseInt(args[0], 10, 64)
		if err != nil || index < 0 {
			return usagef("invalid INDEX %q: want a record index, 0 or more", trunc(args[0]))
		}
		if cmd.Flags().Changed("size") && size <= index {
			return usagef("--size %d: want more than INDEX %d", size, index)
		}
		var v note.Verifier
		if pub != "" {
			if v, err = audit.LoadVerifier(pub); err != nil {
				return usagef("--pub: %v", err)
			}
		}
		cl, err := g.client()
		if err != nil {
			return err
		}
		p, err := prove(cmd.Context(), cl, index, size, v)
		if err != nil {
			return err
		}
		if out.json() {
			return writeJSON(cmd.OutOrStdout(), p)
		}
		return printProved(cmd, p)
	}
	return c
}

// prove fetches a signed checkpoint and the proofs, and checks them.
func prove(ctx context.Context, cl *adminapi.Client, index, size int64, v note.Verifier) (proved, error) {
	sc, err := cl.AuditCheckpoint(ctx)
	if err != nil {
		return proved{}, err
	}
	cp, err := openCheckpoint([]byte(sc.Checkpoint), v)
	if err != nil {
		return proved{}, fmt.Errorf("the server's checkpoint: %w", err)
	}
	if size == 0 {
		size = cp.Size
	}
	if index >= size || size > cp.Size {
		return proved{}, fmt.Errorf("record %d is not in the signed log of %d records", index, cp.Size)
	}
	ip, err := cl.AuditProof(ctx, index, size)
	if err != nil {
		return proved{}, err
	}
	leaf := tlog.RecordHash(ip.Leaf)
	proof := toHashes(ip.Proof)
	if ip.Index != index || ip.Size != size || proof == nil {
		return proved{}, fmt.Errorf("the server answered a proof for record %d of %d, not %d of %d", ip.Index, ip.Size, index, size)
	}
	root := cp.Root
	if size < cp.Size {
		// The record is in the tree of size records, whose root the
		// proof gives, and the signed tree extends that one.
		if root, err = auditfile.RecordRoot(proof, size, index, leaf); err != nil {
			return proved{}, fmt.Errorf("inclusion proof of record %d does not check: %v", index, err)
		}
		cons, err := cl.AuditConsistency(ctx, size, cp.Size)
		if err != nil {
			return proved{}, err
		}
		tp := toHashes(cons.Proof)
		if tp == nil || tlog.CheckTree(tp, cp.Size, cp.Root, size, root) != nil {
			return proved{}, fmt.Errorf("consistency proof from %d to %d records does not check: the log was rewritten", size, cp.Size)
		}
	}
	if err := tlog.CheckRecord(proof, size, root, index, leaf); err != nil {
		return proved{}, fmt.Errorf("inclusion proof of record %d does not check against the root of %d records: %v", index, size, err)
	}
	rec, err := audit.Decode(ip.Leaf)
	if err != nil {
		return proved{}, fmt.Errorf("record %d: %w", index, err)
	}
	ar := toRecord(index, rec, ip.Leaf)
	return proved{Index: index, Size: cp.Size, Root: cp.Root[:], Signed: v != nil, Record: ar, Verified: true}, nil
}

// toRecord is the API form of a record whose leaf was checked here: its
// fields come from the leaf, not from what the server said.
func toRecord(index int64, r audit.Record, leaf []byte) adminapi.AuditRecord {
	h := tlog.RecordHash(leaf)
	return adminapi.AuditRecord{Index: index, Time: r.Time, Actor: r.Actor, ActorName: r.ActorName, Action: r.Action,
		Contractor: r.Contractor, TokenID: r.TokenID, Service: r.Service, Method: r.Method, Path: r.Path,
		Status: r.Status, Decision: r.Decision, Reason: r.Reason, Source: r.Source, LeafHash: h[:]}
}

// toHashes converts proof hashes from the wire; nil if one is not 32 bytes.
func toHashes(b [][]byte) []tlog.Hash {
	out := make([]tlog.Hash, len(b))
	for i := range b {
		if len(b[i]) != tlog.HashSize {
			return nil
		}
		copy(out[i][:], b[i])
	}
	return out
}

func printProved(cmd *cobra.Command, p proved) error {
	r := p.Record
	status := ""
	if r.Status != 0 {
		status = strconv.Itoa(r.Status)
	}
	w := cmd.OutOrStdout()
	err := fields(w,
		[2]string{"INDEX", strconv.FormatInt(r.Index, 10)},
		[2]string{"TIME", r.Time.UTC().Format(time.RFC3339Nano)},
		[2]string{"ACTION", r.Action},
		[2]string{"DECISION", r.Decision},
		[2]string{"ACTOR", r.Actor},
		[2]string{"ACTOR NAME", r.ActorName},
		[2]string{"CONTRACTOR", r.Contractor},
		[2]string{"TOKEN", r.TokenID},
		[2]string{"SERVICE", r.Service},
		[2]string{"METHOD", r.Method},
		[2]string{"PATH", r.Path},
		[2]string{"STATUS", status},
		[2]string{"REASON", r.Reason},
		[2]string{"SOURCE", r.Source},
		[2]string{"LEAF HASH", base64.StdEncoding.EncodeToString(r.LeafHash)},
	)
	if err != nil {
		return err
	}
	if !p.Signed {
		fmt.Fprintln(cmd.ErrOrStderr(), "checkpoint signature not checked: pass --pub FILE (the log's audit.pub) to check it")
	}
	_, err = fmt.Fprintf(w, "verified: record %d is in the log of %d records (root %s)\n",
		p.Index, p.Size, base64.StdEncoding.EncodeToString(p.Root))
	return err
}

// openCheckpoint verifies a signed checkpoint with v and parses it, or
// without v only parses its text.
func openCheckpoint(b []byte, v note.Verifier) (audit.Checkpoint, error) {
	if v != nil {
		return audit.OpenCheckpoint(b, v)
	}
	text, _, ok := bytes.Cut(b, []byte("\n\n"))
	if !ok {
		return audit.Checkpoint{}, fmt.Errorf("%w: no signature block", audit.ErrCheckpoint)
	}
	return audit.ParseCheckpoint(string(text) + "\n")
}

func auditExportCmd(g *globals) *cobra.Command {
	var from int64
	var file string
	c := &cobra.Command{
		Use:   "export [--from N] [--file F]",
		Short: "Export the audit log as JSON Lines, for a SIEM or the offline verifier",
		Long: `Write every record from index --from on as JSON Lines, {"index": N, "leaf":
BASE64} with the leaf in its documented encoding, to stdout or --file.
With the log's public key, an export from 0 is all that
"latchkey audit verify --export" needs. A progress line is shown on stderr
when it is a terminal.`,
		Args: cobra.NoArgs,
	}
	c.Flags().Int64Var(&from, "from", 0, "first record index")
	c.Flags().StringVar(&file, "file", "", "write to this file (created with mode 0600) instead of stdout")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		if from < 0 {
			return usagef("--from %d: want 0 or more", from)
		}
		cl, err := g.client()
		if err != nil {
			return err
		}
		w := cmd.OutOrStdout()
		var f *os.File
		if file != "" {
			if f, err = os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600); err != nil {
				return err
			}
			defer f.Close()
			w = f
		}
		bar := newProgress(cmd.ErrOrStderr(), "exported")
		err = cl.AuditExport(cmd.Context(), from, w, bar.update)
		bar.done()
		if err != nil {
			return err
		}
		if f != nil {
			return f.Close()
		}
		return nil
	}
	return c
}

// progress draws a one-line progress report on a terminal, at most ten
// times a second; on anything else it draws nothing.
type progress struct {
	w     io.Writer // nil: not a terminal
	verb  string
	last  time.Time
	drawn bool
}

func newProgress(stderr io.Writer, verb string) *progress {
	p := &progress{verb: verb}
	if f, ok := stderr.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.w = f
		}
	}
	return p
}

func (p *progress) update(done, total int64) {
	if p.w == nil || (time.Since(p.last) < 100*time.Millisecond && done != total) {
		return
	}
	p.last = time.Now()
	switch {
	case total < 0: // unknown
		fmt.Fprintf(p.w, "\r%s %d records", p.verb, done)
	case total == 0:
		fmt.Fprintf(p.w, "\r%s 0 of 0 records", p.verb)
	default:
		fmt.Fprintf(p.w, "\r%s %d of %d records (%d%%)", p.verb, done, total, done*100/total)
	}
	p.drawn = true
}

// done ends the progress line.
func (p *progress) done() {
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}

// verified is the JSON output of audit verify.
type verified struct {
	Records     int64        `json:"records"`
	Root        []byte       `json:"root"`
	Checkpoints []checkpoint `json:"checkpoints"`
}

type checkpoint struct {
	File string `json:"file"`
	Size int64  `json:"size"`
	Root []byte `json:"root"`
}

func auditVerifyCmd() *cobra.Command {
	var data, dsn, export, pub string
	var cps []string
	c := &cobra.Command{
		Use:   "verify (--data DIR [--store DSN] | --export FILE --pub FILE) [--checkpoint FILE ...] [--output json]",
		Short: "Check the whole audit log, and that it extends older checkpoints",
		Long: `Check the audit log without trusting the server.

With --data DIR (on the server's host; serve may be running), recompute
every stored hash from the records in DIR's store, then prove with a
consistency proof that the log extends the newest checkpoint in
DIR/checkpoints and each --checkpoint FILE (whose signature is checked with
DIR/audit.pub, or --pub). This detects any changed, deleted, inserted,
reordered or truncated record, even one edited directly in the database.
With --store DSN as well, the store is that PostgreSQL database (as serve
--store uses it), and DIR holds the keys and checkpoints.

With --export FILE --pub FILE (anywhere), rebuild the tree from an export
("latchkey audit export") and check that it has the root each --checkpoint
FILE signs. Without --checkpoint it prints the root to compare with a
trusted checkpoint.

On success it prints the number of records and the root hash. Exit status
1 names the first bad record: "audit log corrupt at record N: REASON", or
says which checkpoint the log does not extend.`,
		Args: cobra.NoArgs,
	}
	out := addOutput(c, formatText, formatJSON)
	f := c.Flags()
	f.StringVar(&data, "data", "", "data directory of the log to check (local mode)")
	addStoreFlag(f, &dsn)
	f.StringVar(&export, "export", "", "JSON Lines export to check (offline mode)")
	f.StringVar(&pub, "pub", "", "public key file, audit.pub (default with --data: DIR/audit.pub)")
	f.StringArrayVar(&cps, "checkpoint", nil, "older signed checkpoint the log must extend (repeatable)")
	_ = c.MarkFlagDirname("data")
	c.MarkFlagsMutuallyExclusive("data", "export")
	c.MarkFlagsOneRequired("data", "export")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		if export != "" && pub == "" {
			return usagef("--export needs --pub FILE, the log's public key (audit.pub)")
		}
		if dsn != "" && data == "" {
			return usagef("--store needs --data DIR, the data directory holding the log's keys")
		}
		if err := checkStore(dsn); err != nil {
			return err
		}
		flag := "--pub"
		if pub == "" {
			if _, err := os.Stat(filepath.Join(data, "latchkey.db")); err != nil && dsn == "" {
				return usagef("--data %s: no store: %v", data, err)
			}
			flag, pub = "--data", filepath.Join(data, audit.PubFile)
		}
		v, err := audit.LoadVerifier(pub)
		if err != nil {
			return usagef("%s: %v", flag, err)
		}
		bar := newProgress(cmd.ErrOrStderr(), "verified")
		var res verified
		if data != "" {
			res, err = verifyLocal(cmd.Context(), data, dsn, cps, v, bar)
		} else {
			res, err = verifyExport(export, cps, v, bar)
		}
		bar.done()
		if err != nil {
			return verifyFailure(err)
		}
		if export != "" && len(cps) == 0 {
			fmt.Fprintln(cmd.ErrOrStderr(), "no --checkpoint given: compare this root with the root of a trusted checkpoint of the same size")
		}
		if out.json() {
			return writeJSON(cmd.OutOrStdout(), res)
		}
		return printVerified(cmd.OutOrStdout(), res, data != "")
	}
	return c
}

// verifyFailure words a verification failure for the one stderr line.
func verifyFailure(err error) error {
	var ve *audit.VerifyError
	if errors.As(err, &ve) {
		return fmt.Errorf("audit log corrupt at record %d: %s", ve.Index, oneLine(ve.Reason))
	}
	return err
}

func printVerified(w io.Writer, res verified, local bool) error {
	what := "records"
	if !local {
		what = "exported records"
	}
	msg := fmt.Sprintf("verified %d %s, root %s", res.Records, what, base64.StdEncoding.EncodeToString(res.Root))
	for _, cp := range res.Checkpoints {
		if local {
			msg += fmt.Sprintf("; extends checkpoint of %d records (%s)", cp.Size, cp.File)
		} else {
			msg += fmt.Sprintf("; matches checkpoint of %d records (%s)", cp.Size, cp.File)
		}
	}
	_, err := fmt.Fprintln(w, msg)
	return err
}

// readCheckpoint reads and verifies a signed checkpoint file.
func readCheckpoint(path string, v note.Verifier) (checkpoint, audit.Checkpoint, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return checkpoint{}, audit.Checkpoint{}, fmt.Errorf("checkpoint: %w", err)
	}
	cp, err := audit.OpenCheckpoint(b, v)
	if err != nil {
		return checkpoint{}, audit.Checkpoint{}, fmt.Errorf("checkpoint %s refused: %w", path, err)
	}
	return checkpoint{File: path, Size: cp.Size, Root: cp.Root[:]}, cp, nil
}

// checkpointName is the name serve gives a checkpoint file: its tree size.
var checkpointName = regexp.MustCompile(`^[0-9]{12}$`)

// newestCheckpoint returns the path of the largest checkpoint in
// dir/checkpoints, or "" if there is none.
func newestCheckpoint(dir string) (string, error) {
	ents, err := os.ReadDir(filepath.Join(dir, "checkpoints"))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	var names []string
	for _, e := range ents {
		if e.Type().IsRegular() && checkpointName.MatchString(e.Name()) {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		return "", nil
	}
	return filepath.Join(dir, "checkpoints", slices.Max(names)), nil
}

// verifyLocal checks the log in the store of data directory dir, or in
// the PostgreSQL store dsn if it is set.
func verifyLocal(ctx context.Context, dir, dsn string, files []string, v note.Verifier, bar *progress) (verified, error) {
	if dsn == "" {
		if _, err := os.Stat(filepath.Join(dir, "latchkey.db")); err != nil {
			return verified{}, usagef("--data %s: no store: %v", dir, err)
		}
	}
	newest, err := newestCheckpoint(dir)
	if err != nil {
		return verified{}, err
	}
	if newest != "" {
		files = append([]string{newest}, files...)
	}
	var cps []audit.Checkpoint
	res := verified{Checkpoints: []checkpoint{}}
	for _, f := range files {
		c, cp, err := readCheckpoint(f, v)
		if err != nil {
			return verified{}, err
		}
		res.Checkpoints, cps = append(res.Checkpoints, c), append(cps, cp)
	}
	st, storage, err := server.OpenStore(ctx, dir, dsn, "")
	if err != nil {
		return verified{}, err
	}
	defer st.Close()
	defer storage.Close()
	// A journal left by a serve that died is added to the tree first
	// (Verify waits for it); a running serve's is its own.
	l := audit.New(storage, audit.Config{})
	defer l.Close()
	// A running serve may sign a checkpoint past the size Verify saw:
	// verify again, up to three times, while the log is seen to grow.
	var size int64
	var root tlog.Hash
	for try := 0; ; try++ {
		if size, root, err = l.Verify(ctx, bar.update); err != nil {
			return verified{}, err
		}
		now, err := storage.Size(ctx)
		if err != nil {
			return verified{}, err
		}
		if try == 2 || now == size || !slices.ContainsFunc(cps, func(c audit.Checkpoint) bool { return c.Size > size }) {
			break
		}
	}
	// The tree covers the records, not their search columns: check those
	// too, or an edited column could hide a record from search.
	if err := storage.CheckSearchColumns(ctx, size); err != nil {
		return verified{}, err
	}
	res.Records, res.Root = size, root[:]
	prove := func(o, n int64) (tlog.TreeProof, error) { return l.ProveTree(ctx, o, n) }
	for i, cp := range cps {
		if err := audit.CheckExtends(cp, size, root, prove); err != nil {
			if errors.Is(err, audit.ErrNotExtend) {
				return verified{}, fmt.Errorf("audit log does not extend checkpoint %s of %d records: history was rewritten", files[i], cp.Size)
			}
			return verified{}, err
		}
	}
	return res, nil
}

// verifyExport checks an export file against checkpoint files.
func verifyExport(path string, files []string, v note.Verifier, bar *progress) (verified, error) {
	res := verified{Checkpoints: []checkpoint{}}
	var cps []audit.Checkpoint
	for _, f := range files {
		c, cp, err := readCheckpoint(f, v)
		if err != nil {
			return verified{}, err
		}
		res.Checkpoints, cps = append(res.Checkpoints, c), append(cps, cp)
	}
	f, err := os.Open(path)
	if err != nil {
		return verified{}, usagef("--export: %v", err)
	}
	defer f.Close()
	t, err := auditfile.ReadExport(f, func(done int64) { bar.update(done, -1) })
	if err != nil {
		return verified{}, err
	}
	root, err := t.TreeHash(t.Size())
	if err != nil {
		return verified{}, err
	}
	res.Records, res.Root = t.Size(), root[:]
	for i, cp := range cps {
		if err := t.Check(cp); err != nil {
			if errors.Is(err, audit.ErrNotExtend) {
				return verified{}, fmt.Errorf("audit export does not match checkpoint %s of %d records: a record below index %d was changed, or records were reordered", files[i], cp.Size, cp.Size)
			}
			return verified{}, err
		}
	}
	return res, nil
}
