package dockertest

import (
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"testing"
)

// stub is a plugin that answers each method with a canned status and body,
// and records what it was sent.
type stub struct {
	answers map[string]answer
	calls   []string
	bodies  map[string]map[string]any
}

type answer struct {
	status int
	body   string
}

func newStub(answers map[string]answer) *stub {
	return &stub{answers: answers, bodies: map[string]map[string]any{}}
}

func (s *stub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	method := r.URL.Path[1:]
	s.calls = append(s.calls, method)
	raw, _ := io.ReadAll(r.Body)
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil || r.Method != http.MethodPost || r.Header.Get("Accept") != acceptHeader {
		http.Error(w, "not what Docker sends", http.StatusTeapot)
		return
	}
	s.bodies[method] = body
	a, ok := s.answers[method]
	if !ok {
		a = answer{http.StatusOK, "{}"}
	}
	w.WriteHeader(a.status)
	_, _ = io.WriteString(w, a.body)
}

func TestCallRefusal(t *testing.T) {
	tests := []struct {
		name string
		ans  answer
		want string
	}{
		{"Err is what Docker shows", answer{http.StatusInternalServerError, `{"Err":"unknown option \"colour\""}`}, `unknown option "colour"`},
		{"no Err: the whole body", answer{http.StatusNotFound, "404 page not found\n"}, "404 page not found\n"},
		{"empty Err: the whole body", answer{http.StatusBadRequest, `{"Err":""}`}, `{"Err":""}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := InProcess(newStub(map[string]answer{"NetworkDriver.Join": tt.ans}))
			err := d.Call("NetworkDriver.Join", struct{}{}, nil)
			if err == nil || err.Error() != tt.want {
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
}

func TestCallDecodesAnswer(t *testing.T) {
	d := InProcess(newStub(map[string]answer{"IpamDriver.RequestAddress": {http.StatusOK, `{"Address":"10.1.0.5/24"}`}}))
	var got struct{ Address string }
	d.MustCall(t, "IpamDriver.RequestAddress", struct{}{}, &got)
	if got.Address != "10.1.0.5/24" {
		t.Errorf("answer %+v, want Address 10.1.0.5/24", got)
	}
	if err := InProcess(newStub(nil)).Call("IpamDriver.RequestAddress", struct{}{}, &[]int{}); err == nil {
		t.Error("an answer of the wrong shape decoded without error")
	}
}

func TestCreateNetwork(t *testing.T) {
	tests := []struct {
		name      string
		pool      string
		wantCalls []string
	}{
		{"gateway in the pool's data: no gateway request",
			`{"PoolID":"p1","Pool":"10.1.0.0/24","Data":{"com.docker.network.gateway":"10.1.0.1/24"}}`,
			[]string{"IpamDriver.RequestPool", "NetworkDriver.CreateNetwork"}},
		{"no gateway in the data: Docker asks for one",
			`{"PoolID":"p1","Pool":"10.1.0.0/24"}`,
			[]string{"IpamDriver.RequestPool", "IpamDriver.RequestAddress", "NetworkDriver.CreateNetwork"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStub(map[string]answer{
				"IpamDriver.RequestPool":    {http.StatusOK, tt.pool},
				"IpamDriver.RequestAddress": {http.StatusOK, `{"Address":"10.1.0.1/24"}`},
			})
			if pool := InProcess(s).CreateNetwork(t, "n1", "10.1.0.0/24", map[string]string{"parent": "eth0"}); pool != "p1" {
				t.Errorf("pool ID %q, want p1", pool)
			}
			if !reflect.DeepEqual(s.calls, tt.wantCalls) {
				t.Errorf("calls %v, want %v", s.calls, tt.wantCalls)
			}
			if gw := s.bodies["IpamDriver.RequestAddress"]; gw != nil && !reflect.DeepEqual(gw["Options"], map[string]any{"RequestAddressType": gatewayLabel}) {
				t.Errorf("gateway request %v lacks Docker's gateway marker", gw)
			}
			create := s.bodies["NetworkDriver.CreateNetwork"]
			wantOptions := map[string]any{"com.docker.network.generic": map[string]any{"parent": "eth0"},
				"com.docker.network.enable_ipv4": true, "com.docker.network.enable_ipv6": false}
			wantV4 := []any{map[string]any{"AddressSpace": "ipvlan-bgp-local", "Pool": "10.1.0.0/24", "Gateway": "10.1.0.1/24", "AuxAddresses": nil}}
			if create["NetworkID"] != "n1" || !reflect.DeepEqual(create["Options"], wantOptions) ||
				!reflect.DeepEqual(create["IPv4Data"], wantV4) || !reflect.DeepEqual(create["IPv6Data"], []any{}) {
				t.Errorf("CreateNetwork sent %v", create)
			}
		})
	}
}

func TestCreateEndpoint(t *testing.T) {
	tests := []struct {
		name      string
		create    answer
		wantErr   string
		wantCalls []string
	}{
		{"accepted", answer{http.StatusOK, "{}"}, "",
			[]string{"IpamDriver.RequestAddress", "NetworkDriver.CreateEndpoint"}},
		{"refused: the address goes back", answer{http.StatusInternalServerError, `{"Err":"route budget reached"}`}, "route budget reached",
			[]string{"IpamDriver.RequestAddress", "NetworkDriver.CreateEndpoint", "IpamDriver.ReleaseAddress"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStub(map[string]answer{
				"IpamDriver.RequestAddress":    {http.StatusOK, `{"Address":"10.1.0.7/24"}`},
				"NetworkDriver.CreateEndpoint": tt.create,
			})
			err := InProcess(s).CreateEndpoint(t, "n1", "p1", "e1")
			if (err == nil) != (tt.wantErr == "") || err != nil && err.Error() != tt.wantErr {
				t.Errorf("error %v, want %q", err, tt.wantErr)
			}
			if !reflect.DeepEqual(s.calls, tt.wantCalls) {
				t.Errorf("calls %v, want %v", s.calls, tt.wantCalls)
			}
			if iface := s.bodies["NetworkDriver.CreateEndpoint"]["Interface"].(map[string]any); iface["Address"] != "10.1.0.7/24" {
				t.Errorf("CreateEndpoint's interface %v, want the requested address", iface)
			}
			if rel := s.bodies["IpamDriver.ReleaseAddress"]; rel != nil && (rel["Address"] != "10.1.0.7" || rel["PoolID"] != "p1") {
				t.Errorf("ReleaseAddress sent %v, want the plain IP 10.1.0.7 of pool p1", rel)
			}
		})
	}
}
