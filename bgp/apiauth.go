package bgp

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// GoBGP's API has no authentication, and its answers carry the neighbours'
// MD5 passwords in clear. On the unix socket the file mode keeps everyone
// but root out. On TCP, a loopback listener relays only connections whose
// socket belongs to root: the kernel's socket table (/proc/net/tcp*, in the
// host's network namespace, where the plugin runs) names the owner of the
// client's end. A non-loopback listener (BGP_API_TCP_REMOTE) cannot tell
// who is calling; the docs say so.

// errNotRoot is a caller on loopback whose socket is not root's.
var errNotRoot = errors.New("the caller is not root")

// checkCaller lets a connection through when it comes from a remote
// address (only possible with BGP_API_TCP_REMOTE) or from root on this host.
func checkCaller(conn net.Conn) error {
	client, ok := addrPort(conn.RemoteAddr())
	if !ok {
		return nil // a unix socket: its file mode decides
	}
	if !client.Addr().IsLoopback() {
		return nil
	}
	server, _ := addrPort(conn.LocalAddr())
	uid, err := socketOwner(client, server)
	if err != nil {
		return err
	}
	if uid != 0 {
		return fmt.Errorf("%w (uid %d)", errNotRoot, uid)
	}
	return nil
}

func addrPort(a net.Addr) (netip.AddrPort, bool) {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.AddrPort{}, false
	}
	return tcp.AddrPort(), true
}

// socketOwner finds the uid of the TCP socket whose local end is local and
// remote end remote.
func socketOwner(local, remote netip.AddrPort) (uint32, error) {
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		uid, found, err := findSocket(table, local, remote)
		if err != nil || found {
			return uid, err
		}
	}
	return 0, fmt.Errorf("the client's socket %s is not in the kernel's socket table", local)
}

func findSocket(table string, local, remote netip.AddrPort) (uid uint32, found bool, err error) {
	f, err := os.Open(table)
	if err != nil {
		return 0, false, fmt.Errorf("read socket owners: %w", err)
	}
	defer f.Close()
	lines := bufio.NewScanner(f)
	lines.Scan() // header
	for lines.Scan() {
		fields := strings.Fields(lines.Text())
		if len(fields) < 8 {
			continue
		}
		l, lok := parseProcAddr(fields[1])
		r, rok := parseProcAddr(fields[2])
		if !lok || !rok || l != local || r != remote {
			continue
		}
		n, err := strconv.ParseUint(fields[7], 10, 32)
		if err != nil {
			return 0, false, fmt.Errorf("%s: uid %q: %w", table, fields[7], err)
		}
		return uint32(n), true, nil
	}
	return 0, false, lines.Err()
}

// parseProcAddr reads "0100007F:C350": the address in 32-bit words of host
// byte order, then the port, both in hex. IPv4-mapped IPv6 addresses are
// unmapped, as Go reports them.
func parseProcAddr(s string) (netip.AddrPort, bool) {
	hexAddr, hexPort, ok := strings.Cut(s, ":")
	raw, err := hex.DecodeString(hexAddr)
	port, perr := strconv.ParseUint(hexPort, 16, 16)
	if !ok || err != nil || perr != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, false
	}
	for i := 0; i < len(raw); i += 4 {
		binary.BigEndian.PutUint32(raw[i:], binary.NativeEndian.Uint32(raw[i:]))
	}
	addr, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(addr.Unmap(), uint16(port)), true
}
