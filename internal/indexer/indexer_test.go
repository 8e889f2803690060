package indexer_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"latchkey/internal/indexer"
)

// TestMain: run as "lower", the test binary lowers its priority with
// Lower, starts a thread's worth of work, and prints every thread's nice
// value and scheduling policy.
func TestMain(m *testing.M) {
	if v := os.Getenv("INDEXER_TEST_LOWER"); v != "" {
		if err := indexer.Lower(v == "idle"); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		done := make(chan struct{})
		go func() { time.Sleep(10 * time.Millisecond); close(done) }()
		<-done
		stats, _ := filepath.Glob("/proc/self/task/*/stat")
		for _, f := range stats {
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			rest := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
			fmt.Printf("%s/%s\n", rest[16], rest[38])
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestLower: every thread ends at nice 19, under SCHED_IDLE (policy 5)
// if asked, else under SCHED_OTHER (policy 0).
func TestLower(t *testing.T) {
	for _, tt := range []struct{ env, want string }{{"idle", "19/5"}, {"nice", "19/0"}} {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "INDEXER_TEST_LOWER="+tt.env)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("lowered child (%s): %v: %s", tt.env, err, out)
		}
		lines := strings.Fields(string(out))
		if len(lines) < 2 {
			t.Fatalf("child printed %q, want a line per thread", out)
		}
		for _, l := range lines {
			if l != tt.want {
				t.Fatalf("%s: threads' nice/policy %v, want every one %s", tt.env, lines, tt.want)
			}
		}
	}
}

func pidOf(t *testing.T, p *indexer.Process, not int) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if pid := p.Pid(); pid != 0 && pid != not {
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatal("no process after 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSupervise: a process that dies is restarted, Stop ends it and no
// restart follows, and a command that cannot start is an error.
func TestSupervise(t *testing.T) {
	p, err := indexer.Start(slog.New(slog.DiscardHandler), []string{"sleep", "60"})
	if err != nil {
		t.Fatal(err)
	}
	first := pidOf(t, p, 0)
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	second := pidOf(t, p, first)
	p.Stop()
	if p.Pid() != 0 {
		t.Fatalf("Pid %d after Stop", p.Pid())
	}
	if err := syscall.Kill(second, 0); err == nil {
		t.Fatalf("process %d still exists after Stop", second)
	}
	p.Stop() // twice is harmless

	if _, err := indexer.Start(slog.New(slog.DiscardHandler), []string{filepath.Join(t.TempDir(), "none")}); err == nil {
		t.Fatal("Start of a missing binary succeeded")
	}
	if _, err := indexer.Start(slog.New(slog.DiscardHandler), nil); err == nil {
		t.Fatal("Start of no command succeeded")
	}
}

// TestWatchParent: the context ends when the parent is not the one given.
func TestWatchParent(t *testing.T) {
	ctx := indexer.WatchParent(t.Context(), os.Getppid())
	select {
	case <-ctx.Done():
		t.Fatal("done while the parent lives")
	case <-time.After(600 * time.Millisecond):
	}
	ctx = indexer.WatchParent(context.Background(), os.Getppid()+100000)
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("not done 5s after the parent changed")
	}
}
