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
// policy falls back on should it be refused, and the priority when the
// idle policy is not asked for), and the idle I/O scheduling class.
const (
	schedOther    = 0 // SCHED_OTHER
	schedIdle     = 5 // SCHED_IDLE
	lowestNice    = 19
	ioprioWhoProc = 1 // IOPRIO_WHO_PROCESS
	ioprioIdle    = 3 << 13
)

// Lower gives every thread of this process, and so every thread they
// start from now on, the lowest processor priority and the idle I/O
// class: nice 19, under the SCHED_IDLE policy if idle (it runs a thread
// only on time no other wants), else under SCHED_OTHER. Whatever policy
// the process inherited (even a real-time one) is replaced. On Linux all
// three are per thread, so it sets them on each of /proc/self/task,
// twice, to catch a thread started during the first pass.
//
// A process that writes serve's own database (the audit helper) must not
// be idle: it holds the database's write lock for each transaction, and
// under a saturated processor an idle thread may not run again for
// seconds, with serve's writes waiting behind it. At nice 19 it still
// gets a small share, and a waking serve thread still preempts it.
func Lower(idle bool) error {
	policy := uintptr(schedOther)
	if idle {
		policy = schedIdle
	}
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
			if _, _, errno := syscall.Syscall(syscall.SYS_SCHED_SETSCHEDULER, uintptr(tid), policy, uintptr(unsafe.Pointer(&param))); errno != 0 {
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
