package loadgen

import "syscall"

// driverProcAttr has the kernel kill the driver process when the thread
// of Run that started it dies, so that a killed bench leaves no load
// behind. A driver whose standard input closes also ends.
func driverProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
