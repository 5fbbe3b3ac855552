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
}

// Retrying returns a Docker that retries a call whose connection failed as
// dockerd's plugin client does (pkg/plugins/client.go): after 1, 2, 4, 8 s,
// for up to 30 s, sending the request buffer the failed attempt already
// drained, so a plugin that died in the middle of a call gets its retries
// with an empty body.
func (d *Docker) Retrying() *Docker {
	return &Docker{client: d.client, retryFor: 30 * time.Second}
}

// New sends the calls with client, which must reach the plugin whatever
// host the URL names, as a client dialing the plugin's unix socket does.
func New(client *http.Client) *Docker { return &Docker{client: client} }

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
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encode %s request: %w", method, err)
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

// CreateNetwork sends what `docker network create --subnet SUBNET` with
// options as its -o flags sends, and returns the network's pool ID. Like
// Docker, it asks for a gateway address only when RequestPool's answer did
// not name one.
func (d *Docker) CreateNetwork(t testing.TB, id, subnet string, options map[string]string) (poolID string) {
	t.Helper()
	var pool ipamapi.RequestPoolResponse
	d.MustCall(t, "IpamDriver.RequestPool", ipamapi.RequestPoolRequest{AddressSpace: api.LocalAddressSpace, Pool: subnet}, &pool)
	gateway := pool.Data[gatewayLabel]
	if gateway == "" {
		var gw ipamapi.RequestAddressResponse
		d.MustCall(t, "IpamDriver.RequestAddress", ipamapi.RequestAddressRequest{PoolID: pool.PoolID,
			Options: map[string]string{"RequestAddressType": gatewayLabel}}, &gw)
		gateway = gw.Address
	}
	if options == nil {
		options = map[string]string{} // Docker sends the -o map even when empty
	}
	d.MustCall(t, "NetworkDriver.CreateNetwork", netapi.CreateNetworkRequest{
		NetworkID: id,
		Options: map[string]any{
			"com.docker.network.generic":     options,
			"com.docker.network.enable_ipv4": true,
			"com.docker.network.enable_ipv6": false,
		},
		IPv4Data: []*netapi.IPAMData{{AddressSpace: api.LocalAddressSpace, Pool: pool.Pool, Gateway: gateway}},
		IPv6Data: []*netapi.IPAMData{},
	}, nil)
	return pool.PoolID
}

// CreateEndpoint sends what `docker run --net NETWORK` sends before Join:
// an address from the network's pool, then CreateEndpoint. When the plugin
// refuses the endpoint it releases the address, as Docker does, and returns
// the refusal.
func (d *Docker) CreateEndpoint(t testing.TB, network, poolID, id string) error {
	t.Helper()
	var addr ipamapi.RequestAddressResponse
	d.MustCall(t, "IpamDriver.RequestAddress", ipamapi.RequestAddressRequest{PoolID: poolID}, &addr)
	err := d.Call("NetworkDriver.CreateEndpoint", netapi.CreateEndpointRequest{
		NetworkID:  network,
		EndpointID: id,
		Interface:  &netapi.EndpointInterface{Address: addr.Address},
		// Docker sends the container's ports even when it publishes none.
		Options: map[string]any{"com.docker.network.endpoint.exposedports": []any{}, "com.docker.network.portmap": []any{}},
	}, nil)
	if err != nil {
		ip, _, _ := strings.Cut(addr.Address, "/") // ReleaseAddress takes a plain IP
		d.MustCall(t, "IpamDriver.ReleaseAddress", ipamapi.ReleaseAddressRequest{PoolID: poolID, Address: ip}, nil)
	}
	return err
}
