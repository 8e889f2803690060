package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"latchkey/internal/store"
)

func webhook(id string, created time.Time, events ...string) store.Webhook {
	return store.Webhook{ID: id, SealedURL: []byte("sealed url " + id), URLHost: "https://hooks.example.com",
		URLFingerprint: "0123abcd", SealedSecret: []byte("sealed " + id), Events: events, Format: "standard", CreatedAt: created, CreatedBy: "lka_root"}
}

func delivery(id, webhookID string, due time.Time) store.Delivery {
	return store.Delivery{ID: id, WebhookID: webhookID, Event: "token.issued", Payload: []byte(`{"id":"` + id + `"}`),
		NextAt: due, CreatedAt: due}
}

func testWebhooks(t *testing.T, s store.Store) {
	a := webhook("wh_a", at(time.Minute), "token.issued", "token.revoked")
	b := webhook("wh_b", t0)
	check(t, "CreateWebhook a", s.CreateWebhook(ctx(t), a))
	check(t, "CreateWebhook b", s.CreateWebhook(ctx(t), b))
	wantErr(t, "CreateWebhook again", s.CreateWebhook(ctx(t), a), store.ErrConflict)
	unsealed := webhook("wh_unsealed", t0)
	unsealed.SealedURL = nil
	if err := s.CreateWebhook(ctx(t), unsealed); err == nil {
		t.Error("CreateWebhook stored a webhook without a URL")
	}
	got, err := s.Webhook(ctx(t), "wh_a")
	check(t, "Webhook", err)
	diff(t, "Webhook", a, got)
	_, err = s.Webhook(ctx(t), "wh_none")
	wantErr(t, "Webhook missing", err, store.ErrNotFound)
	all, err := s.Webhooks(ctx(t))
	check(t, "Webhooks", err)
	diff(t, "Webhooks", []store.Webhook{b, a}, all)
	wantErr(t, "DeleteWebhook missing", s.DeleteWebhook(ctx(t), "wh_none", t0), store.ErrNotFound)
	check(t, "DeleteWebhook", s.DeleteWebhook(ctx(t), "wh_b", t0))
	all, err = s.Webhooks(ctx(t))
	check(t, "Webhooks", err)
	diff(t, "Webhooks after delete", []store.Webhook{a}, all)
}

func testDeliveries(t *testing.T, s store.Store) {
	check(t, "CreateWebhook", s.CreateWebhook(ctx(t), webhook("wh_a", t0)))
	d1, d2 := delivery("msg_1", "wh_a", t0), delivery("msg_2", "wh_a", at(time.Hour))
	check(t, "Enqueue", s.EnqueueDeliveries(ctx(t), []store.Delivery{d1, d2}))
	wantErr(t, "Enqueue again", s.EnqueueDeliveries(ctx(t), []store.Delivery{d1}), store.ErrConflict)

	// Only the due one is claimed, with its attempt number.
	got, err := s.ClaimDeliveries(ctx(t), "A", at(time.Minute), at(2*time.Minute), 10)
	check(t, "Claim", err)
	want := d1
	want.State, want.Attempts, want.UpdatedAt = store.DeliveryPending, 1, at(time.Minute)
	diff(t, "Claim", []store.Delivery{want}, got)
	// Leased: no one gets it again, not even after its due time, until the lease ends.
	got, err = s.ClaimDeliveries(ctx(t), "B", at(90*time.Second), at(3*time.Minute), 10)
	check(t, "Claim leased", err)
	diff(t, "Claim leased", []store.Delivery(nil), got)

	// Only the lease holder records the attempt.
	fail := store.Attempt{DeliveryID: "msg_1", N: 1, At: at(time.Minute), Status: 500, Error: "HTTP 500",
		State: store.DeliveryPending, NextAt: at(5 * time.Minute)}
	wantErr(t, "Record by B", s.RecordAttempt(ctx(t), "B", fail), store.ErrNotFound)
	wantErr(t, "Record wrong attempt", s.RecordAttempt(ctx(t), "A", store.Attempt{DeliveryID: "msg_1", N: 2, State: store.DeliveryPending}), store.ErrNotFound)
	check(t, "Record", s.RecordAttempt(ctx(t), "A", fail))
	wantErr(t, "Record twice", s.RecordAttempt(ctx(t), "A", fail), store.ErrNotFound)

	// Not due before NextAt; then attempt 2.
	got, err = s.ClaimDeliveries(ctx(t), "B", at(4*time.Minute), at(10*time.Minute), 10)
	check(t, "Claim early", err)
	diff(t, "Claim early", []store.Delivery(nil), got)
	got, err = s.ClaimDeliveries(ctx(t), "B", at(5*time.Minute), at(10*time.Minute), 10)
	check(t, "Claim 2", err)
	if len(got) != 1 || got[0].Attempts != 2 {
		t.Fatalf("Claim 2: got %+v, want msg_1 attempt 2", got)
	}
	// A lease that ends without a record: the next claim is attempt 3, never 2 again.
	got, err = s.ClaimDeliveries(ctx(t), "A", at(10*time.Minute), at(20*time.Minute), 10)
	check(t, "Claim after lease", err)
	if len(got) != 1 || got[0].Attempts != 3 {
		t.Fatalf("Claim after lease: got %+v, want msg_1 attempt 3", got)
	}
	wantErr(t, "Record by the old holder", s.RecordAttempt(ctx(t), "B",
		store.Attempt{DeliveryID: "msg_1", N: 2, State: store.DeliveryDelivered}), store.ErrNotFound)
	ok := store.Attempt{DeliveryID: "msg_1", N: 3, At: at(11 * time.Minute), Status: 204, State: store.DeliveryDelivered}
	check(t, "Record 3", s.RecordAttempt(ctx(t), "A", ok))

	ds, err := s.Deliveries(ctx(t), store.DeliveryFilter{})
	check(t, "Deliveries", err)
	if len(ds) != 2 || ds[0].ID != "msg_2" || ds[1].ID != "msg_1" {
		t.Fatalf("Deliveries: got %+v, want msg_2, msg_1", ds)
	}
	d := ds[1]
	if d.State != store.DeliveryDelivered || d.Attempts != 3 || !d.NextAt.IsZero() {
		t.Errorf("delivered: got state %s attempts %d next %v", d.State, d.Attempts, d.NextAt)
	}
	diff(t, "Log", []store.Attempt{fail, ok}, d.Log)
	ds, err = s.Deliveries(ctx(t), store.DeliveryFilter{State: store.DeliveryPending})
	check(t, "Deliveries pending", err)
	if len(ds) != 1 || ds[0].ID != "msg_2" {
		t.Errorf("Deliveries pending: got %+v, want msg_2", ds)
	}
	ds, err = s.Deliveries(ctx(t), store.DeliveryFilter{WebhookID: "wh_other"})
	check(t, "Deliveries other", err)
	diff(t, "Deliveries other webhook", []store.Delivery(nil), ds)
	ds, err = s.Deliveries(ctx(t), store.DeliveryFilter{Limit: 1})
	check(t, "Deliveries limit", err)
	if len(ds) != 1 || ds[0].ID != "msg_2" {
		t.Errorf("Deliveries limit 1: got %+v, want msg_2", ds)
	}

	// Removing the webhook fails what is pending, keeps the log.
	check(t, "DeleteWebhook", s.DeleteWebhook(ctx(t), "wh_a", at(time.Hour)))
	ds, err = s.Deliveries(ctx(t), store.DeliveryFilter{WebhookID: "wh_a"})
	check(t, "Deliveries after delete", err)
	if len(ds) != 2 || ds[0].State != store.DeliveryFailed || ds[1].State != store.DeliveryDelivered {
		t.Errorf("after delete: got %+v", ds)
	}
	got, err = s.ClaimDeliveries(ctx(t), "A", at(2*time.Hour), at(3*time.Hour), 10)
	check(t, "Claim after delete", err)
	diff(t, "Claim after delete", []store.Delivery(nil), got)
}

// testClaimConcurrent: claimers racing for the same due deliveries never
// get the same attempt.
func testClaimConcurrent(t *testing.T, s store.Store) {
	const n = 40
	var ds []store.Delivery
	for i := range n {
		ds = append(ds, delivery(fmt.Sprintf("msg_%02d", i), "wh_a", t0))
	}
	check(t, "Enqueue", s.EnqueueDeliveries(ctx(t), ds))
	var mu sync.Mutex
	seen := map[string]string{}
	var wg sync.WaitGroup
	for w := range 4 {
		owner := fmt.Sprintf("w%d", w)
		wg.Go(func() {
			for {
				got, err := s.ClaimDeliveries(ctx(t), owner, at(time.Minute), at(time.Hour), 3)
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, d := range got {
					key := fmt.Sprintf("%s#%d", d.ID, d.Attempts)
					if prev, ok := seen[key]; ok {
						t.Errorf("attempt %s claimed by %s and %s", key, prev, owner)
					}
					seen[key] = owner
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != n {
		t.Errorf("claimed %d attempts, want %d", len(seen), n)
	}
}
