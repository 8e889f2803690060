package adminapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"latchkey/internal/adminapi"
	"latchkey/internal/audit"
)

func getJSON(t *testing.T, e *env, path string, v any) int {
	t.Helper()
	status, body := call(t, e, "GET", path, e.root, "")
	if status == 200 {
		if err := json.Unmarshal([]byte(body), v); err != nil {
			t.Fatalf("GET %s: %v: %s", path, err, body)
		}
	}
	return status
}

func TestAuditRoutes(t *testing.T) {
	e := newEnv(t)
	_, ctok := e.seed(t)
	auditor := e.adminToken(t, "admin:reports:read")
	if _, err := e.client(auditor).AddContractor(context.Background(), adminapi.NewContractor{Name: "zed", Email: "z@example.com", Sponsor: "s", Until: "1d"}); err == nil {
		t.Fatal("auditor wrote")
	}

	// Search: filters, newest first, cursor.
	var page adminapi.AuditPage
	if s := getJSON(t, e, "/v1/audit?decision=deny", &page); s != 200 || len(page.Records) != 1 ||
		page.Records[0].Reason != "forbidden" || page.Records[0].Path != "/v1/contractors" {
		t.Fatalf("deny search: %d %+v", s, page)
	}
	getJSON(t, e, "/v1/audit?contractor=alice&action=token.issue", &page)
	if len(page.Records) != 1 || page.Records[0].TokenID == "" || strings.Contains(page.Records[0].Reason, ctok[15:]) {
		t.Fatalf("issue search: %+v", page)
	}
	var all []adminapi.AuditRecord
	for before := int64(0); ; {
		page = adminapi.AuditPage{}
		if s := getJSON(t, e, "/v1/audit?limit=3&before="+strconv.FormatInt(before, 10), &page); s != 200 {
			t.Fatalf("paged search: %d", s)
		}
		all = append(all, page.Records...)
		if page.Next == 0 {
			break
		}
		before = page.Next
	}
	for i := 1; i < len(all); i++ {
		if all[i].Index != all[i-1].Index-1 {
			t.Fatalf("paged search skipped or repeated: %d after %d", all[i].Index, all[i-1].Index)
		}
	}
	if all[len(all)-1].Index != 0 {
		t.Fatalf("paging did not reach record 0")
	}
	for _, bad := range []string{"?decision=maybe", "?limit=5000", "?before=-1", "?since=yesterday"} {
		if s := getJSON(t, e, "/v1/audit"+bad, &page); s != 400 {
			t.Errorf("GET /v1/audit%s: %d, want 400", bad, s)
		}
	}

	// Checkpoint, then an inclusion proof of record 2 and a consistency
	// proof, both checked against the checkpoint's root.
	var cp adminapi.SignedCheckpoint
	getJSON(t, e, "/v1/audit/checkpoint", &cp)
	var root tlog.Hash
	copy(root[:], cp.Root)
	var ip adminapi.InclusionProof
	getJSON(t, e, "/v1/audit/proof/2?size="+strconv.FormatInt(cp.Size, 10), &ip)
	if err := tlog.CheckRecord(toHashes(ip.Proof), cp.Size, root, 2, tlog.RecordHash(ip.Leaf)); err != nil {
		t.Fatalf("inclusion proof does not check: %v", err)
	}
	if r, err := audit.Decode(ip.Leaf); err != nil || r.Action != ip.Record.Action {
		t.Fatalf("proof leaf %v %v", r, err)
	}
	var old adminapi.SignedCheckpoint = cp
	e.seed2(t)
	getJSON(t, e, "/v1/audit/checkpoint", &cp)
	var cons adminapi.ConsistencyProof
	getJSON(t, e, "/v1/audit/consistency?old="+strconv.FormatInt(old.Size, 10)+"&new="+strconv.FormatInt(cp.Size, 10), &cons)
	var oldRoot, newRoot tlog.Hash
	copy(oldRoot[:], old.Root)
	copy(newRoot[:], cp.Root)
	if err := tlog.CheckTree(toHashes(cons.Proof), cp.Size, newRoot, old.Size, oldRoot); err != nil {
		t.Fatalf("consistency proof does not check: %v", err)
	}
	for _, bad := range []string{"/v1/audit/proof/99999", "/v1/audit/proof/x", "/v1/audit/consistency?old=0", "/v1/audit/consistency?old=99999"} {
		if s := getJSON(t, e, bad, &ip); s != 400 && s != 404 {
			t.Errorf("GET %s: %d, want 400 or 404", bad, s)
		}
	}

	// Export: every record, dense, leaves that decode.
	req, _ := http.NewRequest("GET", e.srv.URL+"/v1/audit/export", nil)
	req.Header.Set("Authorization", "Bearer "+e.root)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	size, _ := strconv.ParseInt(resp.Header.Get("X-Latchkey-Audit-Size"), 10, 64)
	sc := bufio.NewScanner(resp.Body)
	var n int64
	for sc.Scan() {
		var line adminapi.ExportLine
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil || line.Index != n {
			t.Fatalf("export line %d: %v %s", n, err, sc.Text())
		}
		if _, err := audit.Decode(line.Leaf); err != nil {
			t.Fatalf("export line %d: %v", n, err)
		}
		n++
	}
	if n != size || size < cp.Size {
		t.Fatalf("export has %d lines, header says %d, checkpoint %d", n, size, cp.Size)
	}
}

// seed2 adds a little more activity.
func (e *env) seed2(t *testing.T) {
	t.Helper()
	if _, err := e.client(e.root).AddContractor(context.Background(), adminapi.NewContractor{Name: "bob", Email: "b@example.com", Sponsor: "s", Until: "2d"}); err != nil {
		t.Fatal(err)
	}
}

func toHashes(b [][]byte) []tlog.Hash {
	out := make([]tlog.Hash, len(b))
	for i := range b {
		copy(out[i][:], b[i])
	}
	return out
}
