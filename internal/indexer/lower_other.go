//go:build !linux

package indexer

import (
	"fmt"
	"syscall"
)

// sysProcAttr: only Linux has a parent-death signal; WatchParent ends the
// indexer there.
func sysProcAttr() *syscall.SysProcAttr { return nil }

// selfImage is the file to execute to run this process's own binary.
func selfImage(exe string) string { return exe }

// Lower gives this process the lowest processor priority (nice 19); idle
// has no meaning here.
func Lower(idle bool) error {
	if err := syscall.Setpriority(syscall.PRIO_PROCESS, 0, 19); err != nil {
		return fmt.Errorf("indexer: lower priority: %w", err)
	}
	return nil
}
