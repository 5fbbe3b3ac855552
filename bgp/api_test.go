package bgp

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ipvlan-bgp/ipvlan-bgp/internal/route"
)

// gobgpCLI builds the stock gobgp CLI of the embedded version once per
// machine (it needs the module cache or the module proxy) and skips the test
// when it cannot.
func gobgpCLI(t *testing.T) string {
	t.Helper()
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "ipvlan-bgp", "gobgp-cli-v3.37.0")
	bin := filepath.Join(dir, "gobgp")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	// The test's namespace has no network: the module cache, which building
	// this package filled with GoBGP's sources, serves as the proxy.
	cmd := exec.Command("go", "install", "github.com/osrg/gobgp/v3/cmd/gobgp@v3.37.0")
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOPROXY=file://"+goModCache(t)+"/cache/download", "GOSUMDB=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("cannot build the gobgp CLI v3.37.0 (go install): %v\n%s", err, out)
	}
	return bin
}

// TestGobgpCLIOnAPISocket runs the stock gobgp CLI against the API socket:
// it lists our neighbour and our announced path, over the socket and over
// BGP_API_TCP. The socket replaces a stale one, is root-only, and goes away
// on Stop.
func TestGobgpCLIOnAPISocket(t *testing.T) {
	cli := gobgpCLI(t)
	sock := filepath.Join(t.TempDir(), "gobgp.sock")
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	_ = stale.Close()

	cfg := testConfig(numbered("10.0.9.2", 65009))
	cfg.APISocket = sock
	cfg.APITCP = "127.0.0.1:50051" // inside the test's own namespace
	s := startSpeaker(t, cfg)
	s.Set("ep", []route.Advert{advert("10.9.0.1/32", "65000:9")})

	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("API socket: %v, %v; want a socket with mode 0600", fi.Mode(), err)
	}
	overUnix, overTCP := []string{"--target", "unix://" + sock}, []string{"-u", "127.0.0.1", "-p", "50051"}
	gobgp := func(target []string, args ...string) string {
		out, err := exec.Command(cli, append(target, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("gobgp %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	for _, target := range [][]string{overUnix, overTCP} {
		if out := gobgp(target, "neighbor"); !strings.Contains(out, "10.0.9.2") || !strings.Contains(out, "65009") {
			t.Errorf("gobgp %v neighbor does not list 10.0.9.2 (AS 65009):\n%s", target, out)
		}
	}
	if out := gobgp(overUnix, "global", "rib", "-a", "ipv4"); !strings.Contains(out, "10.9.0.1/32") || !strings.Contains(out, "65000:9") {
		t.Errorf("gobgp global rib does not show 10.9.0.1/32 with 65000:9:\n%s", out)
	}
	if err := s.Stop(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("API socket left behind after Stop: %v", err)
	}
}

// TestAPISocketFailureKeepsBGP: when the API socket cannot be made (here the
// path holds a regular file) the speaker still runs without its API, keeps
// the error in Status, leaves the file alone, and Set still works.
func TestAPISocketFailureKeepsBGP(t *testing.T) {
	path := filepath.Join(t.TempDir(), "not-a-socket")
	if err := os.WriteFile(path, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.APISocket = path
	s := NewSpeaker(cfg, Options{Log: speakerLog(t)})
	if err := s.Start(context.Background()); err != nil {
		t.Fatalf("Start failed on an API socket error: %v", err)
	}
	if data, _ := os.ReadFile(path); string(data) != "keep me" {
		t.Errorf("Start clobbered the file at the API socket path")
	}
	s.Set("ep", []route.Advert{advert("10.10.0.1/32")})
	st, serr := s.Status(context.Background())
	if serr != nil || !st.Running || !strings.Contains(st.LastError, "BGP_API_SOCKET") || !strings.Contains(st.LastError, "is not a socket") || len(st.Adverts["ep"]) != 1 {
		t.Fatalf("Status = %+v, %v; want running, the API error kept, the advert recorded", st, serr)
	}
	if err := s.Stop(context.Background(), true); err != nil {
		t.Errorf("Stop: %v", err)
	}
}

func goModCache(t *testing.T) string {
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Skipf("go env GOMODCACHE: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// TestGoBGPFatalDoesNotExit: GoBGP calls Fatal when its gRPC listener
// fails; the plugin must survive it, with the error in Status.
func TestGoBGPFatalDoesNotExit(t *testing.T) {
	s := NewSpeaker(testConfig(), Options{Log: speakerLog(t)})
	l := &gobgpLogger{log: s.log, failed: s.recordErr}
	l.Fatal("failed to listen grpc port", map[string]any{"Err": "address in use"})
	st, err := s.Status(context.Background())
	if err != nil || !strings.Contains(st.LastError, "failed to listen grpc port") {
		t.Fatalf("Status = %+v, %v; want GoBGP's fatal error kept", st, err)
	}
}
