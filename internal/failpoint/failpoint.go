// Package failpoint kills the plugin at a named point inside a Docker call,
// once: the lab's fault-injection scenario uses it to crash the plugin at
// every instant that matters and check that nothing is lost or leaked.
//
// A point is armed by writing its name ("NetworkDriver.Join:link-created")
// into the file "failpoint" in the plugin's state directory (the plugin's
// propagated mount on a Docker host); "NAME@N" fires the Nth time the
// process passes NAME. The file is removed just before the kill, so the
// plugin Docker restarts runs on. Without the file nothing happens but one
// failed read per point passed.
package failpoint

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
)

// FileName is the file in the state directory that arms a point.
const FileName = "failpoint"

var (
	armFile atomic.Pointer[string]

	mu     sync.Mutex
	passes = map[string]int{} // by point
)

// Enable makes Hit look for the arming file in dir.
func Enable(dir string) {
	path := filepath.Join(dir, FileName)
	armFile.Store(&path)
}

// Hit kills the process with SIGKILL, as a crash would, if point is armed.
func Hit(point string) {
	path := armFile.Load()
	if path == nil {
		return
	}
	raw, err := os.ReadFile(*path)
	if err != nil {
		return
	}
	name, nth, _ := strings.Cut(strings.TrimSpace(string(raw)), "@")
	if name != point {
		return
	}
	mu.Lock()
	passes[point]++
	n := passes[point]
	mu.Unlock()
	if want, err := strconv.Atoi(nth); err == nil && n != want {
		return
	}
	if os.Remove(*path) != nil {
		return // it would fire again after the restart, forever
	}
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	// A managed plugin is PID 1 of its own PID namespace, and the kernel
	// ignores a SIGKILL that process sends itself: end it as abruptly,
	// with the status a SIGKILL leaves.
	os.Exit(128 + int(syscall.SIGKILL))
}
