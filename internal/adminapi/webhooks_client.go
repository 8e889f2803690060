package adminapi

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// AddWebhook adds a webhook; the reply holds its signing secret once.
func (c *Client) AddWebhook(ctx context.Context, nw NewWebhook) (out AddedWebhook, err error) {
	return out, c.post(ctx, "/v1/webhooks", nw, &out)
}

// Webhooks lists webhooks.
func (c *Client) Webhooks(ctx context.Context) (out []Webhook, err error) {
	return out, c.get(ctx, "/v1/webhooks", nil, &out)
}

// RemoveWebhook removes a webhook.
func (c *Client) RemoveWebhook(ctx context.Context, id string) (out Removed, err error) {
	return out, c.Do(ctx, http.MethodDelete, "/v1/webhooks/"+url.PathEscape(id), nil, nil, &out)
}

// Deliveries lists the delivery log, newest first, of one webhook and in
// one state if not empty, at most limit (0: the server's maximum).
func (c *Client) Deliveries(ctx context.Context, webhook, state string, limit int) (out []Delivery, err error) {
	q := url.Values{}
	if webhook != "" {
		q.Set("webhook", webhook)
	}
	if state != "" {
		q.Set("state", state)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	return out, c.get(ctx, "/v1/webhooks/deliveries", q, &out)
}
