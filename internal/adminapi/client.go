package adminapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client calls the admin API. Its zero value is not usable: set Addr and
// Token.
type Client struct {
	// Addr is the admin API base URL, e.g. http://127.0.0.1:7370.
	Addr string
	// Token is the admin token text sent as a Bearer credential.
	Token string
	// HTTP is the client used; nil means a client with a 30 s timeout.
	HTTP *http.Client
}

// APIError is a refusal returned by the server.
type APIError struct {
	Status int
	Problem
}

func (e *APIError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("%s (HTTP %d)", e.Problem.Error, e.Status)
	}
	return e.Message
}

// maxReply caps what the client reads from the server.
const maxReply = 256 << 20

// Do sends a request with an optional JSON body and decodes the JSON reply
// into out (if not nil).
func (c *Client) Do(ctx context.Context, method, path string, q url.Values, in, out any) error {
	u := strings.TrimRight(c.Addr, "/") + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return fmt.Errorf("invalid admin address %q: %w", c.Addr, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach latchkey at %s: %w", c.Addr, err)
	}
	defer resp.Body.Close()
	if err := checkStatus(resp); err != nil {
		return err
	}
	dec := json.NewDecoder(io.LimitReader(resp.Body, maxReply))
	if out == nil {
		return nil
	}
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("failed to decode reply from %s: %w", path, err)
	}
	return nil
}

// httpClient returns c.HTTP, or a client with a 30 s timeout.
func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return &http.Client{Timeout: 30 * time.Second}
}

// checkStatus returns the *APIError of a reply with status 300 or more.
func checkStatus(resp *http.Response) error {
	if resp.StatusCode < 300 {
		return nil
	}
	e := &APIError{Status: resp.StatusCode}
	dec := json.NewDecoder(io.LimitReader(resp.Body, maxReply))
	if err := dec.Decode(&e.Problem); err != nil || e.Problem.Error == "" {
		e.Problem = Problem{Error: "http_error", Message: fmt.Sprintf("server answered %s", resp.Status)}
	}
	return e
}

func (c *Client) get(ctx context.Context, path string, q url.Values, out any) error {
	return c.Do(ctx, http.MethodGet, path, q, nil, out)
}

func (c *Client) post(ctx context.Context, path string, in, out any) error {
	return c.Do(ctx, http.MethodPost, path, nil, in, out)
}

// Whoami describes the client's own token.
func (c *Client) Whoami(ctx context.Context) (w Whoami, err error) {
	return w, c.get(ctx, "/v1/whoami", nil, &w)
}

// AddContractor onboards a contractor.
func (c *Client) AddContractor(ctx context.Context, nc NewContractor) (out Contractor, err error) {
	return out, c.post(ctx, "/v1/contractors", nc, &out)
}

// Contractors lists contractors.
func (c *Client) Contractors(ctx context.Context) (out []Contractor, err error) {
	return out, c.get(ctx, "/v1/contractors", nil, &out)
}

// ShowContractor returns one contractor.
func (c *Client) ShowContractor(ctx context.Context, name string) (out Contractor, err error) {
	return out, c.get(ctx, "/v1/contractors/"+url.PathEscape(name), nil, &out)
}

// Offboard revokes everything of a contractor and disables it.
func (c *Client) Offboard(ctx context.Context, name string) (out Offboarded, err error) {
	return out, c.post(ctx, "/v1/contractors/"+url.PathEscape(name)+"/offboard", nil, &out)
}

// AddService registers an upstream.
func (c *Client) AddService(ctx context.Context, ns NewService) (out Service, err error) {
	return out, c.post(ctx, "/v1/services", ns, &out)
}

// Services lists services.
func (c *Client) Services(ctx context.Context) (out []Service, err error) {
	return out, c.get(ctx, "/v1/services", nil, &out)
}

// AddGrant grants scopes.
func (c *Client) AddGrant(ctx context.Context, ng NewGrant) (out Grant, err error) {
	return out, c.post(ctx, "/v1/grants", ng, &out)
}

// Grants lists grants, of one contractor if not empty, only live ones if live.
func (c *Client) Grants(ctx context.Context, contractor string, live bool) (out []Grant, err error) {
	return out, c.get(ctx, "/v1/grants", filter(contractor, "live", live), &out)
}

// RevokeGrant revokes a grant.
func (c *Client) RevokeGrant(ctx context.Context, id int64) (out Revoked, err error) {
	return out, c.post(ctx, "/v1/grants/"+strconv.FormatInt(id, 10)+"/revoke", nil, &out)
}

// IssueToken issues a token; the reply holds its text once.
func (c *Client) IssueToken(ctx context.Context, nt NewToken) (out IssuedToken, err error) {
	return out, c.post(ctx, "/v1/tokens", nt, &out)
}

// Tokens lists tokens, of one contractor if not empty, only active ones if active.
func (c *Client) Tokens(ctx context.Context, contractor string, active bool) (out []Token, err error) {
	return out, c.get(ctx, "/v1/tokens", filter(contractor, "active", active), &out)
}

// ShowToken returns one token record.
func (c *Client) ShowToken(ctx context.Context, id string) (out Token, err error) {
	return out, c.get(ctx, "/v1/tokens/"+url.PathEscape(id), nil, &out)
}

// RevokeToken revokes a token.
func (c *Client) RevokeToken(ctx context.Context, id string) (out Revoked, err error) {
	return out, c.post(ctx, "/v1/tokens/"+url.PathEscape(id)+"/revoke", nil, &out)
}

// RotateToken issues a successor and ends the old token after grace.
func (c *Client) RotateToken(ctx context.Context, id string, r Rotation) (out IssuedToken, err error) {
	return out, c.post(ctx, "/v1/tokens/"+url.PathEscape(id)+"/rotate", r, &out)
}

// ActiveReport lists who holds live tokens.
func (c *Client) ActiveReport(ctx context.Context) (out []ActiveRow, err error) {
	return out, c.get(ctx, "/v1/reports/active", nil, &out)
}

// AccessReport lists what contractors can touch.
func (c *Client) AccessReport(ctx context.Context, contractor string) (out []AccessRow, err error) {
	return out, c.get(ctx, "/v1/reports/access", filter(contractor, "", false), &out)
}

// UnusedReport lists tokens and granted scopes unused for idle.
func (c *Client) UnusedReport(ctx context.Context, idle string) (out UnusedReport, err error) {
	return out, c.get(ctx, "/v1/reports/unused", url.Values{"idle": {idle}}, &out)
}

func filter(contractor, flag string, set bool) url.Values {
	q := url.Values{}
	if contractor != "" {
		q.Set("contractor", contractor)
	}
	if set {
		q.Set(flag, "true")
	}
	return q
}

// AuditQuery selects records in AuditSearch; zero fields select
// everything. Since and Until are RFC 3339 or relative times ("8h"), which
// the server resolves; Before is the cursor of a previous page's Next.
type AuditQuery struct {
	Contractor, Token, Service, Action, Decision string
	Since, Until                                 string
	Before                                       int64
	Limit                                        int
}

// values returns q as query parameters of GET /v1/audit.
func (q AuditQuery) values() url.Values {
	v := url.Values{}
	for _, p := range [][2]string{{"contractor", q.Contractor}, {"token", q.Token}, {"service", q.Service},
		{"action", q.Action}, {"decision", q.Decision}, {"since", q.Since}, {"until", q.Until}} {
		if p[1] != "" {
			v.Set(p[0], p[1])
		}
	}
	if q.Before > 0 {
		v.Set("before", strconv.FormatInt(q.Before, 10))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return v
}

// AuditSearch finds audit records, newest first, one page at a time.
func (c *Client) AuditSearch(ctx context.Context, q AuditQuery) (out AuditPage, err error) {
	return out, c.get(ctx, "/v1/audit", q.values(), &out)
}

// AuditCheckpoint has the server sign a checkpoint of the log now.
func (c *Client) AuditCheckpoint(ctx context.Context) (out SignedCheckpoint, err error) {
	return out, c.get(ctx, "/v1/audit/checkpoint", nil, &out)
}

// AuditProof returns the inclusion proof of record index in the tree of
// size records (0: the whole log as it is now). The caller checks it.
func (c *Client) AuditProof(ctx context.Context, index, size int64) (out InclusionProof, err error) {
	var q url.Values
	if size > 0 {
		q = url.Values{"size": {strconv.FormatInt(size, 10)}}
	}
	return out, c.get(ctx, "/v1/audit/proof/"+strconv.FormatInt(index, 10), q, &out)
}

// AuditConsistency returns the proof that the tree of newSize records
// (0: the whole log now) extends the tree of oldSize records. The caller
// checks it.
func (c *Client) AuditConsistency(ctx context.Context, oldSize, newSize int64) (out ConsistencyProof, err error) {
	q := url.Values{"old": {strconv.FormatInt(oldSize, 10)}}
	if newSize > 0 {
		q.Set("new", strconv.FormatInt(newSize, 10))
	}
	return out, c.get(ctx, "/v1/audit/consistency", q, &out)
}

// AuditExport streams the JSON Lines of GET /v1/audit/export (records
// from index from on) to w, without the client's overall timeout. progress,
// if not nil, is called as lines arrive with the records written so far
// and the number expected (from the X-Latchkey-Audit-Size header). It
// fails if the stream ends before every expected record arrived.
func (c *Client) AuditExport(ctx context.Context, from int64, w io.Writer, progress func(done, total int64)) error {
	u := strings.TrimRight(c.Addr, "/") + "/v1/audit/export?from=" + strconv.FormatInt(from, 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("invalid admin address %q: %w", c.Addr, err)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := *c.httpClient()
	hc.Timeout = 0 // an export takes as long as it takes; ctx cancels it
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach latchkey at %s: %w", c.Addr, err)
	}
	defer resp.Body.Close()
	if err := checkStatus(resp); err != nil {
		return err
	}
	size, err := strconv.ParseInt(resp.Header.Get("X-Latchkey-Audit-Size"), 10, 64)
	if err != nil || size < from {
		return fmt.Errorf("audit export: bad X-Latchkey-Audit-Size header %q", resp.Header.Get("X-Latchkey-Audit-Size"))
	}
	lw := &lineCounter{w: w, total: size - from, progress: progress}
	if progress != nil {
		progress(0, lw.total)
	}
	if _, err := io.Copy(lw, resp.Body); err != nil {
		return fmt.Errorf("audit export: %w", err)
	}
	if lw.done != lw.total {
		return fmt.Errorf("audit export: stream ended after %d of %d records", lw.done, lw.total)
	}
	return nil
}

// lineCounter passes writes through to w, counting newlines (records).
type lineCounter struct {
	w           io.Writer
	done, total int64
	progress    func(done, total int64)
}

func (l *lineCounter) Write(p []byte) (int, error) {
	n, err := l.w.Write(p)
	l.done += int64(bytes.Count(p[:n], []byte{'\n'}))
	if l.progress != nil {
		l.progress(l.done, l.total)
	}
	return n, err
}

// selfToken reports whether the client holds a contractor (lk_) token,
// which uses the /v1/self/ routes.
func (c *Client) selfToken() bool { return strings.HasPrefix(c.Token, "lk_") }

// CreateRequest asks for access; the client's token is a request-only
// contractor token.
func (c *Client) CreateRequest(ctx context.Context, nr NewRequest) (out AccessRequest, err error) {
	return out, c.post(ctx, "/v1/self/requests", nr, &out)
}

// Requests lists access requests in state (all if ""), of contractor
// (all if ""): for an admin token; a contractor's request-only token
// lists its own, and contractor must be "".
func (c *Client) Requests(ctx context.Context, state, contractor string) (out []AccessRequest, err error) {
	q := url.Values{}
	if state != "" {
		q.Set("state", state)
	}
	if contractor != "" {
		q.Set("contractor", contractor)
	}
	path := "/v1/requests"
	if c.selfToken() {
		path = "/v1/self/requests"
	}
	return out, c.get(ctx, path, q, &out)
}

// ShowRequest shows one access request (a contractor's own, for a
// contractor token).
func (c *Client) ShowRequest(ctx context.Context, id string) (out AccessRequest, err error) {
	path := "/v1/requests/"
	if c.selfToken() {
		path = "/v1/self/requests/"
	}
	return out, c.get(ctx, path+url.PathEscape(id), nil, &out)
}

// ApproveRequest approves an access request.
func (c *Client) ApproveRequest(ctx context.Context, id string) (out AccessRequest, err error) {
	return out, c.post(ctx, "/v1/requests/"+url.PathEscape(id)+"/approve", nil, &out)
}

// DenyRequest denies an access request, for reason.
func (c *Client) DenyRequest(ctx context.Context, id, reason string) (out AccessRequest, err error) {
	return out, c.post(ctx, "/v1/requests/"+url.PathEscape(id)+"/deny", Denial{reason}, &out)
}

// FetchRequest fetches the token of an approved request, once.
func (c *Client) FetchRequest(ctx context.Context, id string) (out IssuedToken, err error) {
	return out, c.post(ctx, "/v1/self/requests/"+url.PathEscape(id)+"/fetch", nil, &out)
}

// Approvers lists approver group memberships.
func (c *Client) Approvers(ctx context.Context) (out []Approver, err error) {
	return out, c.get(ctx, "/v1/approvers", nil, &out)
}

// AddApprover adds name to an approver group.
func (c *Client) AddApprover(ctx context.Context, group, name string) (out Approver, err error) {
	return out, c.post(ctx, "/v1/approvers", NewApprover{group, name}, &out)
}

// RemoveApprover removes name from an approver group.
func (c *Client) RemoveApprover(ctx context.Context, group, name string) (out ApproverRemoved, err error) {
	return out, c.post(ctx, "/v1/approvers/remove", NewApprover{group, name}, &out)
}

// ReportLeak revokes the token whose text was found in the wild.
func (c *Client) ReportLeak(ctx context.Context, text string) (out LeakOutcome, err error) {
	return out, c.post(ctx, "/v1/tokens/leaked", LeakedToken{Token: text}, &out)
}

// Derive issues a narrower child of the client's own contractor token.
func (c *Client) Derive(ctx context.Context, nd NewDerived) (out IssuedToken, err error) {
	return out, c.post(ctx, "/v1/self/tokens", nd, &out)
}
