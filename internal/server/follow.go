package server

import (
	"context"
	"time"
)

// DefaultInvalidationPoll is Config.InvalidationPoll's default.
const DefaultInvalidationPoll = time.Second

// startFollower makes the Authority follow the store's invalidation feed
// every cfg.InvalidationPoll (and prune it hourly), so that a token
// revoked, rotated or offboarded by another process on the same store is
// refused here within about that long instead of after the cache's
// minute, until the returned stop is called.
func startFollower(cfg Config, in *instance) (stop func(), err error) {
	f, err := in.a.Follow(context.Background())
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx, cfg.InvalidationPoll) }()
	cfg.Log.Debug("following token invalidations", "every", cfg.InvalidationPoll, "from", f.Last())
	return func() { cancel(); <-done }, nil
}
