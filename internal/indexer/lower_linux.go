package indexer

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
	"unsafe"
)

// sysProcAttr has the kernel send the indexer SIGTERM when serve's thread
// that started it dies. The child also watches its parent id
// (WatchParent): this is the quick path when serve is killed.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}

// selfImage is the file to execute to run this process's own binary:
// /proc/self/exe, which stays this image even once exe, its path, holds
// another (or nothing).
func selfImage(exe string) string {
	if _, err := os.Stat("/proc/self/exe"); err != nil {
		return exe
	}
	return "/proc/self/exe"
}

// Lowest priorities: the idle scheduling policy, nice 19 (what the
// policy falls back on should it be refused), and the idle I/O scheduling
// class.
const (
	schedIdle     = 5 // SCHED_IDLE
	lowestNice    = 19
	ioprioWhoProc = 1 // IOPRIO_WHO_PROCESS
	ioprioIdle    = 3 << 13
)

// Lower gives every thread of this process, and so every thread they
// start from now on, the lowest processor priority (the SCHED_IDLE
// policy, which runs a thread only on time no other wants, and nice 19)
// and the idle I/O class. Whatever policy the process inherited (even a
// real-time one) is replaced. On Linux all three are per thread, so it
// sets them on each of /proc/self/task, twice, to catch a thread started
// during the first pass.
func Lower() error {
	for range 2 {
		ents, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return fmt.Errorf("indexer: lower priority: %w", err)
		}
		for _, e := range ents {
			tid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			var param struct{ priority int32 }
			if _, _, errno := syscall.Syscall(syscall.SYS_SCHED_SETSCHEDULER, uintptr(tid), schedIdle, uintptr(unsafe.Pointer(&param))); errno != 0 {
				return fmt.Errorf("indexer: lower priority of thread %d: %w", tid, errno)
			}
			if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, lowestNice); err != nil {
				return fmt.Errorf("indexer: lower priority of thread %d: %w", tid, err)
			}
			// Best effort: not every kernel's I/O scheduler has classes.
			_, _, _ = syscall.Syscall(syscall.SYS_IOPRIO_SET, ioprioWhoProc, uintptr(tid), ioprioIdle)
		}
	}
	return nil
}
