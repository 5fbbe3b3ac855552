package fib

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// routeDumper reads the kernel's routes on its own netlink socket and
// decodes them itself, into one reused buffer: a full table of 100,000
// routes read through the netlink library costs over 100 MB of short-lived
// allocations (a receive buffer per datagram, a netlink.Route per route),
// and the resync that reads it runs every 30 s.
type routeDumper struct {
	fd   int
	seq  uint32
	rbuf []byte
}

// dumpBuffer takes a whole datagram of a dump: the kernel fills them to
// about a page or 32 KiB.
const dumpBuffer = 64 << 10

func newRouteDumper() (*routeDumper, error) {
	fd, err := openRouteSocket()
	if err != nil {
		return nil, err
	}
	// With strict checking the kernel filters the dump by table and
	// protocol itself (Linux 4.20 on); older kernels send every route,
	// and kernelRoute's filter below still applies.
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_GET_STRICT_CHK, 1)
	return &routeDumper{fd: fd, rbuf: make([]byte, dumpBuffer)}, nil
}

func (d *routeDumper) close() { unix.Close(d.fd) }

// kernelRoute is one route of a dump. paths is sorted by comparePath and
// only valid during the callback that receives it.
type kernelRoute struct {
	prefix netip.Prefix
	metric uint32
	paths  []path
}

// each calls f with every route of family in table with protocol, as the
// dump streams in. start is called before each attempt: an interrupted
// dump is read again from its beginning (see retryDump).
func (d *routeDumper) each(family int, table uint32, protocol uint8, start func(), f func(kernelRoute)) error {
	_, err := retryDump(func() (struct{}, error) {
		start()
		return struct{}{}, d.dump(family, table, protocol, f)
	})
	if err != nil {
		return fmt.Errorf("list routes of protocol %d in table %d: %w", protocol, table, err)
	}
	return nil
}

func (d *routeDumper) dump(family int, table uint32, protocol uint8, f func(kernelRoute)) error {
	d.seq++
	if err := d.request(family, table, protocol); err != nil {
		return err
	}
	var scratch []path
	interrupted := false
	for {
		n, _, err := unix.Recvfrom(d.fd, d.rbuf, 0)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			return fmt.Errorf("no answer from the kernel within %s", answerWait)
		case err != nil:
			return fmt.Errorf("read the route dump: %w", err)
		}
		for msg := range netlinkMessages(d.rbuf[:n]) {
			h := msg.header
			if h.Seq != d.seq {
				continue // the tail of an abandoned dump
			}
			interrupted = interrupted || h.Flags&unix.NLM_F_DUMP_INTR != 0
			switch h.Type {
			case unix.NLMSG_DONE:
				if interrupted { // the table changed during the dump
					return netlink.ErrDumpInterrupted
				}
				return nil
			case unix.NLMSG_ERROR:
				if len(msg.body) >= 4 {
					if errno := syscall.Errno(-int32(binary.NativeEndian.Uint32(msg.body))); errno != 0 {
						return fmt.Errorf("route dump refused: %w", errno)
					}
				}
				return nil
			case unix.RTM_NEWROUTE:
				r, ok := decodeRoute(msg.body, table, protocol, scratch[:0])
				if ok {
					f(r)
					scratch = r.paths
				}
			}
		}
	}
}

// request asks for a dump of family's routes, naming table and protocol
// for the kernel's strict filter.
func (d *routeDumper) request(family int, table uint32, protocol uint8) error {
	tableByte := uint8(unix.RT_TABLE_UNSPEC)
	if table < 256 {
		tableByte = uint8(table)
	}
	b := binary.NativeEndian.AppendUint32(nil, 0)
	b = binary.NativeEndian.AppendUint16(b, unix.RTM_GETROUTE)
	b = binary.NativeEndian.AppendUint16(b, unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	b = binary.NativeEndian.AppendUint32(b, d.seq)
	b = binary.NativeEndian.AppendUint32(b, 0)
	b = append(b, uint8(family), 0, 0, 0, tableByte, protocol, 0, 0, 0, 0, 0, 0)
	b = appendAttr(b, unix.RTA_TABLE, binary.NativeEndian.AppendUint32(nil, table))
	binary.NativeEndian.PutUint32(b, uint32(len(b)))
	if err := sendToKernel(d.fd, b); err != nil {
		return fmt.Errorf("ask for the route dump: %w", err)
	}
	return nil
}

// netlinkMessage is one message of a datagram, its body after the header.
type netlinkMessage struct {
	header unix.NlMsghdr
	body   []byte
}

// netlinkMessages yields the well-formed messages of a datagram and stops
// at the first one whose length does not fit.
func netlinkMessages(b []byte) func(yield func(netlinkMessage) bool) {
	return func(yield func(netlinkMessage) bool) {
		for len(b) >= unix.SizeofNlMsghdr {
			h := unix.NlMsghdr{
				Len: binary.NativeEndian.Uint32(b), Type: binary.NativeEndian.Uint16(b[4:]),
				Flags: binary.NativeEndian.Uint16(b[6:]), Seq: binary.NativeEndian.Uint32(b[8:]),
				Pid: binary.NativeEndian.Uint32(b[12:]),
			}
			if h.Len < unix.SizeofNlMsghdr || int(h.Len) > len(b) {
				return
			}
			if !yield(netlinkMessage{header: h, body: b[unix.SizeofNlMsghdr:h.Len]}) {
				return
			}
			b = b[min(nlmAlign(int(h.Len)), len(b)):]
		}
	}
}

// decodeRoute reads an RTM_NEWROUTE body: ok is false for a route of
// another table or protocol, or a malformed one. A route of our protocol
// that is not a plain unicast route (a blackhole added by hand, say) comes
// back with a path no wanted route has, so Sync replaces or deletes it.
// Its paths are appended to scratch.
func decodeRoute(b []byte, table uint32, protocol uint8, scratch []path) (kernelRoute, bool) {
	if len(b) < unix.SizeofRtMsg {
		return kernelRoute{}, false
	}
	family, dstLen, rtmTable, rtmProtocol := b[0], int(b[1]), uint32(b[4]), b[5]
	if rtmProtocol != protocol {
		return kernelRoute{}, false
	}
	var (
		r         = kernelRoute{paths: scratch}
		dst       netip.Addr
		gateway   netip.Addr
		oif       int
		multipath []byte
	)
	routeTable := rtmTable
	for typ, value := range routeAttrs(b[unix.SizeofRtMsg:]) {
		switch typ {
		case unix.RTA_DST:
			dst, _ = netip.AddrFromSlice(value)
		case unix.RTA_TABLE:
			if len(value) == 4 {
				routeTable = binary.NativeEndian.Uint32(value)
			}
		case unix.RTA_PRIORITY:
			if len(value) == 4 {
				r.metric = binary.NativeEndian.Uint32(value)
			}
		case unix.RTA_OIF:
			if len(value) == 4 {
				oif = int(binary.NativeEndian.Uint32(value))
			}
		case unix.RTA_GATEWAY, unix.RTA_VIA:
			gateway = gatewayAddr(typ, value)
		case unix.RTA_MULTIPATH:
			multipath = value
		}
	}
	if !dst.IsValid() && dstLen == 0 {
		// A default route carries no destination.
		switch family {
		case unix.AF_INET:
			dst = netip.IPv4Unspecified()
		case unix.AF_INET6:
			dst = netip.IPv6Unspecified()
		}
	}
	if routeTable != table || !dst.IsValid() || (family == unix.AF_INET) != dst.Is4() || dstLen > dst.BitLen() {
		return kernelRoute{}, false
	}
	r.prefix = netip.PrefixFrom(dst, dstLen)
	if multipath == nil {
		r.paths = append(r.paths, path{addr: gateway, ifindex: oif})
	} else {
		r.paths = appendNexthops(r.paths, multipath)
	}
	slices.SortFunc(r.paths, comparePath)
	return r, true
}

// appendNexthops reads RTA_MULTIPATH: rtnexthop records (length, flags,
// hops, ifindex), each followed by its own attributes.
func appendNexthops(paths []path, b []byte) []path {
	const rtnexthopLen = 8
	for len(b) >= rtnexthopLen {
		l := int(binary.NativeEndian.Uint16(b))
		if l < rtnexthopLen || l > len(b) {
			break
		}
		p := path{ifindex: int(binary.NativeEndian.Uint32(b[4:]))}
		for typ, value := range routeAttrs(b[rtnexthopLen:l]) {
			if typ == unix.RTA_GATEWAY || typ == unix.RTA_VIA {
				p.addr = gatewayAddr(typ, value)
			}
		}
		paths = append(paths, p)
		b = b[min(rtaAlign(l), len(b)):]
	}
	return paths
}

// gatewayAddr reads RTA_GATEWAY (a bare address) or RTA_VIA (an address
// family, then the address: an IPv4 route via IPv6).
func gatewayAddr(typ uint16, value []byte) netip.Addr {
	if typ == unix.RTA_VIA {
		if len(value) < 2 {
			return netip.Addr{}
		}
		value = value[2:]
	}
	addr, _ := netip.AddrFromSlice(value)
	return addr.Unmap()
}

// routeAttrs yields the well-formed attributes (rtattr, or nlattr: the
// same layout) of b, stopping at the first
// whose length does not fit.
func routeAttrs(b []byte) func(yield func(uint16, []byte) bool) {
	return func(yield func(uint16, []byte) bool) {
		for len(b) >= unix.SizeofRtAttr {
			l, typ := int(binary.NativeEndian.Uint16(b)), binary.NativeEndian.Uint16(b[2:])
			if l < unix.SizeofRtAttr || l > len(b) {
				return
			}
			if !yield(typ, b[unix.SizeofRtAttr:l]) {
				return
			}
			b = b[min(rtaAlign(l), len(b)):]
		}
	}
}
