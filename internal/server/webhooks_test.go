package server

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"latchkey/internal/adminapi"
	"latchkey/internal/notify"
)

// TestServeWebhooks: through a real server, a webhook to a receiver on
// 127.0.0.1 gets token.issued and token.revoked (reason manual), each
// correctly signed and without the token secret; its first answer is a
// 500, so the issue is retried; the delivery log shows both delivered.
func TestServeWebhooks(t *testing.T) {
	var mu sync.Mutex
	var secret string
	var got []notify.Payload
	calls := 0
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
		mu.Lock()
		defer mu.Unlock()
		calls++
		if err := notify.Verify(secret, req.Header, body, time.Now(), 0); err != nil {
			t.Errorf("receiver: %v", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if calls == 1 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		var p notify.Payload
		if err := json.Unmarshal(body, &p); err != nil {
			t.Errorf("receiver: %v", err)
		}
		got = append(got, p)
		if strings.Contains(string(body), "lk_") {
			t.Errorf("payload holds a token text: %s", body)
		}
	}))
	defer recv.Close()
	payloads := func() []notify.Payload {
		mu.Lock()
		defer mu.Unlock()
		return append([]notify.Payload(nil), got...)
	}

	logBuf := &syncBuffer{}
	cfg := testConfig(newDir(t), logBuf)
	cfg.WebhookBackoff = 10 * time.Millisecond
	r := start(t, cfg)
	cl := &adminapi.Client{Addr: r.url, Token: adminToken(t, r.stdout.String())}
	ctx := t.Context()
	added, err := cl.AddWebhook(ctx, adminapi.NewWebhook{URL: recv.URL + "/hooks", Events: []string{"token.issued", "token.revoked"}})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	secret = added.Secret
	mu.Unlock()

	_, iss := onboard(t, r, adminapi.NewService{Name: "billing", Upstream: "http://127.0.0.1:9"}, "billing:read:/**", "billing:GET:/x")
	if _, err := cl.RevokeToken(ctx, iss.ID); err != nil {
		t.Fatal(err)
	}
	poll(t, func() string {
		if n := len(payloads()); n < 2 {
			return "receiver has " + strconv.Itoa(n) + " of 2 events"
		}
		return ""
	})
	byType := map[string]notify.Payload{}
	for _, p := range payloads() {
		byType[p.Type] = p
	}
	issued, revoked := byType["token.issued"], byType["token.revoked"]
	if issued.Data.TokenID != iss.ID || issued.Data.Contractor != "alice" || issued.Data.Sponsor != "bob" ||
		issued.Data.ContractorEmail != "a@example.com" || issued.Data.ExpiresAt == nil || len(issued.Data.Scopes) != 1 {
		t.Errorf("token.issued: %+v", issued)
	}
	if revoked.Data.TokenID != iss.ID || revoked.Data.Reason != "manual" || revoked.Data.Actor == "" {
		t.Errorf("token.revoked: %+v", revoked)
	}

	var ds []adminapi.Delivery
	poll(t, func() string {
		ds, err = cl.Deliveries(ctx, added.ID, "delivered", 0)
		if err != nil {
			return err.Error()
		}
		if len(ds) != 2 {
			return "delivered: " + strconv.Itoa(len(ds))
		}
		return ""
	})
	retried := 0
	for _, d := range ds {
		if d.Attempts == 2 && d.Log[0].Status == 500 && d.Log[1].Status == 200 {
			retried++
		}
	}
	if retried != 1 {
		t.Errorf("want one delivery retried after a 500: %+v", ds)
	}
	if strings.Contains(logBuf.String(), added.Secret) || strings.Contains(r.stdout.String(), added.Secret) {
		t.Error("the secret is in the server's output")
	}
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}
