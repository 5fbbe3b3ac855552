// Package dockertest sends a network and IPAM plugin the calls Docker's
// engine sends it, shaped as the engine shapes them, so tests drive the
// plugin as `docker network create` and `docker run --net` would.
package dockertest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	ipamapi "github.com/docker/go-plugins-helpers/ipam"
	netapi "github.com/docker/go-plugins-helpers/network"

	"github.com/ipvlan-bgp/ipvlan-bgp/api"
)

const (
	// acceptHeader is the only header Docker's plugin client sets.
	acceptHeader = "application/vnd.docker.plugins.v1.2+json"
	// gatewayLabel marks a gateway in RequestPool's Data and in
	// RequestAddress's Options.
	gatewayLabel = "com.docker.network.gateway"
)

// Docker is the engine's side of the plugin protocol.
type Docker struct {
	client *http.Client
	// retryFor, when set, makes a call retry as dockerd's plugin client
	// does (see Retrying).
	retryFor time.Duration
	engine   Engine
}

// Retrying returns a Docker that retries a call whose connection failed as
// dockerd's plugin client does (pkg/plugins/client.go): after 1, 2, 4, 8 s,
// for up to 30 s, sending the request buffer the failed attempt already
// drained, so a plugin that died in the middle of a call gets its retries
// with an empty body.
func (d *Docker) Retrying() *Docker {
	c := *d
	c.retryFor = 30 * time.Second
	return &c
}

// New sends the calls with client, which must reach the plugin whatever
// host the URL names, as a client dialing the plugin's unix socket does.
func New(client *http.Client) *Docker { return &Docker{client: client, engine: Docker20} }

// InProcess sends the calls straight to handler, without a socket.
func InProcess(handler http.Handler) *Docker {
	return New(&http.Client{Transport: handlerTransport{handler}})
}

type handlerTransport struct{ handler http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	defer req.Body.Close()
	w := httptest.NewRecorder()
	t.handler.ServeHTTP(w, req)
	return w.Result(), nil
}

// Call posts req to /method and decodes the answer into answer (unless
// nil). A refusal (any status but 200) comes back as an error holding the
// text Docker would show: the answer's Err, or the whole body without one.
func (d *Docker) Call(method string, req, answer any) error {
	var body []byte // Docker sends no body for a call without arguments
	if req != nil {
		var err error
		if body, err = json.Marshal(req); err != nil {
			return fmt.Errorf("encode %s request: %w", method, err)
		}
	}
	resp, err := d.send(method, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("read %s answer: %w", method, err)
	}
	if resp.StatusCode != http.StatusOK {
		var refusal struct{ Err string }
		if json.Unmarshal(raw, &refusal) == nil && refusal.Err != "" {
			return errors.New(refusal.Err)
		}
		return errors.New(string(raw))
	}
	if answer == nil {
		return nil
	}
	if err := json.Unmarshal(raw, answer); err != nil {
		return fmt.Errorf("decode %s answer %q: %w", method, raw, err)
	}
	return nil
}

// send posts body, retrying as Retrying says.
func (d *Docker) send(method string, body []byte) (*http.Response, error) {
	started := time.Now()
	for backoff := time.Second; ; backoff *= 2 {
		httpReq, err := http.NewRequest(http.MethodPost, "http://plugin/"+method, bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("build %s request: %w", method, err)
		}
		httpReq.Header.Set("Accept", acceptHeader)
		resp, err := d.client.Do(httpReq)
		if err == nil {
			return resp, nil
		}
		if d.retryFor == 0 || time.Since(started)+backoff >= d.retryFor {
			return nil, fmt.Errorf("send %s: %w", method, err)
		}
		time.Sleep(backoff)
		var op *net.OpError
		if !errors.As(err, &op) || op.Op != "dial" {
			body = nil // the failed attempt drained it
		}
	}
}

// MustCall is Call that fails the test on any error.
func (d *Docker) MustCall(t testing.TB, method string, req, answer any) {
	t.Helper()
	if err := d.Call(method, req, answer); err != nil {
		t.Fatalf("%s: %v", method, err)
	}
}

// Engine is the dockerd release whose calls are sent: what it sends a
// plugin changed with 28 and 29 (../shared/notes/docker-protocol.md).
type Engine int

const (
	// Docker20 is 20.10 to 27: a gateway address for every pool.
	Docker20 Engine = 20
	// Docker28 asks GwAllocCheck before allocating gateways, has
	// IPv6-only networks (--ipv4=false) and passes a chosen interface
	// name (com.docker.network.endpoint.ifname).
	Docker28 Engine = 28
	// Docker29 also asks for pools by size only (--subnet 0.0.0.0/24).
	Docker29 Engine = 29
)

// As returns a Docker that sends engine's calls (Docker20 by default).
func (d *Docker) As(engine Engine) *Docker {
	c := *d
	c.engine = engine
	return &c
}

// NetworkSpec is what `docker network create` was given.
type NetworkSpec struct {
	ID       string
	Subnet   string // --subnet for IPv4; "" carves one (with IPv4 on)
	SubnetV6 string // --subnet for IPv6, with --ipv6; "" carves one when IPv6
	IPv6     bool   // --ipv6
	NoIPv4   bool   // --ipv4=false (Docker 28+)
	Options  map[string]string
	// Internal is --internal, which a node's engine passes for a swarm
	// network (com.docker.network.internal) whatever its value.
	Internal *bool
}

// Network is what Docker keeps of a network it created.
type Network struct {
	ID    string
	Pools []Pool // IPv4 first
}

// Pool is one of a network's pools, as Docker keeps it.
type Pool struct {
	ID, Subnet, Gateway string // Gateway "" when none was allocated
	V6                  bool
}

// Container is what Docker keeps of a container's endpoint.
type Container struct {
	Endpoint  string
	Addresses map[string]string // by PoolID, plain IPs
}

const gatewayType = "RequestAddressType"

// NetworkCreate sends what `docker network create` sends, and rolls back as
// Docker does when a call fails: each pool it got is released.
func (d *Docker) NetworkCreate(spec NetworkSpec) (*Network, error) {
	options := map[string]any{
		"com.docker.network.generic":     orEmpty(spec.Options),
		"com.docker.network.enable_ipv4": !spec.NoIPv4,
		"com.docker.network.enable_ipv6": spec.IPv6,
	}
	if spec.Internal != nil {
		options["com.docker.network.internal"] = *spec.Internal
	}
	skip, err := d.gwAllocCheck(options)
	if err != nil {
		return nil, err
	}
	n := &Network{ID: spec.ID}
	if err := d.requestPools(spec, skip, n); err != nil {
		d.releasePools(n)
		return nil, err
	}
	req := netapi.CreateNetworkRequest{NetworkID: spec.ID, Options: options, IPv4Data: []*netapi.IPAMData{}, IPv6Data: []*netapi.IPAMData{}}
	for _, p := range n.Pools {
		data := &netapi.IPAMData{AddressSpace: api.LocalAddressSpace, Pool: p.Subnet, Gateway: p.Gateway}
		if p.V6 {
			req.IPv6Data = append(req.IPv6Data, data)
		} else {
			req.IPv4Data = append(req.IPv4Data, data)
		}
	}
	if err := d.Call("NetworkDriver.CreateNetwork", req, nil); err != nil {
		d.releasePools(n)
		return nil, err
	}
	return n, nil
}

// gwAllocCheck asks a Docker 28+ question: which families need no gateway.
func (d *Docker) gwAllocCheck(options map[string]any) (skip map[bool]bool, err error) {
	skip = map[bool]bool{}
	if d.engine < Docker28 {
		return skip, nil
	}
	var caps struct{ GwAllocChecker bool }
	if err := d.Call("NetworkDriver.GetCapabilities", nil, &caps); err != nil || !caps.GwAllocChecker {
		return skip, err
	}
	var answer struct{ SkipIPv4, SkipIPv6 bool }
	if err := d.Call("NetworkDriver.GwAllocCheck", map[string]any{"Options": options}, &answer); err != nil {
		return nil, err
	}
	return map[bool]bool{false: answer.SkipIPv4, true: answer.SkipIPv6}, nil
}

func (d *Docker) requestPools(spec NetworkSpec, skipGateway map[bool]bool, n *Network) error {
	for _, family := range []struct {
		on     bool
		subnet string
		v6     bool
	}{{!spec.NoIPv4, spec.Subnet, false}, {spec.IPv6, spec.SubnetV6, true}} {
		if !family.on {
			continue
		}
		var pool ipamapi.RequestPoolResponse
		err := d.Call("IpamDriver.RequestPool", ipamapi.RequestPoolRequest{AddressSpace: api.LocalAddressSpace, Pool: family.subnet, V6: family.v6}, &pool)
		if err != nil {
			return err
		}
		p := Pool{ID: pool.PoolID, Subnet: pool.Pool, Gateway: pool.Data[gatewayLabel], V6: family.v6}
		n.Pools = append(n.Pools, p)
		if p.Gateway != "" || skipGateway[family.v6] {
			continue
		}
		var gw ipamapi.RequestAddressResponse
		err = d.Call("IpamDriver.RequestAddress", ipamapi.RequestAddressRequest{PoolID: p.ID, Options: map[string]string{gatewayType: gatewayLabel}}, &gw)
		if err != nil {
			return err
		}
		n.Pools[len(n.Pools)-1].Gateway = gw.Address
	}
	return nil
}

func (d *Docker) releasePools(n *Network) {
	for _, p := range n.Pools {
		_ = d.Call("IpamDriver.ReleasePool", ipamapi.ReleasePoolRequest{PoolID: p.ID}, nil)
	}
}

// NetworkRm sends what `docker network rm` sends: DeleteNetwork, then each
// gateway's and pool's release.
func (d *Docker) NetworkRm(n *Network) error {
	if err := d.Call("NetworkDriver.DeleteNetwork", netapi.DeleteNetworkRequest{NetworkID: n.ID}, nil); err != nil {
		return err
	}
	for _, p := range n.Pools {
		if p.Gateway != "" {
			if err := d.Call("IpamDriver.ReleaseAddress", ipamapi.ReleaseAddressRequest{PoolID: p.ID, Address: plainIP(p.Gateway)}, nil); err != nil {
				return err
			}
		}
		if err := d.Call("IpamDriver.ReleasePool", ipamapi.ReleasePoolRequest{PoolID: p.ID}, nil); err != nil {
			return err
		}
	}
	return nil
}

// Run sends what `docker run --net NETWORK` sends before Join: an address
// from each of the network's pools, then CreateEndpoint with options (the
// --driver-opt values; Docker adds its own port keys). When the plugin
// refuses the endpoint it releases the addresses, as Docker does.
func (d *Docker) Run(n *Network, endpoint string, options map[string]any) (*Container, error) {
	c := &Container{Endpoint: endpoint, Addresses: map[string]string{}}
	iface := &netapi.EndpointInterface{}
	var err error
	for _, p := range n.Pools {
		var addr ipamapi.RequestAddressResponse
		if err = d.Call("IpamDriver.RequestAddress", ipamapi.RequestAddressRequest{PoolID: p.ID}, &addr); err != nil {
			break
		}
		c.Addresses[p.ID] = plainIP(addr.Address)
		if p.V6 {
			iface.AddressIPv6 = addr.Address
		} else {
			iface.Address = addr.Address
		}
	}
	if err == nil {
		opts := map[string]any{"com.docker.network.endpoint.exposedports": []any{}, "com.docker.network.portmap": []any{}}
		maps.Copy(opts, options)
		err = d.Call("NetworkDriver.CreateEndpoint", netapi.CreateEndpointRequest{NetworkID: n.ID, EndpointID: endpoint, Interface: iface, Options: opts}, nil)
	}
	if err != nil {
		d.releaseAddresses(c)
		return nil, err
	}
	return c, nil
}

// Rm sends what `docker rm` sends for a container that never joined (or
// has left): DeleteEndpoint, then the release of its addresses.
func (d *Docker) Rm(n *Network, c *Container) error {
	if err := d.Call("NetworkDriver.DeleteEndpoint", netapi.DeleteEndpointRequest{NetworkID: n.ID, EndpointID: c.Endpoint}, nil); err != nil {
		return err
	}
	return d.releaseAddresses(c)
}

func (d *Docker) releaseAddresses(c *Container) error {
	var errs []error
	for pool, ip := range c.Addresses {
		errs = append(errs, d.Call("IpamDriver.ReleaseAddress", ipamapi.ReleaseAddressRequest{PoolID: pool, Address: ip}, nil))
	}
	return errors.Join(errs...)
}

func plainIP(cidr string) string {
	ip, _, _ := strings.Cut(cidr, "/")
	return ip
}

func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{} // Docker sends the -o map even when empty
	}
	return m
}

// CreateNetwork is NetworkCreate of an IPv4 network with -o options that
// fails the test on an error, and returns the pool's ID.
func (d *Docker) CreateNetwork(t testing.TB, id, subnet string, options map[string]string) (poolID string) {
	t.Helper()
	n, err := d.NetworkCreate(NetworkSpec{ID: id, Subnet: subnet, Options: options})
	if err != nil {
		t.Fatalf("docker network create %s: %v", subnet, err)
	}
	return n.Pools[0].ID
}

// CreateEndpoint is Run on an IPv4 network known by its pool: the
// plugin's refusal, if any, is returned, other errors fail the test.
func (d *Docker) CreateEndpoint(t testing.TB, network, poolID, id string) error {
	t.Helper()
	_, err := d.Run(&Network{ID: network, Pools: []Pool{{ID: poolID}}}, id, nil)
	return err
}
