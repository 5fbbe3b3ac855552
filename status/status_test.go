package status

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	ipamapi "github.com/docker/go-plugins-helpers/ipam"
	netapi "github.com/docker/go-plugins-helpers/network"
	"github.com/sirupsen/logrus"

	"github.com/ipvlan-bgp/ipvlan-bgp/driver"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/route"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/testnet"
	"github.com/ipvlan-bgp/ipvlan-bgp/ipam"
	"github.com/ipvlan-bgp/ipvlan-bgp/metrics"
	"github.com/ipvlan-bgp/ipvlan-bgp/store"
)

var ctx = context.Background()

func TestMain(m *testing.M) { testnet.Main(m) }

// quiet is a logger for parts whose logs the test does not read.
func quiet() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

// state is a real driver and IPAM driver with two networks on a veth in
// the test's namespace and a route budget of two.
func state(t *testing.T) Sources {
	t.Helper()
	testnet.RequireRoot(t)
	testnet.Host.Exec(t, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "peer0")
	t.Cleanup(func() { testnet.Host.Exec(t, "ip", "link", "del", "eth0") })
	db, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	log := quiet()
	pools, err := ipam.New(ipam.Config{Store: db, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	d, err := driver.New(driver.Config{Store: db, Announcer: route.Discard{}, Ranges: pools, Log: log, RouteBudget: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	for n, announce := range []string{"host", "subnet"} {
		network := fmt.Sprintf("%d%s", n, strings.Repeat("a", 63))
		subnet := fmt.Sprintf("10.%d.0.0/24", 30+n)
		pool, err := pools.RequestPool(ctx, &ipamapi.RequestPoolRequest{AddressSpace: ipam.LocalAddressSpace, Pool: subnet})
		if err != nil {
			t.Fatal(err)
		}
		gateway, err := pools.RequestAddress(ctx, &ipamapi.RequestAddressRequest{PoolID: pool.PoolID,
			Options: map[string]string{"RequestAddressType": "com.docker.network.gateway"}})
		if err != nil {
			t.Fatal(err)
		}
		err = d.CreateNetwork(ctx, &netapi.CreateNetworkRequest{
			NetworkID: network,
			Options:   map[string]any{"com.docker.network.generic": map[string]any{"parent": "eth0", "announce": announce}},
			IPv4Data:  []*netapi.IPAMData{{Pool: subnet, Gateway: gateway.Address}},
		})
		if err != nil {
			t.Fatal(err)
		}
		for e := range 3 {
			addr, err := pools.RequestAddress(ctx, &ipamapi.RequestAddressRequest{PoolID: pool.PoolID})
			if err != nil {
				t.Fatal(err)
			}
			_, err = d.CreateEndpoint(ctx, &netapi.CreateEndpointRequest{NetworkID: network,
				EndpointID: fmt.Sprintf("%d%d%s", n, e, strings.Repeat("e", 62)), Interface: &netapi.EndpointInterface{Address: addr.Address}})
			// The host network's third endpoint is past the budget;
			// Docker then releases its address.
			if wantRefused := n == 0 && e == 2; (err != nil) != wantRefused {
				t.Fatalf("endpoint %d of network %d: %v (want refused: %v)", e, n, err, wantRefused)
			}
			if err != nil {
				ip := strings.Split(addr.Address, "/")[0]
				if err := pools.ReleaseAddress(ctx, &ipamapi.ReleaseAddressRequest{PoolID: pool.PoolID, Address: ip}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return Sources{Driver: d, IPAM: pools}
}

func serve(t *testing.T, src Sources) string {
	t.Helper()
	socket := filepath.Join(t.TempDir(), "status.sock")
	l, err := metrics.Listen("unix:" + socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: Handler(src, quiet())}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close() })
	return socket
}

func TestFetchReturnsTheDriversState(t *testing.T) {
	src := state(t)
	doc, err := Fetch(ctx, serve(t, src))
	if err != nil {
		t.Fatal(err)
	}
	if want := Build(ctx, src); !reflect.DeepEqual(doc, want) {
		t.Fatalf("fetched %+v\nbuilt   %+v", doc, want)
	}
	networks, endpoints := src.Driver.Networks(), src.Driver.Endpoints()
	if len(doc.Networks) != len(networks) || len(doc.Endpoints) != len(endpoints) || len(endpoints) != 5 {
		t.Fatalf("document has %d networks and %d endpoints, the driver %d and %d (want 5 endpoints)",
			len(doc.Networks), len(doc.Endpoints), len(networks), len(endpoints))
	}
	for i, ep := range endpoints {
		got := doc.Endpoints[i]
		if got.ID != ep.ID || got.Network != ep.NetworkID || got.Addresses[0] != ep.Addresses[0].String() || got.Interface != ep.Interface {
			t.Errorf("endpoint %d: document %+v, driver %+v", i, got, ep)
		}
	}
	if b := doc.Budget; b.Limit != 2 || b.Used != 3 || b.Refused != 1 || b.Fallback != "refuse" {
		t.Errorf("budget %+v, want 3 used of 2 (two host routes and a subnet), one refused", b)
	}
	if doc.Pools[0].Allocated != 3 || doc.Pools[1].Allocated != 4 {
		t.Errorf("pools %+v, want 3 and 4 allocated (the gateway and the endpoints)", doc.Pools)
	}
}

func TestFetchNamesTheSocket(t *testing.T) {
	_, err := Fetch(ctx, filepath.Join(t.TempDir(), "absent.sock"))
	if err == nil || !strings.Contains(err.Error(), "absent.sock") || !strings.Contains(err.Error(), "root") {
		t.Fatalf("Fetch of a missing socket: %v, want an error naming it and hinting at root", err)
	}
}

// TestRenderShowsEveryRow reads the tables back and checks every cell
// against the document they came from.
func TestRenderShowsEveryRow(t *testing.T) {
	doc := Build(ctx, state(t))
	doc.BGP = &BGP{Running: true, ASN: 64512, RouterID: "192.0.2.1", LocalPrefixes: 1,
		Peers: []Peer{{Address: "10.0.1.2", RemoteAS: 65001, State: "established", UptimeSeconds: 75, Received: 4, Accepted: 3, Advertised: 1},
			{Address: "10.0.3.2", RemoteAS: 65002, State: "active", BFD: "down"}}}
	var out bytes.Buffer
	if err := Render(&out, doc); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	rows := map[string][]string{}
	for _, line := range strings.Split(text, "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			rows[f[0]] = f
		}
	}
	want := [][]string{{"10.0.1.2", "-", "65001", "established", "-", "1m15s", "4", "3", "1"},
		{"10.0.3.2", "-", "65002", "active", "down", "0s", "0", "0", "0"}}
	for _, n := range doc.Networks {
		want = append(want, []string{n.ID[:12], n.Parent, n.Mode, n.Announce, strings.Join(n.Subnets, ","), list(n.Announced)})
	}
	for _, ep := range doc.Endpoints {
		want = append(want, []string{ep.ID[:12], ep.Network[:12], strings.Join(ep.Addresses, ","), ep.Interface, "-", "no", list(ep.Announced)})
	}
	for _, p := range doc.Pools {
		want = append(want, []string{p.Pool, p.Range, p.Gateway, fmt.Sprint(p.Allocated), fmt.Sprint(p.Free)})
	}
	for _, w := range want {
		if got := rows[w[0]]; !reflect.DeepEqual(got, w) {
			t.Errorf("row %s = %q, want %q\n%s", w[0], got, w, text)
		}
	}
	if !strings.Contains(text, "ROUTE BUDGET: 3 of 2 routes used; past it: refuse; 1 endpoints refused, 0 via subnet") {
		t.Errorf("budget line missing:\n%s", text)
	}
	var decoded Document
	raw, _ := json.Marshal(doc)
	if err := json.Unmarshal(raw, &decoded); err != nil || !reflect.DeepEqual(decoded, doc) {
		t.Errorf("the JSON form does not round-trip: %v", err)
	}
}
