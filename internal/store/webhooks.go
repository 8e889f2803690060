package store

import "time"

// Webhook is an HTTP endpoint that receives signed notifications (package
// notify). Its URL and signing secret are kept only sealed (package
// seal): a URL's path or query may itself be a credential (a Slack
// incoming webhook's is). Only the URL's scheme and host, and a
// fingerprint, are kept in clear, for listings.
type Webhook struct {
	ID string // "wh_" and random text; unique, immutable key
	// SealedURL is the ciphertext of the absolute http(s) URL the
	// deliveries are POSTed to; opaque to the store. Required.
	SealedURL []byte
	// URLHost is the URL's scheme and host ("https://hooks.slack.com"),
	// never its path or query.
	URLHost string
	// URLFingerprint is the first 8 hex digits of the SHA-256 of the full
	// URL: it tells apart two webhooks on one host, and reveals nothing
	// of the path.
	URLFingerprint string
	// SealedSecret is the ciphertext of the signing secret; opaque to the store.
	SealedSecret []byte
	Events       []string // event types it receives; empty = all
	Format       string   // "standard" or "slack"
	CreatedAt    time.Time
	CreatedBy    string
}

// Delivery states.
const (
	DeliveryPending   = "pending"   // waiting for its next attempt
	DeliveryDelivered = "delivered" // an attempt got a 2xx answer
	DeliveryFailed    = "failed"    // out of attempts, or its webhook was removed
)

// Delivery is one notification queued for one webhook (the outbox): the
// exact body to POST, and where it stands.
type Delivery struct {
	ID        string // "msg_" and random text: the webhook-id header, the same on every attempt
	WebhookID string
	Event     string    // event type
	Payload   []byte    // the request body, as sent
	State     string    // a Delivery* state
	Attempts  int       // attempts claimed so far
	NextAt    time.Time // when the next attempt is due (pending only)
	CreatedAt time.Time
	UpdatedAt time.Time
	// Log lists the attempts recorded, oldest first (filled by Deliveries).
	Log []Attempt
}

// Attempt is the record of one delivery attempt.
type Attempt struct {
	DeliveryID string
	N          int       // attempt number, from 1
	At         time.Time // when it was made
	Status     int       // HTTP status, 0 if none came
	Error      string    // why it failed ("" if delivered); never a secret
	State      string    // the delivery's state after this attempt
	NextAt     time.Time // the next attempt, if State is pending
}

// DeliveryFilter selects deliveries in Deliveries. Zero fields select everything.
type DeliveryFilter struct {
	WebhookID string
	State     string
	Limit     int // at most this many, newest first; 0 = no limit
}
