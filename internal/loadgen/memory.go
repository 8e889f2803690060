package loadgen

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
)

// status is what readStatus reads of /proc/self/status, in bytes.
type status struct {
	rss, hwm int64
}

// readStatus reads VmRSS and VmHWM of this process from /proc/self/status,
// whose lines read "VmRSS:	   12345 kB". Where there is no such file, or
// no such line, the field is zero.
func readStatus() status {
	var s status
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return s
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) != 3 || string(f[2]) != "kB" {
			continue
		}
		n, err := strconv.ParseInt(string(f[1]), 10, 64)
		if err != nil {
			continue
		}
		switch string(f[0]) {
		case "VmRSS:":
			s.rss = n << 10
		case "VmHWM:":
			s.hwm = n << 10
		}
	}
	return s
}

// memory reads the process's memory now, with tokens cached, as a
// gateway's steady state: it first collects the garbage and returns the
// free memory to the OS (debug.FreeOSMemory), so that the garbage of
// creating and warming up the tokens in this process does not count. The
// live heap is the heap after that collection. HWM is the peak before it,
// setup included.
func memory(tokens int) Memory {
	runtime.GC()         // the second collection frees what finalizers of the first let go
	debug.FreeOSMemory() // collects again, then returns what is free
	s := readStatus()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return Memory{CachedTokens: tokens, RSS: s.rss, HWM: s.hwm, HeapLive: int64(ms.HeapAlloc)}
}
