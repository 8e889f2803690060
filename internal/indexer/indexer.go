/*
Package indexer runs the SQLite store's audit search indexer
(sqlite.IndexAudit) in a process of its own beside serve, at the lowest
processor and I/O priority, restarts it when it dies, and ends it with its
parent. The same process is serve's audit helper.

Indexing a gateway request's audit record costs some 15 µs of processor
time, in bursts each time the indexer catches up. In serve's own process
that time came out of the gateway's two goroutine processors (P) on a
two-core machine, and with it the collections of the garbage it makes:
the gateway's p99 rose by several milliseconds at half load. In a
process of its own at nice 19, the kernel runs it only on time the
gateway leaves, preempting it as soon as a gateway thread wakes, and its
heap is its own. Searches stay exact whatever it does: a search that
finds the index behind brings it up to date first.

Adding the records serve journals to the audit log's Merkle tree
(integrating them) cost serve the same way: some 4 µs of processor time
per record, in a burst every 20 ms. As the audit helper, the process
integrates them instead (sqlite.FollowJournal), and serve only takes
them off its queue; serve integrates itself the records the helper
leaves longer than a hold (sqlite.AuditHelper), so the helper is never
needed for the records to reach the tree.
*/
package indexer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Backoff bounds: how long Start waits before restarting an indexer that
// exited, doubling from minBackoff while it keeps dying within a minute.
const (
	minBackoff = time.Second
	maxBackoff = 30 * time.Second
	stopWait   = 5 * time.Second
)

// A Process supervises one indexer process.
type Process struct {
	argv []string
	self bool // argv[0] is this process's binary
	log  *slog.Logger

	mu      sync.Mutex
	cmd     *exec.Cmd // the running one, or nil
	stop    chan struct{}
	done    chan struct{}
	stopped sync.Once
}

// Start starts argv (the latchkey binary and its arguments, as Beside
// gives them) as the indexer process, and keeps it running until Stop: an
// indexer that exits is restarted after a backoff, with a warning on log.
// The process shares serve's standard error.
func Start(log *slog.Logger, argv []string) (*Process, error) {
	if len(argv) == 0 {
		return nil, errors.New("indexer: no command")
	}
	p := &Process{argv: argv, log: log, stop: make(chan struct{}), done: make(chan struct{})}
	if exe, err := os.Executable(); err == nil && exe == argv[0] {
		p.self = true
	}
	cmd, err := p.start()
	if err != nil {
		return nil, err
	}
	go p.supervise(cmd)
	return p, nil
}

// Beside starts, and supervises as Start does, the audit search indexer
// of the SQLite store file at dbPath (opened with
// sqlite.ExternalIndexer) in a process beside this one: this binary's
// "audit index --follow", bound to this process. With integrate above
// zero the process is also the store's audit helper (sqlite.AuditHelper):
// every integrate it adds the journalled audit records to the tree
// (sqlite.FollowJournal). Start it once the store is open (and so
// migrated), stop it before closing the store.
func Beside(log *slog.Logger, dbPath string, integrate time.Duration) (*Process, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("indexer: %w", err)
	}
	argv := []string{exe, "audit", "index", "--data", filepath.Dir(dbPath), "--follow",
		"--background", strconv.Itoa(os.Getpid())}
	if integrate > 0 {
		argv = append(argv, "--integrate", integrate.String())
	}
	return Start(log, argv)
}

func (p *Process) start() (*exec.Cmd, error) {
	cmd := exec.Command(p.argv[0], p.argv[1:]...)
	if p.self {
		// This binary: run the image this process runs (selfImage), not
		// whatever file is at its path now, so that a restart after an
		// upgrade replaced the file starts the same version as serve.
		cmd.Path = selfImage(p.argv[0])
	}
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("indexer: start %s: %w", p.argv[0], err)
	}
	p.mu.Lock()
	p.cmd = cmd
	p.mu.Unlock()
	return cmd, nil
}

func (p *Process) supervise(cmd *exec.Cmd) {
	defer close(p.done)
	backoff := minBackoff
	for {
		began := time.Now()
		err := cmd.Wait()
		p.mu.Lock()
		p.cmd = nil
		p.mu.Unlock()
		select {
		case <-p.stop:
			return
		default:
		}
		if time.Since(began) > time.Minute {
			backoff = minBackoff
		}
		p.log.Warn("audit indexer process exited; restarting it", "err", exitText(err), "in", backoff)
		select {
		case <-p.stop:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
		for {
			if cmd, err = p.start(); err == nil {
				break
			}
			p.log.Warn("audit indexer process did not start", "err", err, "retry_in", backoff)
			select {
			case <-p.stop:
				return
			case <-time.After(backoff):
			}
		}
	}
}

// exitText describes how a process ended.
func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// Pid is the indexer process's id, or 0 between a death and its restart.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Stop ends the indexer process (SIGTERM, then SIGKILL after stopWait)
// and waits for it.
func (p *Process) Stop() {
	p.stopped.Do(func() {
		close(p.stop)
		p.mu.Lock()
		cmd := p.cmd
		p.mu.Unlock()
		if cmd != nil {
			_ = cmd.Process.Signal(syscall.SIGTERM)
		}
		select {
		case <-p.done:
		case <-time.After(stopWait):
			if cmd != nil {
				_ = cmd.Process.Kill()
			}
			<-p.done
		}
	})
}

// WatchParent returns a context that is done when ctx is, or once this
// process's parent is no longer the process parent (it died, and the
// process was handed to another).
func WatchParent(ctx context.Context, parent int) context.Context {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			if os.Getppid() != parent {
				cancel()
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return ctx
}
