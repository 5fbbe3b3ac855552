package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipvlan-bgp/ipvlan-bgp/internal/dockertest"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/testnet"
	"github.com/ipvlan-bgp/ipvlan-bgp/status"
)

func TestMain(m *testing.M) { testnet.Main(m) }

// md5Password is the session's TCP MD5 password: it must reach FRR (the
// session comes up) and nothing else.
const md5Password = "Md5-Tr0ub4dor-leaf1"

// lockedBuffer collects the plugin's log while it runs.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// unixClient talks HTTP to a unix socket.
func unixClient(path string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		},
	}}
}

// running is the plugin binary's run, started with an FRR leaf as its BGP
// peer, a route budget of three and debug logging.
type running struct {
	dir    string
	docker *dockertest.Docker
	log    *lockedBuffer
	leaf   *testnet.FRR
}

func startPlugin(t *testing.T) *running {
	t.Helper()
	testnet.RequireRoot(t)
	leaf := testnet.NewNS(t, "leaf")
	testnet.Veth(t, testnet.Host, "eth0", leaf, "swp1")
	testnet.Host.AddAddr(t, "eth0", "10.0.1.1/30")
	leaf.AddAddr(t, "swp1", "10.0.1.2/30")
	frr := testnet.StartFRRWithBFD(t, leaf, fmt.Sprintf(`
router bgp 65001
 bgp router-id 10.0.1.2
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor 10.0.1.1 remote-as 64512
 neighbor 10.0.1.1 password %s
 neighbor 10.0.1.1 bfd
 address-family ipv4 unicast
  network 10.90.0.0/24
 exit-address-family
`, md5Password))

	r := &running{dir: t.TempDir(), log: &lockedBuffer{}, leaf: frr}
	env := map[string]string{
		"STATE_DIR": r.dir, "SOCKET": filepath.Join(r.dir, "plugin.sock"),
		"METRICS_ADDRESS": "unix:" + filepath.Join(r.dir, "metrics.sock"), "STATUS_SOCKET": filepath.Join(r.dir, "status.sock"),
		"LOG_LEVEL": "debug", "LOG_FORMAT": "json", "ROUTE_BUDGET": "3",
		"BGP_ASN": "64512", "BGP_ROUTER_ID": "10.0.1.1", "BGP_LISTEN_PORT": "0", "BGP_API_SOCKET": "none",
		"BGP_NEIGHBORS": "10.0.1.2:65001", "BGP_PASSWORD": md5Password, "BGP_HOLD_TIME": "9", "BGP_BFD": "true",
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, func(k string) string { return env[k] }, logOutput{lines: r.log, errors: r.log})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		checkNothingLeftRunning(t)
	})
	r.docker = dockertest.New(unixClient(env["SOCKET"]))
	testnet.WaitFor(t, 10*time.Second, "the plugin's status socket", func() (bool, string) {
		_, err := status.Fetch(ctx, r.statusSocket())
		return err == nil, fmt.Sprint(err)
	})
	return r
}

// checkNothingLeftRunning fails if a goroutine of the plugin's own code
// outlives run: the state file, the kernel socket and the speaker are
// closed by then, and anything still using them works on closed things.
func checkNothingLeftRunning(t *testing.T) {
	t.Helper()
	buf := make([]byte, 1<<20)
	stacks := string(buf[:runtime.Stack(buf, true)])
	for _, g := range strings.Split(stacks, "\n\n") {
		if strings.Contains(g, "_test.go") {
			continue // the test's own
		}
		for _, line := range strings.Split(g, "\n") {
			if strings.HasPrefix(line, "github.com/ipvlan-bgp/") {
				t.Errorf("a goroutine of the plugin outlives run:\n%s", g)
				break
			}
		}
	}
}

func (r *running) statusSocket() string { return filepath.Join(r.dir, "status.sock") }

func (r *running) scrape(t *testing.T) string {
	t.Helper()
	resp, err := unixClient(filepath.Join(r.dir, "metrics.sock")).Get("http://plugin/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

// statusOutput runs `ipvlan-bgp status ARGS` and returns what it printed.
func (r *running) statusOutput(t *testing.T, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	args = append([]string{"--socket", r.statusSocket()}, args...)
	if code := statusCommand(context.Background(), args, func(string) string { return "" }, &out, &errOut); code != 0 {
		t.Fatalf("status %v exited %d: %s", args, code, errOut.String())
	}
	return out.String()
}

func dockerID(n int, fill string) string { return fmt.Sprintf("%02x", n) + strings.Repeat(fill, 62) }

// TestOperatorsView runs the plugin as Docker would, peered with an FRR
// leaf over an MD5 session with BFD, and checks what an operator sees: the
// route budget's refusal at `docker run`, the metrics, the status command's
// tables and JSON (the session's BFD up), and that the MD5 password shows
// nowhere.
func TestOperatorsView(t *testing.T) {
	r := startPlugin(t)
	hostNet, subnetNet := dockerID(1, "c"), dockerID(2, "c")
	// docker network create -d ipvlan-bgp --ipam-driver ipvlan-bgp --subnet
	// SUBNET -o parent=eth0 -o announce=ANNOUNCE
	hostPool := r.docker.CreateNetwork(t, hostNet, "10.10.0.0/24", map[string]string{"parent": "eth0", "announce": "host"})
	subnetPool := r.docker.CreateNetwork(t, subnetNet, "10.20.0.0/24", map[string]string{"parent": "eth0", "announce": "subnet"})
	// Budget 3: the subnet network's route and two host routes.
	for i := range 2 {
		if err := r.docker.CreateEndpoint(t, hostNet, hostPool, dockerID(10+i, "e")); err != nil {
			t.Fatal(err)
		}
	}
	err := r.docker.CreateEndpoint(t, hostNet, hostPool, dockerID(12, "e"))
	if err == nil || !strings.Contains(err.Error(), "route budget of 3 routes reached") {
		t.Fatalf("third host route: %v, want the route budget's refusal", err)
	}
	if err := r.docker.CreateEndpoint(t, subnetNet, subnetPool, dockerID(20, "e")); err != nil {
		t.Fatalf("an endpoint of a subnet network costs no route: %v", err)
	}

	var doc status.Document
	testnet.WaitFor(t, 30*time.Second, "the leaf's route accepted and installed, our subnet at the leaf", func() (bool, string) {
		doc, err = status.Fetch(context.Background(), r.statusSocket())
		if err != nil || doc.BGP == nil || len(doc.BGP.Peers) != 1 {
			return false, fmt.Sprintf("%+v %v", doc.BGP, err)
		}
		p := doc.BGP.Peers[0]
		atLeaf, _ := r.leaf.Try("show bgp ipv4 unicast 10.20.0.0/24")
		return p.State == "established" && p.BFD == "up" && p.Accepted == 1 && len(doc.Routes) == 1 && strings.Contains(atLeaf, "10.0.1.1 from 10.0.1.1"),
			fmt.Sprintf("%+v routes %v; leaf: %s", p, doc.Routes, atLeaf)
	})
	if doc.Routes[0].Prefix != "10.90.0.0/24" || doc.Routes[0].Nexthops[0] != "10.0.1.2" {
		t.Errorf("installed routes %+v, want 10.90.0.0/24 via 10.0.1.2", doc.Routes)
	}
	checkMetrics(t, r.scrape(t), hostNet, subnetNet)
	text := r.statusOutput(t)
	checkStatusText(t, text, doc)
	jsonOut := r.statusOutput(t, "--json")
	var fromJSON status.Document
	if err := json.Unmarshal([]byte(jsonOut), &fromJSON); err != nil || len(fromJSON.Endpoints) != 3 || fromJSON.Budget.Refused != 1 {
		t.Errorf("status --json: %v, %d endpoints, budget %+v; want 3 endpoints and one refusal", err, len(fromJSON.Endpoints), fromJSON.Budget)
	}
	for what, out := range map[string]string{"log": r.log.String(), "status": text, "status --json": jsonOut, "metrics": r.scrape(t)} {
		if strings.Contains(out, md5Password) {
			t.Errorf("the MD5 password appears in the %s", what)
		}
	}
	for _, line := range []string{`"msg":"route budget reached: endpoint refused"`, `"msg":"Peer Up"`, `"msg":"endpoint created"`} {
		if !strings.Contains(r.log.String(), line) {
			t.Errorf("the log lacks %s", line)
		}
	}
	for _, socket := range []string{r.statusSocket(), filepath.Join(r.dir, "metrics.sock")} {
		fi, err := os.Stat(socket)
		if err != nil {
			t.Errorf("socket %s: %v", socket, err)
		} else if fi.Mode().Perm() != 0o600 {
			t.Errorf("socket %s has mode %v, want root-only (0600)", socket, fi.Mode().Perm())
		}
	}
}

func checkMetrics(t *testing.T, body, hostNet, subnetNet string) {
	t.Helper()
	for _, line := range []string{
		`ipvlan_bgp_peer_up{interface="",peer="10.0.1.2",remote_as="65001"} 1`,
		`ipvlan_bgp_peer_session_state{peer="10.0.1.2",state="established"} 1`,
		`ipvlan_bgp_peer_session_state{peer="10.0.1.2",state="active"} 0`,
		`ipvlan_bgp_peer_bfd_state{peer="10.0.1.2",state="up"} 1`,
		`ipvlan_bgp_peer_bfd_state{peer="10.0.1.2",state="down"} 0`,
		`ipvlan_bgp_peer_prefixes_accepted{peer="10.0.1.2"} 1`,
		`ipvlan_bgp_bgp_speaker_up 1`,
		`ipvlan_bgp_bgp_local_prefixes 1`,
		`ipvlan_bgp_kernel_routes{family="ipv4"} 1`,
		`ipvlan_bgp_announced_routes{network="` + subnetNet[:12] + `"} 1`,
		`ipvlan_bgp_endpoints{joined="false",network="` + hostNet[:12] + `"} 2`,
		`ipvlan_bgp_endpoints{joined="false",network="` + subnetNet[:12] + `"} 1`,
		`ipvlan_bgp_route_budget_routes 3`,
		`ipvlan_bgp_route_budget_used_routes 3`,
		`ipvlan_bgp_route_budget_refusals_total 1`,
		`ipvlan_bgp_docker_call_errors_total{method="NetworkDriver.CreateEndpoint"} 1`,
		`ipvlan_bgp_docker_call_duration_seconds_count{method="NetworkDriver.CreateNetwork"} 2`,
		`ipvlan_bgp_pool_addresses_allocated{pool="10.10.0.0/24",range="10.10.0.0/24"} 3`,
		`ipvlan_bgp_errors_total{source="netlink"} 0`,
		`ipvlan_bgp_scrape_source_errors{source="bgp"} 0`,
	} {
		if !strings.Contains(body, "\n"+line+"\n") {
			t.Errorf("metrics lack %s", line)
		}
	}
	if t.Failed() {
		t.Logf("scrape:\n%s", body)
	}
}

// checkStatusText finds every row of the tables by its first cell and
// checks its cells against the document the plugin served.
func checkStatusText(t *testing.T, text string, doc status.Document) {
	t.Helper()
	rows := map[string][]string{}
	for _, line := range strings.Split(text, "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			rows[f[0]] = f
		}
	}
	peer := rows["10.0.1.2"]
	p := doc.BGP.Peers[0]
	want := []string{"10.0.1.2", "-", "65001", "established", "up", fmt.Sprint(p.Received), fmt.Sprint(p.Accepted), fmt.Sprint(p.Advertised)}
	if len(peer) != 9 || strings.Join(append(peer[:5:5], peer[6:]...), " ") != strings.Join(want, " ") {
		t.Errorf("peer row %q, want %q with the uptime after BFD", peer, want)
	}
	for _, ep := range doc.Endpoints {
		want := []string{ep.ID[:12], ep.Network[:12], strings.Join(ep.Addresses, ","), ep.Interface, "-", "no"}
		if got := rows[ep.ID[:12]]; len(got) < len(want) || strings.Join(got[:len(want)], " ") != strings.Join(want, " ") {
			t.Errorf("endpoint row %q, want it to start %q", got, want)
		}
	}
	for _, n := range doc.Networks {
		if got := rows[n.ID[:12]]; len(got) < 4 || got[1] != "eth0" || got[3] != n.Announce {
			t.Errorf("network row %q, want parent eth0 and announce %s", got, n.Announce)
		}
	}
	if got := rows["10.90.0.0/24"]; len(got) != 2 || got[1] != "10.0.1.2" {
		t.Errorf("installed route row %q, want 10.90.0.0/24 10.0.1.2", got)
	}
	if !strings.Contains(text, "ROUTE BUDGET: 3 of 3 routes used; past it: refuse; 1 endpoints refused") {
		t.Errorf("status lacks the route budget line:\n%s", text)
	}
}

func TestStatusCommandErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "status.sock")
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--socket", missing}, 1, missing},
		{[]string{"--socket", missing, "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"--colour"}, 2, "flag provided but not defined"},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		code := statusCommand(context.Background(), tt.args, func(string) string { return "" }, &out, &errOut)
		if code != tt.code || !strings.Contains(errOut.String(), tt.want) {
			t.Errorf("status %v: exit %d, stderr %q; want %d and %q", tt.args, code, errOut.String(), tt.code, tt.want)
		}
	}
}
