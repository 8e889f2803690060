package main

import (
	"regexp"
	"strconv"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// cmdWaitout: waitout SECONDS REGEXP PROGRAM [ARGS...]
//
// runs PROGRAM like exec, again every 100 ms, until it succeeds with a
// stdout that matches REGEXP, for at most SECONDS; stdout is then that
// run's. It waits for what the server does by itself (the sweeper) with
// a deadline, never asserting how long it took.
func cmdWaitout(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 3 {
		ts.Fatalf("usage: waitout SECONDS REGEXP PROGRAM [ARGS...]")
	}
	secs, err := strconv.Atoi(args[0])
	ts.Check(err)
	re, err := regexp.Compile("(?m)" + args[1])
	ts.Check(err)
	deadline := time.Now().Add(time.Duration(secs) * time.Second)
	for {
		if err := ts.Exec(args[2], args[3:]...); err == nil && re.MatchString(ts.ReadFile("stdout")) {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("no output of %s matched %q within %ds", args[2], args[1], secs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
