package loadgen

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
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

// memory reads the process's memory now, with tokens cached. The live
// heap is measured after a collection, which runs after RSS and HWM are
// read so that it does not lower them.
func memory(tokens int) Memory {
	s := readStatus()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return Memory{CachedTokens: tokens, RSS: s.rss, HWM: s.hwm, HeapLive: int64(ms.HeapAlloc)}
}
