package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ipvlan-bgp/ipvlan-bgp/internal/dockertest"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/failpoint"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/testnet"
	"github.com/ipvlan-bgp/ipvlan-bgp/status"
)

// TestKillAtEveryStep kills the plugin binary (SIGKILL, through a
// failpoint) at each step of the calls `docker network create`, `docker
// run`, `docker rm` and `docker network rm` send, restarts it as Docker
// restarts a managed plugin, lets the call be retried as dockerd retries it
// (an empty body) and the command be repeated as a user would, and checks
// that the plugin's state after each command equals that of a run without
// the kill, and that nothing is left at the end. (Join and Leave need an
// ipvlan kernel: the lab's fault-injection scenario covers them.)
func TestKillAtEveryStep(t *testing.T) {
	testnet.RequireRoot(t)
	bin := buildPlugin(t)
	testnet.Veth(t, testnet.Host, "eth0", testnet.NewNS(t, "far"), "far0")

	baseline := runLifecycle(t, bin, "")
	points := []string{
		"IpamDriver.RequestPool:received", "IpamDriver.RequestPool:answered",
		"IpamDriver.RequestAddress:answered",   // the gateway's
		"IpamDriver.RequestAddress:answered@2", // the container's: lost, swept
		"NetworkDriver.CreateNetwork:received", "NetworkDriver.CreateNetwork:parent-ready", "NetworkDriver.CreateNetwork:answered",
		"NetworkDriver.CreateEndpoint:received", "NetworkDriver.CreateEndpoint:answered",
		"NetworkDriver.DeleteEndpoint:withdrawn", "NetworkDriver.DeleteEndpoint:answered",
		"IpamDriver.ReleaseAddress:answered",   // the container's
		"IpamDriver.ReleaseAddress:answered@2", // the gateway's
		"NetworkDriver.DeleteNetwork:withdrawn", "NetworkDriver.DeleteNetwork:answered",
		"IpamDriver.ReleasePool:answered",
	}
	for _, point := range points {
		t.Run(point, func(t *testing.T) {
			got := runLifecycle(t, bin, point)
			for _, stage := range slices.Sorted(maps.Keys(baseline)) {
				if got[stage] != baseline[stage] {
					t.Errorf("after %s: state\n%s\nwant, as without the kill,\n%s", stage, got[stage], baseline[stage])
				}
			}
		})
	}
	t.Logf("covered %d kill points, each compared at %d stages", len(points), len(baseline))
}

// runLifecycle runs the four commands against a fresh plugin with point
// armed ("" for none) and returns the plugin's state after each, made
// comparable.
func runLifecycle(t *testing.T, bin, point string) map[string]string {
	t.Helper()
	p := superviseBinary(t, bin)
	if point != "" {
		if err := os.WriteFile(filepath.Join(p.dir, failpoint.FileName), []byte(point), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	d := p.docker.Retrying()
	states := map[string]string{}
	var network *dockertest.Network
	p.repeat("docker network create", func(n int) (err error) {
		network, err = d.NetworkCreate(dockertest.NetworkSpec{ID: dockerID(1+n, "c"), Subnet: "10.77.0.0/24", Options: map[string]string{"parent": "eth0"}})
		return err
	})
	states["1 network create"] = p.state(t)
	var container *dockertest.Container
	p.repeat("docker run", func(n int) (err error) {
		container, err = d.Run(network, dockerID(1+n, "e"), nil)
		return err
	})
	p.waitSweep(t, 1)
	states["2 run"] = p.state(t)
	p.repeat("docker rm", func(int) error { return d.Rm(network, container) })
	p.waitSweep(t, 0)
	states["3 rm"] = p.state(t)
	p.repeat("docker network rm", func(int) error { return d.NetworkRm(network) })
	states["4 network rm"] = p.state(t)
	if point != "" {
		if _, err := os.Stat(filepath.Join(p.dir, failpoint.FileName)); !errors.Is(err, os.ErrNotExist) || p.restarts() == 0 {
			t.Errorf("the plugin never reached %s (failpoint file: %v, restarts %d)", point, err, p.restarts())
		}
	}
	return states
}

// buildPlugin builds the plugin binary once per test run.
func buildPlugin(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ipvlan-bgp")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod", "GOPROXY=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the plugin: %v\n%s", err, out)
	}
	return bin
}

// supervised is the plugin binary run as Docker runs a managed plugin:
// restarted whenever it dies.
type supervised struct {
	dir    string
	docker *dockertest.Docker
	log    *lockedBuffer
	t      *testing.T

	mu    sync.Mutex
	count int // restarts
}

func superviseBinary(t *testing.T, bin string) *supervised {
	t.Helper()
	p := &supervised{dir: t.TempDir(), log: &lockedBuffer{}, t: t}
	env := append(os.Environ(),
		"STATE_DIR="+p.dir, "SOCKET="+filepath.Join(p.dir, "plugin.sock"), "STATUS_SOCKET="+filepath.Join(p.dir, "status.sock"),
		"LOG_LEVEL=debug", "IPAM_CLAIM_WINDOW=1",
		"BGP_ROUTER_ID=10.0.9.1", "BGP_LISTEN_PORT=0", "BGP_API_SOCKET=none", "BGP_CONFIG_FILE=/dev/null",
	)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			cmd := exec.CommandContext(ctx, bin)
			cmd.Env, cmd.Stdout, cmd.Stderr = env, p.log, p.log
			cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
			err := cmd.Run()
			if ctx.Err() != nil {
				return
			}
			fmt.Fprintf(p.log, "--- plugin exited: %v; restarting it\n", err)
			p.mu.Lock()
			p.count++
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
	p.docker = dockertest.New(unixClient(filepath.Join(p.dir, "plugin.sock")))
	testnet.WaitFor(t, 10*time.Second, "the plugin's status socket", func() (bool, string) {
		_, err := status.Fetch(ctx, filepath.Join(p.dir, "status.sock"))
		return err == nil, fmt.Sprint(err)
	})
	return p
}

func (p *supervised) restarts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.count
}

// repeat runs a command until it succeeds, as a user repeats a docker
// command that failed; the nth attempt counts from 0. Three failures in a
// row is a plugin that does not recover.
func (p *supervised) repeat(what string, command func(n int) error) {
	p.t.Helper()
	for n := range 3 {
		err := command(n)
		if err == nil {
			return
		}
		p.t.Logf("%s failed (attempt %d): %v", what, n+1, err)
	}
	p.t.Fatalf("%s kept failing", what)
}

// state is the plugin's status document without what a kill may change
// legitimately (Docker's IDs, which address a container got), one line per
// item, sorted.
func (p *supervised) state(t *testing.T) string {
	t.Helper()
	doc, err := status.Fetch(context.Background(), filepath.Join(p.dir, "status.sock"))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, n := range doc.Networks {
		lines = append(lines, fmt.Sprintf("network on %s %v announce=%s announced=%v", n.Parent, n.Subnets, n.Announce, n.Announced))
	}
	for _, e := range doc.Endpoints {
		lines = append(lines, fmt.Sprintf("endpoint with %d addresses joined=%v", len(e.Addresses), e.Joined))
	}
	for _, pl := range doc.Pools {
		lines = append(lines, fmt.Sprintf("pool %s range %s gateway %s allocated %d", pl.Pool, pl.Range, pl.Gateway, pl.Allocated))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// waitSweep waits until the pools hold want container addresses besides
// their gateways: a lost address goes with the next sweep.
func (p *supervised) waitSweep(t *testing.T, want uint64) {
	t.Helper()
	testnet.WaitFor(t, 10*time.Second, fmt.Sprintf("%d container addresses allocated", want), func() (bool, string) {
		doc, err := status.Fetch(context.Background(), filepath.Join(p.dir, "status.sock"))
		if err != nil || len(doc.Pools) != 1 {
			return false, fmt.Sprint(doc.Pools, err)
		}
		return doc.Pools[0].Allocated == want+1, fmt.Sprintf("pool %+v", doc.Pools[0])
	})
}
