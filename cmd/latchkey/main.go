/*
Command latchkey issues contractors least-privilege, expiring, audited API
tokens. See package latchkey/internal/cli for the command line.
*/
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"latchkey/internal/cli"
)

func main() {
	os.Exit(run())
}

// run runs the command line until it finishes or SIGINT/SIGTERM cancels
// it, and returns the exit status. A second signal after the first is not
// caught, so it ends a stuck shutdown at once.
func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	context.AfterFunc(ctx, stop)
	return cli.ExitCode(cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}
