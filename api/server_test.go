package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	ipamapi "github.com/docker/go-plugins-helpers/ipam"
	netapi "github.com/docker/go-plugins-helpers/network"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

// recorder is a stand-in for both drivers that records what reached it; the
// real drivers are tested in their own packages against the kernel.
type recorder struct {
	calls []string
	fail  error
}

func (r *recorder) note(name string) error { r.calls = append(r.calls, name); return r.fail }

func (r *recorder) CreateNetwork(_ context.Context, req *netapi.CreateNetworkRequest) error {
	if req.NetworkID == "panic" {
		panic("driver bug")
	}
	return r.note("CreateNetwork " + req.NetworkID)
}
func (r *recorder) DeleteNetwork(context.Context, *netapi.DeleteNetworkRequest) error {
	return r.note("DeleteNetwork")
}
func (r *recorder) CreateEndpoint(_ context.Context, req *netapi.CreateEndpointRequest) (*netapi.CreateEndpointResponse, error) {
	return &netapi.CreateEndpointResponse{}, r.note("CreateEndpoint " + req.EndpointID)
}
func (r *recorder) DeleteEndpoint(context.Context, *netapi.DeleteEndpointRequest) error {
	return r.note("DeleteEndpoint")
}
func (r *recorder) EndpointInfo(context.Context, *netapi.InfoRequest) (*netapi.InfoResponse, error) {
	return &netapi.InfoResponse{Value: map[string]string{"k": "v"}}, r.note("EndpointInfo")
}
func (r *recorder) Join(context.Context, *netapi.JoinRequest) (*JoinResponse, error) {
	return &JoinResponse{InterfaceName: InterfaceName{SrcName: "ib0", DstPrefix: "eth"}}, r.note("Join")
}
func (r *recorder) GwAllocCheck(context.Context, *GwAllocCheckRequest) (*GwAllocCheckResponse, error) {
	return &GwAllocCheckResponse{SkipIPv4: true}, r.note("GwAllocCheck")
}
func (r *recorder) Leave(context.Context, *netapi.LeaveRequest) error { return r.note("Leave") }
func (r *recorder) ProgramExternalConnectivity(context.Context, *netapi.ProgramExternalConnectivityRequest) error {
	return r.note("Program")
}
func (r *recorder) RevokeExternalConnectivity(context.Context, *netapi.RevokeExternalConnectivityRequest) error {
	return r.note("Revoke")
}
func (r *recorder) RequestPool(_ context.Context, req *ipamapi.RequestPoolRequest) (*ipamapi.RequestPoolResponse, error) {
	return &ipamapi.RequestPoolResponse{PoolID: "p", Pool: req.Pool}, r.note("RequestPool " + req.Pool)
}
func (r *recorder) ReleasePool(context.Context, *ipamapi.ReleasePoolRequest) error {
	return r.note("ReleasePool")
}
func (r *recorder) RequestAddress(context.Context, *ipamapi.RequestAddressRequest) (*ipamapi.RequestAddressResponse, error) {
	return &ipamapi.RequestAddressResponse{Address: "10.0.0.2/24"}, r.note("RequestAddress")
}
func (r *recorder) ReleaseAddress(context.Context, *ipamapi.ReleaseAddressRequest) error {
	return r.note("ReleaseAddress")
}

func newTestServer(t testing.TB) (*Server, *recorder) {
	rec := &recorder{}
	log := logrus.New()
	log.SetLevel(logrus.PanicLevel)
	return NewServer(logrus.NewEntry(log)), rec
}

func call(t testing.TB, s *Server, path, body string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, req)
	var out map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
		t.Fatalf("%s answered non-JSON %q: %v", path, w.Body.String(), err)
	}
	return w.Code, out
}

func TestProtocolCalls(t *testing.T) {
	s, rec := newTestServer(t)
	s.Ready(rec, rec)
	tests := []struct {
		path, body string
		wantStatus int
		wantKey    string // a key the answer must hold
		wantValue  any
	}{
		{"/Plugin.Activate", "", 200, "Implements", []any{"NetworkDriver", "IpamDriver"}},
		{"/NetworkDriver.GetCapabilities", "{}", 200, "Scope", "local"},
		{"/NetworkDriver.GetCapabilities", "", 200, "ConnectivityScope", "global"},
		{"/NetworkDriver.GetCapabilities", "", 200, "GwAllocChecker", true},
		{"/NetworkDriver.GwAllocCheck", `{"Options":{"com.docker.network.enable_ipv4":true}}`, 200, "SkipIPv4", true},
		{"/IpamDriver.GetCapabilities", "null", 200, "RequiresRequestReplay", false},
		{"/IpamDriver.GetDefaultAddressSpaces", "{}", 200, "LocalDefaultAddressSpace", LocalAddressSpace},
		{"/NetworkDriver.CreateNetwork", `{"NetworkID":"n1","Options":{},"IPv4Data":[],"IPv6Data":[]}`, 200, "", nil},
		{"/NetworkDriver.Join", `{"NetworkID":"n1","EndpointID":"e1","SandboxKey":"/var/run/docker/netns/x","Options":{}}`, 200, "InterfaceName", map[string]any{"SrcName": "ib0", "DstPrefix": "eth"}},
		{"/IpamDriver.RequestPool", `{"AddressSpace":"","Pool":"10.0.0.0/24","SubPool":"","Options":null,"V6":false}`, 200, "Pool", "10.0.0.0/24"},
		{"/IpamDriver.RequestAddress", `{"PoolID":"p","Address":"","Options":null}`, 200, "Address", "10.0.0.2/24"},
		{"/NetworkDriver.AllocateNetwork", `{"NetworkID":"n1"}`, 404, "Err", "ipvlan-bgp does not serve NetworkDriver.AllocateNetwork: a local-scope driver keeps its state on each host"},
		{"/NetworkDriver.FreeNetwork", `{"NetworkID":"n1"}`, 404, "Err", nil},
		{"/NetworkDriver.DiscoverNew", `{"DiscoveryType":1,"DiscoveryData":{"x":1}}`, 200, "", nil},
		// malformed input: an error answer naming the problem, never a crash
		{"/NetworkDriver.CreateNetwork", `{"NetworkID":`, 500, "Err", nil},
		{"/NetworkDriver.CreateNetwork", `{"NetworkID":42}`, 500, "Err", nil},
		{"/IpamDriver.RequestPool", `[1,2,3]`, 500, "Err", nil},
		{"/IpamDriver.RequestPool", `{"AddressSpace":"","V6":"yes"}`, 500, "Err", nil},
		{"/NetworkDriver.CreateNetwork", `{"NetworkID":"panic"}`, 500, "Err", "internal error: driver bug"},
	}
	for _, tt := range tests {
		t.Run(tt.path+" "+tt.body, func(t *testing.T) {
			status, out := call(t, s, tt.path, tt.body)
			if status != tt.wantStatus {
				t.Fatalf("status %d, want %d (answer %v)", status, tt.wantStatus, out)
			}
			if tt.wantKey == "" {
				return
			}
			got, ok := out[tt.wantKey]
			if !ok {
				t.Fatalf("answer %v lacks %s", out, tt.wantKey)
			}
			if tt.wantValue != nil && !jsonEqual(got, tt.wantValue) {
				t.Fatalf("%s = %#v, want %#v", tt.wantKey, got, tt.wantValue)
			}
		})
	}
	if want := []string{"GwAllocCheck", "CreateNetwork n1", "Join", "RequestPool 10.0.0.0/24", "RequestAddress"}; !slices.Equal(rec.calls, want) {
		t.Errorf("driver calls = %v, want %v", rec.calls, want)
	}
}

// TestNoRequestTakenForAnother: Docker's retry of a call the plugin died in
// carries an empty body; that, and anything cut short, not an object, or
// without the fields Docker always sends, is an error on every call that
// needs a body, and no driver sees it.
func TestNoRequestTakenForAnother(t *testing.T) {
	s, rec := newTestServer(t)
	s.Ready(rec, rec)
	bodies := map[string]string{
		"empty":         "",
		"blank":         " \n",
		"null":          "null",
		"array":         "[]",
		"string":        `"NetworkID"`,
		"cut short":     `{"NetworkID":"n1","EndpointID":"e`,
		"empty object":  "{}",
		"two objects":   `{"NetworkID":"n1"}{"NetworkID":"n2"}`,
		"trailing junk": `{"NetworkID":"n1"} x`,
	}
	paths := []string{
		"/NetworkDriver.CreateNetwork", "/NetworkDriver.DeleteNetwork", "/NetworkDriver.CreateEndpoint",
		"/NetworkDriver.DeleteEndpoint", "/NetworkDriver.EndpointOperInfo", "/NetworkDriver.Join", "/NetworkDriver.Leave",
		"/NetworkDriver.ProgramExternalConnectivity", "/NetworkDriver.RevokeExternalConnectivity",
		"/NetworkDriver.DiscoverNew", "/NetworkDriver.DiscoverDelete", "/NetworkDriver.GwAllocCheck",
		"/IpamDriver.RequestPool", "/IpamDriver.ReleasePool", "/IpamDriver.RequestAddress", "/IpamDriver.ReleaseAddress",
	}
	for _, path := range paths {
		for name, body := range bodies {
			status, out := call(t, s, path, body)
			msg, _ := out["Err"].(string)
			if status != 500 || msg == "" {
				t.Errorf("%s with a %s body: status %d, answer %v; want 500 saying why", path, name, status, out)
			}
		}
	}
	if len(rec.calls) != 0 {
		t.Errorf("drivers were called with broken requests: %v", rec.calls)
	}
	status, out := call(t, s, "/NetworkDriver.DeleteNetwork", `{"NetworkID":"n1"}`)
	if status != 200 || len(rec.calls) != 1 {
		t.Errorf("a whole DeleteNetwork: status %d answer %v calls %v", status, out, rec.calls)
	}
	if _, out := call(t, s, "/NetworkDriver.CreateEndpoint", `{"NetworkID":"n1"}`); !strings.Contains(fmt.Sprint(out["Err"]), "no EndpointID") {
		t.Errorf("CreateEndpoint without EndpointID: answer %v, want it to name the field", out)
	}
	if _, out := call(t, s, "/NetworkDriver.CreateNetwork", ""); !strings.Contains(fmt.Sprint(out["Err"]), "empty request body") {
		t.Errorf("an empty body: answer %v, want it to say so", out)
	}
}

func jsonEqual(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

func TestDriverErrorReachesDocker(t *testing.T) {
	s, rec := newTestServer(t)
	s.Ready(rec, rec)
	rec.fail = errors.New(`option "mtu": 99999 is above parent eth0's MTU 1500`)
	for path, body := range map[string]string{"/NetworkDriver.CreateNetwork": `{"NetworkID":"n1"}`, "/IpamDriver.RequestAddress": `{"PoolID":"p"}`} {
		status, out := call(t, s, path, body)
		if status != 500 || out["Err"] != rec.fail.Error() {
			t.Errorf("%s: status %d answer %v, want 500 with Err %q", path, status, out, rec.fail)
		}
	}
}

func TestCallsWaitForStartUp(t *testing.T) {
	s, rec := newTestServer(t)
	done := make(chan int)
	go func() {
		status, _ := call(t, s, "/NetworkDriver.Join", `{"NetworkID":"n1","EndpointID":"e1","SandboxKey":""}`)
		done <- status
	}()
	// Activation must not wait: Docker marks a plugin dead if it is slow.
	if status, _ := call(t, s, "/Plugin.Activate", ""); status != 200 {
		t.Fatalf("activation status %d before ready", status)
	}
	select {
	case <-done:
		t.Fatal("Join was answered before start-up finished")
	case <-time.After(100 * time.Millisecond):
	}
	s.Ready(rec, rec)
	if status := <-done; status != 200 || len(rec.calls) != 1 {
		t.Fatalf("after ready: status %d calls %v", status, rec.calls)
	}
}

func TestStartUpFailureIsEveryCallsAnswer(t *testing.T) {
	s, rec := newTestServer(t)
	s.Fail(errors.New("open state file /state/ipvlan-bgp.db: state file is corrupt or unreadable"))
	status, out := call(t, s, "/IpamDriver.RequestPool", `{"AddressSpace":"","Pool":"10.0.0.0/24","V6":false}`)
	if status != 500 || !strings.Contains(out["Err"].(string), "corrupt") || len(rec.calls) != 0 {
		t.Fatalf("status %d answer %v calls %v", status, out, rec.calls)
	}
}

func TestServesOnUnixSocket(t *testing.T) {
	s, rec := newTestServer(t)
	s.Ready(rec, rec)
	path := filepath.Join(t.TempDir(), "run", "ipvlan-bgp.sock")
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error)
	go func() { served <- s.Serve(ctx, l) }()
	client := http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}}
	resp, err := client.Post("http://plugin/Plugin.Activate", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	cancel()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	// A second Listen replaces the stale socket, as after a crash.
	l2, err := Listen(path)
	if err != nil {
		t.Fatalf("listen over stale socket: %v", err)
	}
	l2.Close()
}

func FuzzRequestDecoding(f *testing.F) {
	paths := []string{
		"/NetworkDriver.CreateNetwork", "/NetworkDriver.CreateEndpoint", "/NetworkDriver.Join",
		"/NetworkDriver.Leave", "/NetworkDriver.EndpointOperInfo", "/IpamDriver.RequestPool",
		"/IpamDriver.RequestAddress", "/IpamDriver.ReleaseAddress", "/NetworkDriver.DiscoverNew",
	}
	for i, seed := range []string{"", "{}", "null", `{"NetworkID":"n","Options":{"com.docker.network.generic":{"parent":"eth0"}}}`,
		`{"Interface":{"Address":"10.0.0.2/24"}}`, `{"Pool":"10.0.0.0/8","V6":true}`, `[`, `{"Options":[]}`} {
		f.Add(uint8(i), seed)
	}
	s, rec := newTestServer(f)
	s.Ready(rec, rec)
	f.Fuzz(func(t *testing.T, which uint8, body string) {
		path := paths[int(which)%len(paths)]
		status, out := call(t, s, path, body)
		if status != 200 && status != 500 {
			t.Fatalf("%s answered status %d", path, status)
		}
		if status == 500 && out["Err"] == "" {
			t.Fatalf("%s error answer without Err: %v", path, out)
		}
	})
}

// TestDiscoveryLogged: Swarm's node discovery is acknowledged and logged
// with the node's address, whatever shape its data has.
func TestDiscoveryLogged(t *testing.T) {
	for _, tt := range []struct {
		path, body string
		wantMsg    string
		wantFields logrus.Fields
	}{
		{"/NetworkDriver.DiscoverNew", `{"DiscoveryType":1,"DiscoveryData":{"Address":"192.168.100.12","BindAddress":"0.0.0.0","Self":true}}`,
			"swarm node discovered", logrus.Fields{"node": "192.168.100.12", "self": true, "discovery_type": 1}},
		{"/NetworkDriver.DiscoverDelete", `{"DiscoveryType":1,"DiscoveryData":{"Address":"192.168.100.13"}}`,
			"swarm node gone", logrus.Fields{"node": "192.168.100.13", "self": false, "discovery_type": 1}},
		{"/NetworkDriver.DiscoverNew", `{"DiscoveryType":1,"DiscoveryData":"192.168.100.12"}`,
			"swarm node discovered", logrus.Fields{"discovery_type": 1}},
		{"/NetworkDriver.DiscoverNew", `{"DiscoveryType":1,"DiscoveryData":{"Address":7,"Self":"yes"}}`,
			"swarm node discovered", logrus.Fields{"discovery_type": 1}},
	} {
		t.Run(tt.body, func(t *testing.T) {
			log, hook := logtest.NewNullLogger()
			s := NewServer(logrus.NewEntry(log))
			if status, out := call(t, s, tt.path, tt.body); status != 200 {
				t.Fatalf("status %d (answer %v), want 200", status, out)
			}
			var found *logrus.Entry
			for _, e := range hook.AllEntries() {
				if e.Message == tt.wantMsg {
					found = e
				}
			}
			if found == nil || found.Level != logrus.InfoLevel {
				t.Fatalf("no info line %q among %d", tt.wantMsg, len(hook.AllEntries()))
			}
			for k, want := range tt.wantFields {
				if got := found.Data[k]; got != want {
					t.Errorf("field %s = %#v, want %#v", k, got, want)
				}
			}
			for _, k := range []string{"node", "self"} {
				if _, ok := tt.wantFields[k]; !ok && found.Data[k] != nil {
					t.Errorf("field %s = %#v, want none", k, found.Data[k])
				}
			}
		})
	}
}
