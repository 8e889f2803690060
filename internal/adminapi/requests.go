package adminapi

import (
	"context"
	"maps"
	"net/http"
	"time"

	"latchkey/internal/access"
	"latchkey/internal/store"
	"latchkey/internal/timespec"
)

// Access requests: admins (admin:requests:read/write) list, show, approve
// and deny under /v1/requests; the approver groups are under /v1/approvers
// (admin:approvers:read/write); contractors, with a request-only token
// (scope latchkey:request), create, list and show their own under
// /v1/self/requests, and fetch the token of one they made with that same
// token (forbidden for any other).

// AccessRequest is a contractor's request for a token. It never carries
// the token: that is returned once, by fetch.
type AccessRequest struct {
	ID              string     `json:"id"`
	Contractor      string     `json:"contractor"`
	Requester       string     `json:"requester"` // id of the request-only token that asked
	Scopes          []string   `json:"scopes"`
	TTL             string     `json:"ttl"` // of the token, from the final approval
	Reason          string     `json:"reason"`
	State           string     `json:"state"` // pending, approved, denied, expired or fetched
	CreatedAt       time.Time  `json:"created_at"`
	ExpiresAt       time.Time  `json:"expires_at"` // when it lapses unless approved (then: unless fetched)
	Approvals       []Approval `json:"approvals"`
	ApprovalsNeeded int        `json:"approvals_needed"`
	DecidedBy       string     `json:"decided_by,omitempty"`
	DecidedAt       *time.Time `json:"decided_at,omitempty"`
	DenyReason      string     `json:"deny_reason,omitempty"`
	TokenID         string     `json:"token_id,omitempty"`
	FetchedAt       *time.Time `json:"fetched_at,omitempty"`
}

// Approval is one approver's approval.
type Approval struct {
	Approver string    `json:"approver"`
	TokenID  string    `json:"token_id"`
	At       time.Time `json:"at"`
}

// NewRequest is the body of POST /v1/self/requests. TTL is a duration (8h, 2d).
type NewRequest struct {
	Scopes []string `json:"scopes"`
	TTL    string   `json:"ttl"`
	Reason string   `json:"reason"`
}

// Denial is the body of POST /v1/requests/{id}/deny.
type Denial struct {
	Reason string `json:"reason"`
}

// Approver is a member of an approver group.
type Approver struct {
	Group     string    `json:"group"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
}

// NewApprover is the body of POST /v1/approvers and POST /v1/approvers/remove.
type NewApprover struct {
	Group string `json:"group"`
	Name  string `json:"name"`
}

// ApproverRemoved is the reply to POST /v1/approvers/remove.
type ApproverRemoved struct {
	Group   string `json:"group"`
	Name    string `json:"name"`
	Removed bool   `json:"removed"`
}

// The statuses of access request refusals join statusOf here, beside the
// routes that answer them.
func init() {
	maps.Copy(statusOf, map[string]int{
		access.ReasonSelfApproval:    http.StatusForbidden,
		access.ReasonNotApprover:     http.StatusForbidden,
		access.ReasonApproverUnknown: http.StatusForbidden,
		access.ReasonNotRequestToken: http.StatusForbidden,
		access.ReasonAlreadyApproved: http.StatusConflict,
		access.ReasonAlreadyFetched:  http.StatusConflict,
		access.ReasonRequestExpired:  http.StatusConflict,
		access.ReasonRequestDenied:   http.StatusConflict,
		access.ReasonRequestPending:  http.StatusConflict,
		access.ReasonRequestDecided:  http.StatusConflict,
		access.ReasonTooManyRequests: http.StatusTooManyRequests,
	})
}

func (s *Server) requestRoutes() []route {
	return []route{
		{"GET", "/v1/requests", "requests", "read", "List access requests", nil, []AccessRequest{}, []string{"contractor", "state"}, 200, s.listRequests},
		{"GET", "/v1/requests/{id}", "requests", "read", "Show an access request", nil, AccessRequest{}, nil, 200, s.getRequest},
		{"POST", "/v1/requests/{id}/approve", "requests", "write", "Approve an access request (as the note of your admin token names you)", nil, AccessRequest{}, nil, 200, s.approveRequest},
		{"POST", "/v1/requests/{id}/deny", "requests", "write", "Deny an access request, with a reason; final", Denial{}, AccessRequest{}, nil, 200, s.denyRequest},
		{"GET", "/v1/approvers", "approvers", "read", "List approver groups", nil, []Approver{}, nil, 200, s.listApprovers},
		{"POST", "/v1/approvers", "approvers", "write", "Add a member to an approver group", NewApprover{}, Approver{}, nil, 201, s.addApprover},
		{"POST", "/v1/approvers/remove", "approvers", "write", "Remove a member from an approver group", NewApprover{}, ApproverRemoved{}, nil, 200, s.removeApprover},
		{"POST", "/v1/self/requests", selfService, "", "Ask for access (request-only contractor token)", NewRequest{}, AccessRequest{}, nil, 201, s.createRequest},
		{"GET", "/v1/self/requests", selfService, "", "List your own access requests", nil, []AccessRequest{}, []string{"state"}, 200, s.listOwnRequests},
		{"GET", "/v1/self/requests/{id}", selfService, "", "Show one of your own access requests", nil, AccessRequest{}, nil, 200, s.getOwnRequest},
		{"POST", "/v1/self/requests/{id}/fetch", selfService, "", "Fetch the token of your approved request; it is returned this once", nil, IssuedToken{}, nil, 201, s.fetchRequest},
	}
}

func (s *Server) toRequest(r store.AccessRequest) AccessRequest {
	aps := make([]Approval, 0, len(r.Approvals))
	for _, a := range r.Approvals {
		aps = append(aps, Approval{a.Approver, a.TokenID, a.At})
	}
	return AccessRequest{
		ID: r.ID, Contractor: r.Contractor, Requester: r.Requester, Scopes: nonNil(r.Scopes),
		TTL: timespec.Format(r.TTL), Reason: r.Reason, State: r.StateAt(s.now()),
		CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt, Approvals: aps,
		ApprovalsNeeded: s.cfg.Authority.RequestApprovals(), DecidedBy: r.DecidedBy, DecidedAt: optTime(r.DecidedAt),
		DenyReason: r.DenyReason, TokenID: r.TokenID, FetchedAt: optTime(r.FetchedAt),
	}
}

func (s *Server) toRequests(rs []store.AccessRequest, err error) (int, any, error) {
	out := make([]AccessRequest, 0, len(rs))
	for _, r := range rs {
		out = append(out, s.toRequest(r))
	}
	return 200, out, err
}

func (s *Server) listRequests(ctx context.Context, c caller, r *http.Request) (int, any, error) {
	q := r.URL.Query()
	return s.toRequests(s.cfg.Authority.Requests(ctx, q.Get("contractor"), q.Get("state")))
}

func (s *Server) getRequest(ctx context.Context, c caller, r *http.Request) (int, any, error) {
	req, err := s.cfg.Authority.Request(ctx, r.PathValue("id"))
	return 200, s.toRequest(req), err
}

func (s *Server) approveRequest(ctx context.Context, c caller, r *http.Request) (int, any, error) {
	req, err := s.cfg.Authority.ApproveRequest(ctx, c.actor(), r.PathValue("id"))
	return 200, s.toRequest(req), err
}

func (s *Server) denyRequest(ctx context.Context, c caller, r *http.Request) (int, any, error) {
	var in Denial
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	req, err := s.cfg.Authority.DenyRequest(ctx, c.actor(), r.PathValue("id"), in.Reason)
	return 200, s.toRequest(req), err
}

func (s *Server) listApprovers(ctx context.Context, c caller, r *http.Request) (int, any, error) {
	as, err := s.cfg.Authority.Approvers(ctx)
	out := make([]Approver, 0, len(as))
	for _, a := range as {
		out = append(out, Approver{a.Group, a.Name, a.CreatedAt, a.CreatedBy})
	}
	return 200, out, err
}

func (s *Server) addApprover(ctx context.Context, c caller, r *http.Request) (int, any, error) {
	var in NewApprover
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	a, err := s.cfg.Authority.AddApprover(ctx, c.actor(), in.Group, in.Name)
	return 201, Approver{a.Group, a.Name, a.CreatedAt, a.CreatedBy}, err
}

func (s *Server) removeApprover(ctx context.Context, c caller, r *http.Request) (int, any, error) {
	var in NewApprover
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	return 200, ApproverRemoved{in.Group, in.Name, true}, s.cfg.Authority.RemoveApprover(ctx, c.actor(), in.Group, in.Name)
}

func (s *Server) createRequest(ctx context.Context, c caller, r *http.Request) (int, any, error) {
	var in NewRequest
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	ttl, err := optionalTTL(in.TTL)
	if err != nil {
		return 0, nil, err
	}
	req, err := s.cfg.Authority.CreateRequest(ctx, c.actor(), c.tok.Contractor, access.NewRequest{Scopes: in.Scopes, TTL: ttl, Reason: in.Reason})
	return 201, s.toRequest(req), err
}

func (s *Server) listOwnRequests(ctx context.Context, c caller, r *http.Request) (int, any, error) {
	return s.toRequests(s.cfg.Authority.ListOwnRequests(ctx, c.actor(), c.tok.Contractor, r.URL.Query().Get("state")))
}

func (s *Server) getOwnRequest(ctx context.Context, c caller, r *http.Request) (int, any, error) {
	req, err := s.cfg.Authority.OwnRequest(ctx, c.actor(), c.tok.Contractor, r.PathValue("id"))
	return 200, s.toRequest(req), err
}

func (s *Server) fetchRequest(ctx context.Context, c caller, r *http.Request) (int, any, error) {
	iss, err := s.cfg.Authority.FetchRequest(ctx, c.actor(), c.tok.Contractor, r.PathValue("id"))
	return 201, toIssued(iss), err
}
