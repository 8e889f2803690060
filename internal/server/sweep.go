package server

import (
	"context"

	"latchkey/internal/sweeper"
)

// startSweeper runs the sweeper (package sweeper) every cfg.SweepEvery
// until the returned stop is called; with SweepEvery zero it runs none.
// Replicas sharing the store each run one: the store lease lets one
// sweep at a time.
func startSweeper(cfg Config, in *instance) (stop func(), err error) {
	if cfg.SweepEvery <= 0 {
		return func() {}, nil
	}
	sw, err := sweeper.New(sweeper.Config{Authority: in.a, Every: cfg.SweepEvery, ExpiryNotice: cfg.ExpiryNotice, Log: cfg.Log})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); sw.Run(ctx) }()
	cfg.Log.Info("sweeper running", "every", cfg.SweepEvery, "expiry_notice", cfg.ExpiryNotice)
	return func() { cancel(); <-done }, nil
}
