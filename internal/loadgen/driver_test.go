package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

// driveEnv, set to 1 in the environment, makes the test binary the driver
// process (Drive on its standard input and output) instead of running the
// tests: what selfDriver starts when a test sets it.
const driveEnv = "LOADGEN_TEST_DRIVE"

func TestMain(m *testing.M) {
	if os.Getenv(driveEnv) == "1" {
		if err := Drive(context.Background(), os.Stdin, os.Stdout); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// lines encodes each of vs as one JSON line.
func lines(t testing.TB, vs ...any) string {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for _, v := range vs {
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

// replies decodes Drive's output, one driverReply per line.
func replies(t *testing.T, out string) []driverReply {
	t.Helper()
	var reps []driverReply
	for l := range strings.Lines(out) {
		var r driverReply
		if err := strictUnmarshal([]byte(l), &r); err != nil {
			t.Fatalf("reply %q: %v", l, err)
		}
		reps = append(reps, r)
	}
	return reps
}

// TestDrive feeds Drive a setup and one order of each op against a
// server that refuses one token, and checks one reply per order with
// the failures counted per order.
func TestDrive(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "Bearer bad" {
			http.Error(w, "no", http.StatusUnauthorized)
		}
	}))
	defer srv.Close()
	setup := driverSetup{Conns: 2, Auths: []string{"Bearer bad", "Bearer good"}, Targets: []driverDest{{Name: "srv", URL: srv.URL + "/x"}}}
	in := lines(t, setup,
		order{Op: opEach, Target: "srv", AtLeast: 4, Auths: 1},
		order{Op: opRound, Target: "srv", Duration: 50 * time.Millisecond},
		order{Op: opPaced, Target: "srv", Duration: 100 * time.Millisecond, Rate: 100},
		order{Op: opEach, Target: "srv", AtLeast: 3, Auths: 2})
	var out bytes.Buffer
	if err := Drive(context.Background(), strings.NewReader(in), &out); err != nil {
		t.Fatal(err)
	}
	reps := replies(t, out.String())
	if len(reps) != 4 {
		t.Fatalf("%d replies, want 4:\n%s", len(reps), out.String())
	}
	if r := reps[0]; r.Failed != 4 || !strings.Contains(r.FirstError, "srv: 401") || r.Round.Requests != 0 || r.Error != "" {
		t.Errorf("each with the bad token: %+v", r)
	}
	for i, r := range reps[1:3] {
		if r.Round.Requests == 0 || r.Failed != r.Round.Errors || r.Failed == 0 || r.Error != "" {
			t.Errorf("round %d: %+v", i, r)
		}
	}
	if r := reps[2]; r.Round.Requests != 10 { // 100/s for 0.1 s
		t.Errorf("paced round: %d requests, want 10", r.Round.Requests)
	}
	if r := reps[3]; r.Failed != 2 { // bad, good, bad
		t.Errorf("each with both tokens: %+v", r)
	}
}

// TestDriveTogether drives two servers at once: one reply holding an
// answer per target, in the order asked, each with its own requests and
// failures, on one schedule.
func TestDriveTogether(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer ok.Close()
	refuse := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusForbidden)
	}))
	defer refuse.Close()
	setup := driverSetup{Conns: 2, Auths: []string{"Bearer a"},
		Targets: []driverDest{{Name: "ok", URL: ok.URL + "/x"}, {Name: "refuse", URL: refuse.URL + "/x"}}}
	in := lines(t, setup, order{Op: opTogether, Targets: []string{"refuse", "ok"}, Duration: 100 * time.Millisecond, Rate: 100})
	var out bytes.Buffer
	if err := Drive(context.Background(), strings.NewReader(in), &out); err != nil {
		t.Fatal(err)
	}
	reps := replies(t, out.String())
	if len(reps) != 1 || len(reps[0].Together) != 2 {
		t.Fatalf("replies %+v, want one with two answers", reps)
	}
	refused, served := reps[0].Together[0], reps[0].Together[1]
	if refused.Round.Requests != 10 || refused.Failed != 10 || !strings.Contains(refused.FirstError, "refuse: 403") {
		t.Errorf("refusing target: %+v, want 10 requests, all failed", refused)
	}
	if served.Round.Requests != 10 || served.Failed != 0 || served.FirstError != "" {
		t.Errorf("serving target: %+v, want 10 requests, none failed", served)
	}
}

// TestDriveRefuses checks that a bad line is answered with a reply saying
// so, and ends Drive with an error.
func TestDriveRefuses(t *testing.T) {
	setup := driverSetup{Conns: 1, Auths: []string{"Bearer x"}, Targets: []driverDest{{Name: "a", URL: "http://127.0.0.1:1/"}}}
	for _, tc := range []struct {
		name, in, want string
	}{
		{"not JSON", "hello\n", "bad setup"},
		{"unknown setup field", `{"conns":1,"auths":["a"],"extra":1}` + "\n", "bad setup"},
		{"no connections", lines(t, driverSetup{Auths: []string{"a"}}), "0 connections"},
		{"too many connections", lines(t, driverSetup{Conns: MaxConns + 1, Auths: []string{"a"}}), "connections (want 1 to"},
		{"no tokens", lines(t, driverSetup{Conns: 1}), "0 Authorization values"},
		{"unknown target", lines(t, setup, order{Op: opRound, Target: "b", Duration: time.Second}), `no target "b"`},
		{"unknown op", lines(t, setup, order{Op: "fly", Target: "a"}), "bad order"},
		{"no duration", lines(t, setup, order{Op: opRound, Target: "a"}), "bad order"},
		{"paced without rate", lines(t, setup, order{Op: opPaced, Target: "a", Duration: time.Second}), "bad order"},
		{"too many tokens", lines(t, setup, order{Op: opEach, Target: "a", Auths: 2}), "bad order"},
		{"together, no targets", lines(t, setup, order{Op: opTogether, Duration: time.Second, Rate: 1}), "bad order"},
		{"together, unknown target", lines(t, setup, order{Op: opTogether, Targets: []string{"a", "b"}, Duration: time.Second, Rate: 1}), `no target "b"`},
		{"together, a target twice", lines(t, setup, order{Op: opTogether, Targets: []string{"a", "a"}, Duration: time.Second, Rate: 1}), `target "a" twice`},
		{"together, with a target", lines(t, setup, order{Op: opTogether, Target: "a", Targets: []string{"a"}, Duration: time.Second, Rate: 1}), "bad order"},
		{"together, no rate", lines(t, setup, order{Op: opTogether, Targets: []string{"a"}, Duration: time.Second}), "bad order"},
		{"targets of a round", lines(t, setup, order{Op: opRound, Target: "a", Targets: []string{"a"}, Duration: time.Second}), "targets are for together only"},
		{"bad order line", lines(t, setup) + "{\n", "bad order"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := Drive(context.Background(), strings.NewReader(tc.in), &out)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one with %q", err, tc.want)
			}
			reps := replies(t, out.String())
			if len(reps) != 1 || !strings.Contains(reps[0].Error, tc.want) {
				t.Errorf("replies %+v, want one with error %q", reps, tc.want)
			}
		})
	}
}

// TestDriveEndsWithInput checks that Drive returns nil when its input
// ends, with or without a setup.
func TestDriveEndsWithInput(t *testing.T) {
	for _, in := range []string{"", lines(t, driverSetup{Conns: 1, Auths: []string{"a"}})} {
		var out bytes.Buffer
		if err := Drive(context.Background(), strings.NewReader(in), &out); err != nil || out.Len() != 0 {
			t.Errorf("input %q: error %v, output %q", in, err, out.String())
		}
	}
}

// TestDriverDies checks that a driver process that exits, or answers
// something else than a reply, is an error naming it, not a hang.
func TestDriverDies(t *testing.T) {
	setup := driverSetup{Conns: 1, Auths: []string{"a"}, Targets: []driverDest{{Name: "a", URL: "http://127.0.0.1:1/"}}}
	for _, tc := range []struct {
		name, script, want string
	}{
		{"exits", "exit 3", "exit status 3"},
		{"exits after setup", "read x; exit 4", "exit status 4"},
		{"exits after order", "read x; read y; exit 0", "exited without a reply"},
		{"garbage", "read x; read y; echo hello", "bad reply"},
		{"unknown field", `read x; read y; echo '{"rounds":1}'`, "bad reply"},
		{"refuses", `read x; read y; echo '{"error":"no such thing"}'`, "no such thing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			d, err := startDriver([]string{"/bin/sh", "-c", tc.script}, &stderr, setup)
			if err == nil {
				_, err = d.do(context.Background(), order{Op: opRound, Target: "a", Duration: time.Second})
				d.close()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "driver process /bin/sh") {
				t.Errorf("error %v, want one naming /bin/sh with %q", err, tc.want)
			}
		})
	}
}

// TestRunDriverProcess runs a tiny load with the clients in a driver
// process: the test binary itself, made one by driveEnv.
func TestRunDriverProcess(t *testing.T) {
	t.Setenv(driveEnv, "1")
	cfg := Config{Conns: 2, Duration: 200 * time.Millisecond, Rounds: 1, Tokens: 10, Dir: t.TempDir(),
		DriverProcess: true, Paced: true, Rate: 125, Together: true}
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.DriverProcess || rep.Errors() != 0 || len(rep.Targets) != 5 || rep.Paced == nil || rep.Together == nil {
		t.Fatalf("report %+v", rep)
	}
	for _, tg := range rep.Together.Targets {
		if tg.Requests != 5 || tg.Errors != 0 { // 125/s shared by 5 targets for 0.2 s
			t.Errorf("%s: %d requests and %d errors together, want 5 and 0", tg.Name, tg.Requests, tg.Errors)
		}
	}
	for _, tg := range append(rep.Targets, rep.Paced.Targets...) {
		if tg.Requests == 0 || tg.P50 <= 0 {
			t.Errorf("%s: implausible %+v", tg.Name, tg)
		}
	}
	for _, tg := range rep.Paced.Targets {
		if tg.Requests != 25 { // 125/s for 0.2 s
			t.Errorf("%s: %d paced requests, want 25", tg.Name, tg.Requests)
		}
	}
	if h := rep.Targets[2].CacheHits + rep.Targets[2].CacheMisses; h < uint64(rep.Targets[2].Requests) {
		t.Errorf("audited gateway: %d token lookups for %d requests", h, rep.Targets[2].Requests)
	}
}

// TestRunDriverProcessCounts checks that failures in the driver process
// are counted in the report: a token the gateways do not know.
func TestRunDriverProcessCounts(t *testing.T) {
	t.Setenv(driveEnv, "1")
	cfg := Config{Conns: 1, Duration: 100 * time.Millisecond, Rounds: 1, Tokens: 2, Dir: t.TempDir()}
	r := testRig(t, cfg)
	// First, so that the connection sends it first; the driver is
	// started with it.
	r.auths = append([]string{"Bearer lk_unknown"}, r.auths...)
	gw := r.targets[2]
	if err := r.startDriver(); err != nil {
		t.Fatal(err)
	}
	res, err := r.round(context.Background(), gw)
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors == 0 || gw.errs.Load() != res.Errors {
		t.Errorf("round counted %d errors, target %d; want the same, above 0", res.Errors, gw.errs.Load())
	}
	if e := gw.firstErr.Load(); e == nil || !strings.Contains(*e, "401") {
		t.Errorf("first error %v, want a 401", e)
	}
}

// FuzzDrive feeds Drive any input, with its context already done so that
// no order sends a request: whatever the lines, it answers at most one
// reply per line, every reply valid JSON, and returns.
func FuzzDrive(f *testing.F) {
	setup := driverSetup{Conns: 2, Auths: []string{"Bearer x", "Bearer y"}, Targets: []driverDest{{Name: "a", URL: "http://127.0.0.1:1/"}}}
	f.Add([]byte(lines(f, setup, order{Op: opRound, Target: "a", Duration: time.Second})))
	f.Add([]byte(lines(f, setup, order{Op: opPaced, Target: "a", Duration: time.Second, Rate: 10})))
	f.Add([]byte(lines(f, setup, order{Op: opTogether, Targets: []string{"a"}, Duration: time.Second, Rate: 10})))
	f.Add([]byte(lines(f, setup, order{Op: opEach, Target: "a", Auths: 2, AtLeast: 5})))
	f.Add([]byte("hello\n"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		Drive(ctx, bytes.NewReader(in), &out)
		n := 0
		for line := range strings.Lines(out.String()) {
			var rep driverReply
			if err := strictUnmarshal([]byte(line), &rep); err != nil {
				t.Fatalf("reply %q: %v", line, err)
			}
			n++
		}
		if lines := bytes.Count(in, []byte("\n")) + 1; n > lines {
			t.Fatalf("%d replies to %d lines", n, lines)
		}
	})
}
