package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
		if err := os.WriteFile(filepath.Join(p.Dir, failpoint.FileName), []byte(point), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	d := p.Docker.Retrying()
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
		if _, err := os.Stat(filepath.Join(p.Dir, failpoint.FileName)); !errors.Is(err, os.ErrNotExist) || p.Restarts() == 0 {
			t.Errorf("the plugin never reached %s (failpoint file: %v, restarts %d)", point, err, p.Restarts())
		}
	}
	return states
}

// buildPlugin builds this package's binary.
func buildPlugin(t *testing.T) string { return dockertest.Build(t, ".") }

// supervised is the plugin binary as Docker runs it, with the calls of the
// docker commands a user repeats.
type supervised struct {
	*dockertest.Plugin
	t *testing.T
}

func superviseBinary(t *testing.T, bin string) *supervised {
	t.Helper()
	return &supervised{Plugin: dockertest.Start(t, bin), t: t}
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
	doc, err := status.Fetch(context.Background(), filepath.Join(p.Dir, "status.sock"))
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
		doc, err := status.Fetch(context.Background(), filepath.Join(p.Dir, "status.sock"))
		if err != nil || len(doc.Pools) != 1 {
			return false, fmt.Sprint(doc.Pools, err)
		}
		return doc.Pools[0].Allocated == want+1, fmt.Sprintf("pool %+v", doc.Pools[0])
	})
}
