package config

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// envOf turns a map into a getenv function; BGP_CONFIG_FILE points at a file
// that does not exist unless the test sets it, so the machine's /state never
// leaks in.
func envOf(t testing.TB, env map[string]string) func(string) string {
	if _, ok := env[EnvConfigFile]; !ok {
		env[EnvConfigFile] = ""
	}
	return func(k string) string { return env[k] }
}

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bgp.toml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadConfigDefaults(t *testing.T) {
	cfg, err := Load(envOf(t, map[string]string{}))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		ASN:             64512,
		ListenPort:      179,
		GracefulRestart: GracefulRestart{Enabled: true, RestartTime: 120 * time.Second},
		ExportMinLen:    MinLen{V4: 16, V6: 48},
		APISocket:       "/state/gobgp.sock",
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", cfg, want)
	}
}

// TestDefaultMaxPrefixes: every neighbour gets the max-prefix limit unless
// it sets its own; 0 lifts it.
func TestDefaultMaxPrefixes(t *testing.T) {
	for _, tc := range []struct {
		env  string
		want uint32
	}{{"", defaultMaxPrefixes}, {"0", 0}, {"200", 200}} {
		cfg, err := Load(envOf(t, map[string]string{EnvNeighbors: "10.0.0.1:65001", EnvMaxPrefixes: tc.env}))
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.Neighbors[0].MaxPrefixes; got != tc.want {
			t.Errorf("%s=%q: max prefixes %d, want %d", EnvMaxPrefixes, tc.env, got, tc.want)
		}
	}
}

// TestAPITCPRemote: a non-loopback API address needs BGP_API_TCP_REMOTE.
func TestAPITCPRemote(t *testing.T) {
	cfg, err := Load(envOf(t, map[string]string{EnvAPITCP: "10.0.0.1:50051", EnvAPITCPRemote: "true"}))
	if err != nil || cfg.APITCP != "10.0.0.1:50051" || !cfg.APITCPRemote {
		t.Fatalf("Load = %+v, %v; want the remote address taken", cfg, err)
	}
}

func TestLoadConfigEnv(t *testing.T) {
	cfg, err := Load(envOf(t, map[string]string{
		EnvASN:             "4200000001",
		EnvRouterID:        "192.0.2.1",
		EnvListenPort:      "0",
		EnvNeighbors:       "10.0.0.1:65101, lo:external ,[fd00::1]:internal,fd00::2:65102",
		EnvPassword:        "s3cret",
		EnvHoldTime:        "9",
		EnvFamilies:        "ipv4-unicast",
		EnvMaxPrefixes:     "100",
		EnvMultihopTTL:     "2",
		EnvGracefulRestart: "false",
		EnvRestartTime:     "30s",
		EnvExportAllow:     "10.0.0.0/8 le 32, fd00::/8 within",
		EnvImportAllow:     "0.0.0.0/0",
		EnvImportDefault:   "true",
		EnvAPISocket:       "none",
		EnvAPITCP:          "127.0.0.1:50051",
		EnvBFD:             "false",
		EnvBFDMinRx:        "100",
		EnvBFDMinTx:        "200ms",
		EnvBFDMultiplier:   "5",
	}))
	if err != nil {
		t.Fatal(err)
	}
	settings := PeerSettings{Password: "s3cret", MultihopTTL: 2, HoldTime: 9 * time.Second,
		Keepalive: 3 * time.Second, Families: []Family{IPv4Unicast}, MaxPrefixes: 100,
		BFD: BFD{MinRx: 100 * time.Millisecond, MinTx: 200 * time.Millisecond, Multiplier: 5}}
	with := func(as uint32) PeerSettings { s := settings; s.RemoteAS = as; return s }
	want := Config{
		ASN: 4200000001, RouterID: netip.MustParseAddr("192.0.2.1"),
		Neighbors: []Neighbor{
			{Address: netip.MustParseAddr("10.0.0.1"), PeerSettings: with(65101)},
			{Interface: "lo", PeerSettings: with(0)},
			{Address: netip.MustParseAddr("fd00::1"), PeerSettings: with(4200000001)},
			{Address: netip.MustParseAddr("fd00::2"), PeerSettings: with(65102)},
		},
		GracefulRestart: GracefulRestart{RestartTime: 30 * time.Second},
		ExportAllow: []PrefixRule{
			{Prefix: netip.MustParsePrefix("10.0.0.0/8"), MinLen: 8, MaxLen: 32},
			{Prefix: netip.MustParsePrefix("fd00::/8"), MinLen: 8, MaxLen: 128},
		},
		ExportMinLen: MinLen{V4: 16, V6: 48},
		Import:       ImportPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}, AllowDefault: true},
		APITCP:       "127.0.0.1:50051",
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("env config:\n got %+v\nwant %+v", cfg, want)
	}
}

const sampleFile = `
asn = 65010
router-id = "192.0.2.9"
export-allow = ["10.1.0.0/16 ge 24"]

[[peer-group]]
name = "leaves"
remote-as = "external"
hold-time = "30s"
password = "grp"
bfd = true
bfd-min-tx = "1s"

[[neighbor]]
address = "10.0.0.1"
peer-group = "leaves"
keepalive = 5

[[neighbor]]
interface = "lo"
remote-as = 65200
families = ["ipv6-unicast"]
bfd = true
bfd-multiplier = 4

[[dynamic-neighbor]]
prefix = "10.9.0.0/24"
peer-group = "leaves"
`

// TestLoadConfigFileMerge checks the merge rule: env wins for scalars, the
// file for lists; neighbours inherit env defaults, then their group.
func TestLoadConfigFileMerge(t *testing.T) {
	cfg, err := Load(envOf(t, map[string]string{
		EnvConfigFile:  writeConfig(t, sampleFile),
		EnvASN:         "65011",
		EnvNeighbors:   "10.0.0.7:65000",
		EnvExportAllow: "0.0.0.0/0 le 32",
		EnvMaxPrefixes: "50",
	}))
	if err != nil {
		t.Fatal(err)
	}
	defaults := PeerSettings{HoldTime: 90 * time.Second, Keepalive: 30 * time.Second, MaxPrefixes: 50,
		BFD: BFD{MinRx: 300 * time.Millisecond, MinTx: 300 * time.Millisecond, Multiplier: 3}}
	group := defaults
	group.HoldTime, group.Keepalive, group.Password = 30*time.Second, 10*time.Second, "grp"
	group.BFD.Enabled, group.BFD.MinTx = true, time.Second
	first := group
	first.Keepalive = 5 * time.Second
	second := defaults
	second.RemoteAS, second.Families = 65200, []Family{IPv6Unicast}
	second.BFD.Enabled, second.BFD.Multiplier = true, 4
	want := Config{
		ASN: 65011, RouterID: netip.MustParseAddr("192.0.2.9"), ListenPort: 179,
		PeerGroups: []PeerGroup{{Name: "leaves", PeerSettings: group}},
		Neighbors: []Neighbor{
			{Address: netip.MustParseAddr("10.0.0.1"), PeerGroup: "leaves", PeerSettings: first},
			{Interface: "lo", PeerSettings: second},
		},
		DynamicNeighbors: []DynamicNeighbor{{Prefix: netip.MustParsePrefix("10.9.0.0/24"), PeerGroup: "leaves"}},
		GracefulRestart:  GracefulRestart{Enabled: true, RestartTime: 120 * time.Second},
		ExportAllow:      []PrefixRule{{Prefix: netip.MustParsePrefix("10.1.0.0/16"), MinLen: 24, MaxLen: 32}},
		ExportMinLen:     MinLen{V4: 16, V6: 48},
		APISocket:        "/state/gobgp.sock",
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("merged config:\n got %+v\nwant %+v", cfg, want)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		file string // TOML; written to a temp file when set
		want string // substring of the error
	}{
		{"AS zero", map[string]string{EnvASN: "0"}, "", `BGP_ASN="0": an AS number must be 1..4294967295`},
		{"AS too big", map[string]string{EnvASN: "4294967296"}, "", `BGP_ASN="4294967296"`},
		{"AS not a number", map[string]string{EnvASN: "AS65000"}, "", `BGP_ASN="AS65000"`},
		{"router ID IPv6", map[string]string{EnvRouterID: "fd00::1"}, "", `BGP_ROUTER_ID="fd00::1": a router ID is a non-zero IPv4`},
		{"router ID zero", map[string]string{EnvRouterID: "0.0.0.0"}, "", `BGP_ROUTER_ID="0.0.0.0"`},
		{"listen port", map[string]string{EnvListenPort: "65536"}, "", `BGP_LISTEN_PORT="65536": want a whole number 0..65535`},
		{"graceful restart", map[string]string{EnvGracefulRestart: "maybe"}, "", `BGP_GRACEFUL_RESTART="maybe": want true or false`},
		{"restart time big", map[string]string{EnvRestartTime: "4096"}, "", `BGP_RESTART_TIME="4096": want 1s..1h8m15s`},
		{"restart time fraction", map[string]string{EnvRestartTime: "1.5s"}, "", `BGP_RESTART_TIME="1.5s": BGP timers are whole seconds`},
		{"import default", map[string]string{EnvImportDefault: "yes please"}, "", `BGP_IMPORT_DEFAULT="yes please"`},
		{"export rule host bits", map[string]string{EnvExportAllow: "10.0.0.1/8"}, "", `BGP_EXPORT_ALLOW="10.0.0.1/8": "10.0.0.1/8" is not a network prefix`},
		{"export rule le too long", map[string]string{EnvExportAllow: "10.0.0.0/8 le 33"}, "", `le 33: want a length 8..32`},
		{"export rule ge above le", map[string]string{EnvExportAllow: "10.0.0.0/8 ge 28 le 24"}, "", `ge 28 is above le 24`},
		{"export rule junk", map[string]string{EnvExportAllow: "10.0.0.0/8 upto 24"}, "", `after the prefix want`},
		{"export rule ge twice", map[string]string{EnvExportAllow: "10.0.0.0/8 ge 9 ge 10"}, "", `after the prefix want`},
		{"import allow", map[string]string{EnvImportAllow: "10.0.0.0/33"}, "", `BGP_IMPORT_ALLOW="10.0.0.0/33": not a CIDR prefix`},
		{"import allow host bits", map[string]string{EnvImportAllow: "10.1.2.3/16"}, "", `did you mean 10.1.0.0/16?`},
		{"api socket relative", map[string]string{EnvAPISocket: "gobgp.sock"}, "", `BGP_API_SOCKET="gobgp.sock": want an absolute path`},
		{"api socket long", map[string]string{EnvAPISocket: "/" + strings.Repeat("a", 107)}, "", `BGP_API_SOCKET=`},
		{"api tcp", map[string]string{EnvAPITCP: "localhost:50051"}, "", `BGP_API_TCP="localhost:50051": want IP:PORT`},
		{"api tcp port", map[string]string{EnvAPITCP: "127.0.0.1:0"}, "", `BGP_API_TCP="127.0.0.1:0"`},
		{"api tcp not loopback", map[string]string{EnvAPITCP: "10.0.0.1:50051"}, "", `BGP_API_TCP="10.0.0.1:50051": the GoBGP API has no authentication`},
		{"api tcp any", map[string]string{EnvAPITCP: "0.0.0.0:50051"}, "", `set BGP_API_TCP_REMOTE=true to expose it`},
		{"api tcp remote", map[string]string{EnvAPITCPRemote: "sure"}, "", `BGP_API_TCP_REMOTE="sure": want true or false`},
		{"export min v4", map[string]string{EnvExportMinV4Len: "33"}, "", `BGP_EXPORT_MIN_V4_LEN="33": want a whole number 0..32`},
		{"export min v6", map[string]string{EnvExportMinV6Len: "/48"}, "", `BGP_EXPORT_MIN_V6_LEN="/48"`},
		{"import connected", map[string]string{EnvImportConnected: "1x"}, "", `BGP_IMPORT_CONNECTED="1x": want true or false`},
		{"neighbour no AS", map[string]string{EnvNeighbors: "10.0.0.1"}, "", `BGP_NEIGHBORS="10.0.0.1": want ADDRESS:AS`},
		{"neighbour bad AS", map[string]string{EnvNeighbors: "10.0.0.1:foreign"}, "", `BGP_NEIGHBORS="10.0.0.1:foreign": want an AS number`},
		{"neighbour bad address", map[string]string{EnvNeighbors: "10.0.0.300:65000"}, "", `BGP_NEIGHBORS="10.0.0.300:65000": not a unicast`},
		{"neighbour IPv6 without AS", map[string]string{EnvNeighbors: "fd00::1"}, "", `BGP_NEIGHBORS="fd00::1": not a unicast`},
		{"neighbour multicast", map[string]string{EnvNeighbors: "224.0.0.5:65000"}, "", `not a unicast`},
		{"neighbour unknown interface", map[string]string{EnvNeighbors: "nosuch0:external"}, "", `BGP_NEIGHBORS="nosuch0:external": unknown interface`},
		{"neighbour duplicate", map[string]string{EnvNeighbors: "10.0.0.1:1,10.0.0.1:2"}, "", `BGP_NEIGHBORS="10.0.0.1": neighbour listed twice`},
		{"unknown family", map[string]string{EnvFamilies: "ipv4-unicast,l2vpn-evpn"}, "", `BGP_FAMILIES="l2vpn-evpn": unknown family`},
		{"family twice", map[string]string{EnvFamilies: "ipv4-unicast,ipv4-unicast"}, "", `family listed twice`},
		{"keepalive above hold/3", map[string]string{EnvHoldTime: "9", EnvKeepalive: "4"}, "", `BGP_KEEPALIVE="4s": keepalive must be at most a third of the hold time (9s)`},
		{"hold time too short", map[string]string{EnvHoldTime: "2"}, "", `BGP_HOLD_TIME="2": want 3s..18h12m15s`},
		{"keepalive zero", map[string]string{EnvKeepalive: "0"}, "", `BGP_KEEPALIVE="0": want 1s..`},
		{"hold time too long", map[string]string{EnvHoldTime: "65536"}, "", `BGP_HOLD_TIME="65536"`},
		{"multihop", map[string]string{EnvMultihopTTL: "256"}, "", `BGP_MULTIHOP_TTL="256": want a whole number 0..255`},
		{"max prefixes", map[string]string{EnvMaxPrefixes: "-1"}, "", `BGP_MAX_PREFIXES="-1"`},
		{"bfd", map[string]string{EnvBFD: "on"}, "", `BGP_BFD="on": want true or false`},
		{"bfd interval short", map[string]string{EnvBFDMinRx: "5"}, "", `BGP_BFD_MIN_RX="5": want 10ms..1m0s`},
		{"bfd interval fraction", map[string]string{EnvBFDMinTx: "1.5ms"}, "", `BGP_BFD_MIN_TX="1.5ms": BFD intervals are whole milliseconds`},
		{"bfd interval unit", map[string]string{EnvBFDMinTx: "fast"}, "", `want milliseconds, e.g. 300 or 300ms`},
		{"bfd multiplier", map[string]string{EnvBFDMultiplier: "0"}, "", `BGP_BFD_MULTIPLIER="0": want a whole number 1..255`},
		{"bfd multihop", map[string]string{EnvBFD: "true", EnvMultihopTTL: "2"}, "", `BGP_BFD="true": BFD is single-hop here (RFC 5881): not with multihop-ttl 2`},
		{"file bfd multihop", nil, "[[peer-group]]\nname=\"a\"\nremote-as=1\nmultihop-ttl=2\nbfd=true", `peer-group[0].bfd="true": BFD is single-hop`},
		{"password too long", map[string]string{EnvPassword: strings.Repeat("x", 81)}, "", `BGP_PASSWORD="<hidden>": an MD5 password is at most 80 bytes`},
		{"missing named file", map[string]string{EnvConfigFile: "/nonexistent/bgp.toml"}, "", `BGP_CONFIG_FILE: read BGP config file`},
		{"file syntax", nil, "asn = ", `BGP config file`},
		{"file unknown key", nil, "asm = 1", `unknown key "asm"`},
		{"file wrong type", nil, "asn = [1]", `want a string, number or boolean`},
		{"file AS", nil, "asn = 0", `bgp.toml: asn="0"`},
		{"file neighbour both", nil, "[[neighbor]]\naddress=\"10.0.0.1\"\ninterface=\"lo\"\nremote-as=1", `neighbor[0].address="10.0.0.1lo": set exactly one`},
		{"file neighbour neither", nil, "[[neighbor]]\nremote-as=1", `neighbor[0].address="": set exactly one`},
		{"file neighbour no AS", nil, "[[neighbor]]\naddress=\"10.0.0.1\"", `neighbor[0].remote-as="": required`},
		{"file neighbour link-local", nil, "[[neighbor]]\naddress=\"fe80::1%lo\"\nremote-as=1", `neighbor[0].address="fe80::1%lo": not a unicast`},
		{"file neighbour unknown group", nil, "[[neighbor]]\naddress=\"10.0.0.1\"\npeer-group=\"x\"", `neighbor[0].peer-group="x": no such peer group`},
		{"file neighbour duplicate", nil, "[[neighbor]]\naddress=\"10.0.0.1\"\nremote-as=1\n[[neighbor]]\naddress=\"10.0.0.1\"\nremote-as=2", `neighbor[1].address="10.0.0.1": neighbour listed twice`},
		{"file neighbour timers", nil, "[[neighbor]]\naddress=\"10.0.0.1\"\nremote-as=1\nhold-time=30\nkeepalive=11", `neighbor[0].keepalive="11s"`},
		{"file neighbour families", nil, "[[neighbor]]\naddress=\"10.0.0.1\"\nremote-as=1\nfamilies=[]", `neighbor[0].families="": list at least one`},
		{"file group no name", nil, "[[peer-group]]\nremote-as=1", `peer-group[0].name="": a peer group needs a name`},
		{"file group twice", nil, "[[peer-group]]\nname=\"a\"\nremote-as=1\n[[peer-group]]\nname=\"a\"\nremote-as=1", `peer-group[1].name="a": peer group defined twice`},
		{"file group no AS", nil, "[[peer-group]]\nname=\"a\"", `peer-group[0].remote-as="": required`},
		{"file group bad ttl", nil, "[[peer-group]]\nname=\"a\"\nremote-as=1\nmultihop-ttl=300", `peer-group[0].multihop-ttl="300"`},
		{"file dynamic prefix", nil, "[[peer-group]]\nname=\"a\"\nremote-as=1\n[[dynamic-neighbor]]\nprefix=\"10.0.0.0\"\npeer-group=\"a\"", `dynamic-neighbor[0].prefix="10.0.0.0": not a CIDR`},
		{"file dynamic group", nil, "[[dynamic-neighbor]]\nprefix=\"10.0.0.0/24\"", `dynamic-neighbor[0].peer-group="": no such peer group`},
		{"file dynamic overlap", nil, "[[peer-group]]\nname=\"a\"\nremote-as=1\n[[dynamic-neighbor]]\nprefix=\"10.0.0.0/16\"\npeer-group=\"a\"\n[[dynamic-neighbor]]\nprefix=\"10.0.1.0/24\"\npeer-group=\"a\"", `overlaps dynamic neighbour range 10.0.0.0/16`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := tt.env
			if env == nil {
				env = map[string]string{}
			}
			if tt.file != "" {
				env[EnvConfigFile] = writeConfig(t, tt.file)
			}
			_, err := Load(envOf(t, env))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("LoadConfig error = %v, want it to contain %s", err, tt.want)
			}
			if strings.Contains(err.Error(), strings.Repeat("x", 81)) {
				t.Fatalf("error leaks the password: %v", err)
			}
		})
	}
}

func TestPrefixRuleContains(t *testing.T) {
	tests := []struct {
		rule, prefix string
		want         bool
	}{
		{"10.0.0.0/8", "10.0.0.0/8", true},
		{"10.0.0.0/8", "10.1.0.0/16", false},
		{"10.0.0.0/8 within", "10.1.2.3/32", true},
		{"10.0.0.0/8 le 24", "10.1.2.0/24", true},
		{"10.0.0.0/8 le 24", "10.1.2.3/32", false},
		{"10.0.0.0/8 ge 24", "10.1.2.3/32", true},
		{"10.0.0.0/8 ge 24", "10.1.0.0/16", false},
		{"10.0.0.0/8 ge 24 le 28", "10.1.2.0/28", true},
		{"10.0.0.0/8 within", "11.0.0.0/32", false},
		{"0.0.0.0/0 le 32", "fd00::1/128", false},
		{"fd00::/8 within", "fd00::1/128", true},
	}
	for _, tt := range tests {
		r, err := ParsePrefixRule(tt.rule)
		if err != nil {
			t.Fatalf("ParsePrefixRule(%q): %v", tt.rule, err)
		}
		if got := r.Contains(netip.MustParsePrefix(tt.prefix)); got != tt.want {
			t.Errorf("%q contains %s = %v, want %v", tt.rule, tt.prefix, got, tt.want)
		}
	}
}

// TestSecretNeverPrinted guards the MD5 password against every way a
// neighbour can reach a log line.
func TestSecretNeverPrinted(t *testing.T) {
	n := Neighbor{Address: netip.MustParseAddr("10.0.0.1"), PeerSettings: PeerSettings{Password: "hunter2"}}
	for _, format := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		if out := fmt.Sprintf(format, n); strings.Contains(out, "hunter2") {
			t.Errorf("%s prints the password: %s", format, out)
		}
	}
	if text, _ := n.Password.MarshalText(); strings.Contains(string(text), "hunter2") {
		t.Errorf("MarshalText prints the password: %s", text)
	}
}

func FuzzLoad(f *testing.F) {
	f.Add("10.0.0.1:65101,eth0:external,fd00::1:internal", "90", "10.0.0.0/8 le 32", sampleFile)
	f.Add("[fd00::1]:1", "9s", "fd00::/8 within", "asn = 1\n[[neighbor]]\naddress=\"10.0.0.1\"\nremote-as=1")
	f.Fuzz(func(t *testing.T, neighbors, hold, export, file string) {
		path := filepath.Join(t.TempDir(), "bgp.toml")
		if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(envOf(t, map[string]string{
			EnvNeighbors: neighbors, EnvHoldTime: hold, EnvExportAllow: export, EnvConfigFile: path,
		}))
		if err != nil {
			return
		}
		for _, n := range cfg.Neighbors {
			if n.Keepalive > n.HoldTime/3 || (n.Address.IsValid() == (n.Interface != "")) {
				t.Fatalf("accepted an invalid neighbour: %v", n)
			}
		}
	})
}

func FuzzParseNeighbors(f *testing.F) {
	f.Add("10.0.0.1:65101,lo:external,fd00::1:internal")
	f.Add("[fd00::1]:4294967295")
	f.Fuzz(func(t *testing.T, list string) {
		base := PeerSettings{HoldTime: 90 * time.Second, Keepalive: 30 * time.Second}
		ns, err := ParseNeighbors(list, base, 64512)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, n := range ns {
			if n.Address.IsValid() == (n.Interface != "") || seen[n.Name()] {
				t.Fatalf("ParseNeighbors(%q) accepted %v: want one address or interface, no duplicates", list, n)
			}
			seen[n.Name()] = true
		}
	})
}
