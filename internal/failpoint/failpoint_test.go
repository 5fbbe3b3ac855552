package failpoint

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// TestHitKillsOnce runs a child process that passes two points, the second
// twice, with the second pass of the second armed: it dies by SIGKILL
// there, and the arming file is gone.
func TestHitKillsOnce(t *testing.T) {
	if dir := os.Getenv("FAILPOINT_CHILD_DIR"); dir != "" {
		Enable(dir)
		Hit("Call:first")
		os.WriteFile(filepath.Join(dir, "passed-first"), nil, 0o600)
		Hit("Call:second")
		Hit("Call:second")
		os.WriteFile(filepath.Join(dir, "passed-second"), nil, 0o600)
		return
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte("Call:second@2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func() error {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHitKillsOnce$")
		cmd.Env = append(os.Environ(), "FAILPOINT_CHILD_DIR="+dir)
		return cmd.Run()
	}
	err := run()
	exit, ok := err.(*exec.ExitError)
	if !ok || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, want killed by SIGKILL", err)
	}
	for name, want := range map[string]bool{"passed-first": true, "passed-second": false, FileName: false} {
		if _, err := os.Stat(filepath.Join(dir, name)); (err == nil) != want {
			t.Errorf("%s exists: %v, want %v", name, err == nil, want)
		}
	}
	if err := run(); err != nil {
		t.Fatalf("the restarted child died again: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "passed-second")); err != nil {
		t.Error("the restarted child did not get past the point")
	}
}
