package fib

import (
	"encoding/binary"
	"net/netip"

	"golang.org/x/sys/unix"
)

// appendRouteMsg appends op as one netlink message: RTM_NEWROUTE with
// replace semantics when it has paths, RTM_DELROUTE of our route otherwise.
func (w *batchWriter) appendRouteMsg(b []byte, op routeOp, seq uint32) []byte {
	start := len(b)
	typ, flags := uint16(unix.RTM_DELROUTE), uint16(unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	// A delete leaves type and scope open (RT_SCOPE_NOWHERE is the kernel's
	// wildcard), as `ip route del` does; protocol and metric pin it to ours.
	scope, routeType := uint8(unix.RT_SCOPE_NOWHERE), uint8(unix.RTN_UNSPEC)
	if op.paths != nil {
		typ, flags = unix.RTM_NEWROUTE, flags|unix.NLM_F_CREATE|unix.NLM_F_REPLACE
		scope, routeType = unix.RT_SCOPE_UNIVERSE, unix.RTN_UNICAST
	}
	b = binary.NativeEndian.AppendUint32(b, 0) // length, known at the end
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = binary.NativeEndian.AppendUint16(b, flags)
	b = binary.NativeEndian.AppendUint32(b, seq)
	b = binary.NativeEndian.AppendUint32(b, 0) // port id: the kernel's
	family := uint8(unix.AF_INET)
	if op.prefix.Addr().Is6() {
		family = unix.AF_INET6
	}
	// rtmsg: the table byte only holds numbers below 256; RTA_TABLE always
	// carries the full number.
	tableByte := uint8(unix.RT_TABLE_UNSPEC)
	if w.table < 256 {
		tableByte = uint8(w.table)
	}
	b = append(b, family, uint8(op.prefix.Bits()), 0, 0, tableByte, uint8(Protocol), scope, routeType, 0, 0, 0, 0)
	b = appendAttr(b, unix.RTA_DST, op.prefix.Addr().AsSlice())
	b = appendAttr(b, unix.RTA_TABLE, binary.NativeEndian.AppendUint32(nil, w.table))
	b = appendAttr(b, unix.RTA_PRIORITY, binary.NativeEndian.AppendUint32(nil, op.metric))
	b = appendPaths(b, op.prefix, op.paths)
	binary.NativeEndian.PutUint32(b[start:], uint32(len(b)-start))
	return b
}

// appendPaths writes a single path into the route itself, as `ip route`
// does, and several as RTA_MULTIPATH (one ECMP route).
func appendPaths(b []byte, prefix netip.Prefix, paths []path) []byte {
	switch len(paths) {
	case 0:
		return b
	case 1:
		b = appendGateway(b, prefix, paths[0].addr)
		if paths[0].ifindex != 0 {
			b = appendAttr(b, unix.RTA_OIF, binary.NativeEndian.AppendUint32(nil, uint32(paths[0].ifindex)))
		}
		return b
	}
	attr := len(b)
	b = append(b, 0, 0, 0, 0) // rtattr header, known at the end
	for _, p := range paths {
		hop := len(b)
		// rtnexthop: length, flags, hops (weight-1), ifindex.
		b = append(b, 0, 0, 0, 0)
		b = binary.NativeEndian.AppendUint32(b, uint32(p.ifindex))
		b = appendGateway(b, prefix, p.addr)
		binary.NativeEndian.PutUint16(b[hop:], uint16(len(b)-hop))
	}
	binary.NativeEndian.PutUint16(b[attr:], uint16(len(b)-attr))
	binary.NativeEndian.PutUint16(b[attr+2:], unix.RTA_MULTIPATH)
	return b
}

// appendGateway writes a next hop address; an IPv6 one of an IPv4 route
// (RFC 8950) is RTA_VIA, as FRR installs it.
func appendGateway(b []byte, prefix netip.Prefix, addr netip.Addr) []byte {
	if prefix.Addr().Is4() && addr.Is6() {
		via := binary.NativeEndian.AppendUint16(nil, unix.AF_INET6)
		return appendAttr(b, unix.RTA_VIA, append(via, addr.AsSlice()...))
	}
	return appendAttr(b, unix.RTA_GATEWAY, addr.AsSlice())
}

// appendAttr appends one rtattr, padded to the alignment netlink wants.
func appendAttr(b []byte, typ uint16, data []byte) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(unix.SizeofRtAttr+len(data)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, data...)
	for len(b)%unix.RTA_ALIGNTO != 0 {
		b = append(b, 0)
	}
	return b
}
