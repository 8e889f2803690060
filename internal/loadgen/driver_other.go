//go:build !linux

package loadgen

import "syscall"

// driverProcAttr is nil off Linux: the driver process ends when its
// standard input closes, which the death of its parent does.
func driverProcAttr() *syscall.SysProcAttr { return nil }
