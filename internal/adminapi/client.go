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
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach latchkey at %s: %w", c.Addr, err)
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(io.LimitReader(resp.Body, maxReply))
	if resp.StatusCode >= 300 {
		e := &APIError{Status: resp.StatusCode}
		if err := dec.Decode(&e.Problem); err != nil || e.Problem.Error == "" {
			e.Problem = Problem{Error: "http_error", Message: fmt.Sprintf("server answered %s", resp.Status)}
		}
		return e
	}
	if out == nil {
		return nil
	}
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("failed to decode reply from %s: %w", path, err)
	}
	return nil
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
