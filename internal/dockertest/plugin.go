package dockertest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Build compiles the plugin's binary from the package in dir (the repo's
// plugin/), offline, into a temporary directory.
func Build(t testing.TB, dir string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ipvlan-bgp")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod", "GOPROXY=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the plugin: %v\n%s", err, out)
	}
	return bin
}

// Plugin is the plugin's binary run as Docker runs a managed plugin: in the
// current network namespace, state in its own directory, restarted whenever
// it dies.
type Plugin struct {
	Dir    string  // its state directory (the propagated mount)
	Docker *Docker // Docker's side of its socket

	log      syncBuffer
	mu       sync.Mutex
	restarts int
	pid      int // of the running process
}

// Start runs bin with settings (SETTING=VALUE) on top of a test's defaults:
// its sockets in Dir, BGP listening nowhere and peering with nobody, a claim
// window of a second. It returns once the plugin answers Docker, and stops
// it when the test ends, showing its log if the test failed.
func Start(t testing.TB, bin string, settings ...string) *Plugin {
	t.Helper()
	p := &Plugin{Dir: t.TempDir()}
	socket := filepath.Join(p.Dir, "plugin.sock")
	env := append(os.Environ(),
		"STATE_DIR="+p.Dir, "SOCKET="+socket, "STATUS_SOCKET="+filepath.Join(p.Dir, "status.sock"),
		"LOG_LEVEL=debug", "IPAM_CLAIM_WINDOW=1",
		"BGP_ROUTER_ID=10.0.9.1", "BGP_LISTEN_PORT=0", "BGP_API_SOCKET=none", "BGP_CONFIG_FILE=/dev/null",
	)
	env = append(env, settings...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			cmd := exec.CommandContext(ctx, bin)
			cmd.Env, cmd.Stdout, cmd.Stderr = env, &p.log, &p.log
			cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
			err := cmd.Start()
			if err == nil {
				p.mu.Lock()
				p.pid = cmd.Process.Pid
				p.mu.Unlock()
				err = cmd.Wait()
			}
			if ctx.Err() != nil {
				return
			}
			fmt.Fprintf(&p.log, "--- plugin exited: %v; restarting it\n", err)
			p.mu.Lock()
			p.restarts++
			p.mu.Unlock()
			time.Sleep(200 * time.Millisecond)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("plugin log:\n%s", p.log.String())
		}
	})
	p.Docker = New(&http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		},
	}})
	deadline := time.Now().Add(10 * time.Second)
	for p.Docker.Call("NetworkDriver.GetCapabilities", nil, nil) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("the plugin does not answer on %s; its log:\n%s", socket, p.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return p
}

// PID is the running plugin process's.
func (p *Plugin) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pid
}

// Log is what the plugin has written so far (all its runs).
func (p *Plugin) Log() string { return p.log.String() }

// Restarts is how often the plugin died and was started again.
func (p *Plugin) Restarts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.restarts
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
