package fib

// All of fib's netlink work is in this file: reading links, addresses and
// routes, and writing routes in batches. What any netlink user needs (the
// sockets, dumps and their retry, message and attribute iterators) is in
// internal/rtnl.

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ipvlan-bgp/ipvlan-bgp/internal/rtnl"
)

// Requests go to the kernel in chunks: one sendmsg carries up to
// chunkBytes or chunkOps messages, well under the socket's send buffer
// (sendBuffer, or the kernel's default of about 200 KiB).
const (
	chunkBytes = 128 << 10
	chunkOps   = 1024
	sendBuffer = 1 << 20
	// receiveBuffer holds the answers to a chunk: refusals (each with the
	// kernel's reason) and the final acknowledgement.
	receiveBuffer = 4 << 20
)

// openRouteSocket opens a route socket in the current network namespace,
// set up for batches of requests and their answers.
func openRouteSocket() (*rtnl.Conn, error) {
	c, err := rtnl.Open(0)
	if err != nil {
		return nil, err
	}
	c.SetBuffers(sendBuffer, receiveBuffer)
	return c, nil
}

// routeLink reads the kernel's routing tables and links (writes go through
// batchWriter).
type routeLink struct {
	h      *netlink.Handle
	routes *routeDumper
}

func newRouteLink() (*routeLink, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open netlink route socket: %w", err)
	}
	routes, err := newRouteDumper()
	if err != nil {
		h.Close()
		return nil, err
	}
	return &routeLink{h: h, routes: routes}, nil
}

func (l *routeLink) close() {
	l.h.Close()
	l.routes.close()
}

// linkIndexes maps every interface name to its index, in one dump.
func (l *routeLink) linkIndexes() (map[string]int, error) {
	links, err := rtnl.RetryDump(l.h.LinkList)
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	byName := make(map[string]int, len(links))
	for _, link := range links {
		byName[link.Attrs().Name] = link.Attrs().Index
	}
	return byName, nil
}

// listAddrs reads every address of the host.
func listAddrs() ([]netlink.Addr, error) {
	return rtnl.RetryDump(func() ([]netlink.Addr, error) { return netlink.AddrList(nil, netlink.FAMILY_ALL) })
}

// subscribeAddrs sends the host's address changes to updates until done is
// closed; onErr hears why the subscription broke (updates is closed then).
func subscribeAddrs(updates chan<- netlink.AddrUpdate, done <-chan struct{}, onErr func(error)) error {
	return netlink.AddrSubscribeWithOptions(updates, done, netlink.AddrSubscribeOptions{ErrorCallback: onErr})
}

// routeDumper reads the kernel's routes on its own netlink socket and
// decodes them itself, into one reused buffer: a full table of 100,000
// routes read through the netlink library costs over 100 MB of short-lived
// allocations (a receive buffer per datagram, a netlink.Route per route),
// and the resync that reads it runs every 30 s.
type routeDumper struct {
	conn *rtnl.Conn
	req  []byte
}

func newRouteDumper() (*routeDumper, error) {
	conn, err := openRouteSocket()
	if err != nil {
		return nil, err
	}
	// The kernel filters the dump by table and protocol itself where it
	// can; kernelRoute's filter below still applies.
	conn.SetStrictCheck()
	return &routeDumper{conn: conn}, nil
}

func (d *routeDumper) close() { d.conn.Close() }

// kernelRoute is one route of a dump. paths is sorted by comparePath and
// only valid during the callback that receives it.
type kernelRoute struct {
	prefix netip.Prefix
	metric uint32
	paths  []path
}

// each calls f with every route of family in table with protocol, as the
// dump streams in. start is called before each attempt: an interrupted
// dump is read again from its beginning (see rtnl.RetryDump).
func (d *routeDumper) each(family int, table uint32, protocol uint8, start func(), f func(kernelRoute)) error {
	_, err := rtnl.RetryDump(func() (struct{}, error) {
		start()
		return struct{}{}, d.dump(family, table, protocol, f)
	})
	if err != nil {
		return fmt.Errorf("list routes of protocol %d in table %d: %w", protocol, table, err)
	}
	return nil
}

func (d *routeDumper) dump(family int, table uint32, protocol uint8, f func(kernelRoute)) error {
	// The request names table and protocol for the kernel's strict filter.
	d.req = rtnl.AppendHeader(d.req[:0], unix.RTM_GETROUTE, unix.NLM_F_DUMP, d.conn.Seq(1))
	d.req = append(d.req, uint8(family), 0, 0, 0, rtnl.TableByte(table), protocol, 0, 0, 0, 0, 0, 0)
	d.req = rtnl.AppendUint32Attr(d.req, unix.RTA_TABLE, table)
	rtnl.Finish(d.req, 0)
	var scratch []path
	return d.conn.Dump(d.req, unix.RTM_NEWROUTE, func(body []byte) error {
		if r, ok := decodeRoute(body, table, protocol, scratch[:0]); ok {
			f(r)
			scratch = r.paths
		}
		return nil
	})
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
	for typ, value := range rtnl.Attrs(b[unix.SizeofRtMsg:]) {
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

// rtnexthopLen is the size of an rtnexthop record's fixed part: length,
// flags, hops (weight-1), ifindex.
const rtnexthopLen = 8

// appendNexthops reads RTA_MULTIPATH: rtnexthop records, each followed by
// its own attributes.
func appendNexthops(paths []path, b []byte) []path {
	for len(b) >= rtnexthopLen {
		l := int(binary.NativeEndian.Uint16(b))
		if l < rtnexthopLen || l > len(b) {
			break
		}
		p := path{ifindex: int(binary.NativeEndian.Uint32(b[4:]))}
		for typ, value := range rtnl.Attrs(b[rtnexthopLen:l]) {
			if typ == unix.RTA_GATEWAY || typ == unix.RTA_VIA {
				p.addr = gatewayAddr(typ, value)
			}
		}
		paths = append(paths, p)
		b = b[min(rtnl.RtaAlign(l), len(b)):]
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

// routeOp is one change for the kernel: install prefix over paths, or
// delete our route to prefix at metric when paths is nil.
type routeOp struct {
	prefix netip.Prefix
	paths  []path
	metric uint32
}

// batchWriter writes routes on its own netlink socket, many messages per
// sendmsg, each with its own sequence number, so a refusal is matched to
// its route; extended acks make the kernel say why.
//
// Only a chunk's last message asks for an acknowledgement: the kernel
// answers the others only when it refuses them, and handles a chunk's
// messages in order, so once the last is answered every message without an
// answer went in. Reading one answer per route instead would cost a
// system call per route.
type batchWriter struct {
	conn  *rtnl.Conn
	table uint32
	req   []byte // the chunk being built
}

func newBatchWriter(table int) (*batchWriter, error) {
	conn, err := openRouteSocket()
	if err != nil {
		return nil, err
	}
	return &batchWriter{conn: conn, table: uint32(table)}, nil
}

func (w *batchWriter) close() { w.conn.Close() }

// write applies ops in order and returns each op's outcome: errs[i] is nil
// when ops[i] is in the kernel (or, for a delete, was already gone). Once
// ctx ends the ops not yet sent fail with its error.
func (w *batchWriter) write(ctx context.Context, ops []routeOp) []error {
	errs := make([]error, len(ops))
	for start := 0; start < len(ops); {
		if err := ctx.Err(); err != nil {
			for i := start; i < len(ops); i++ {
				errs[i] = err
			}
			break
		}
		first := w.conn.Seq(0)
		end := w.encodeChunk(ops, start, first)
		w.exchange(ops[start:end], errs[start:end])
		start = end
	}
	return errs
}

// encodeChunk puts ops[start:] into w.req until a chunk is full and
// returns where it stopped. The i-th message of the chunk has sequence
// number first+i; the last one asks for an acknowledgement.
func (w *batchWriter) encodeChunk(ops []routeOp, start int, first uint32) int {
	w.req = w.req[:0]
	last := 0
	end := start
	for end < len(ops) && end-start < chunkOps && len(w.req) < chunkBytes {
		last = len(w.req)
		w.req = w.appendRouteMsg(w.req, ops[end], first+uint32(end-start))
		end++
	}
	const flagsAt = 6 // nlmsghdr: length (4 bytes), type (2), flags (2)
	flags := binary.NativeEndian.Uint16(w.req[last+flagsAt:])
	binary.NativeEndian.PutUint16(w.req[last+flagsAt:], flags|unix.NLM_F_ACK)
	return end
}

// exchange sends one encoded chunk and collects the refusals.
func (w *batchWriter) exchange(ops []routeOp, errs []error) {
	first := w.conn.Seq(len(ops))
	if err := w.conn.Send(w.req); err != nil {
		for i := range errs {
			errs[i] = fmt.Errorf("send to the kernel: %w", err)
		}
		return
	}
	answered := make([]bool, len(ops))
	var lost error
	flags := 0
	for !answered[len(ops)-1] {
		b, err := w.conn.Receive(flags)
		switch {
		case errors.Is(err, unix.ENOBUFS):
			// Answers overflowed the socket: read what is left, without
			// waiting for those that were dropped.
			lost, flags = err, unix.MSG_DONTWAIT
			continue
		case err != nil:
			w.unanswered(errs, answered, cmp.Or(lost, err))
			return
		}
		w.readAnswers(b, first, ops, errs, answered)
	}
	if lost != nil {
		// A dropped answer may have been a refusal: nothing unanswered
		// is known to be in.
		w.unanswered(errs, answered, lost)
	}
}

// unanswered fails every op the kernel did not answer; a receive error
// (ENOBUFS: answers overflowed the socket) would otherwise hide them.
func (w *batchWriter) unanswered(errs []error, answered []bool, err error) {
	if errors.Is(err, unix.EAGAIN) {
		err = fmt.Errorf("no answer from the kernel within %s", rtnl.AnswerWait)
	}
	for i := range errs {
		if !answered[i] {
			errs[i] = fmt.Errorf("read the kernel's answer: %w", err)
		}
	}
}

// readAnswers matches the answers in one datagram to their ops by
// sequence number.
func (w *batchWriter) readAnswers(b []byte, first uint32, ops []routeOp, errs []error, answered []bool) {
	for msg := range rtnl.Messages(b) {
		i := int(msg.Header.Seq - first)
		if msg.Header.Type == unix.NLMSG_ERROR && i >= 0 && i < len(ops) && !answered[i] {
			answered[i] = true
			errs[i] = ackError(msg.Header, msg.Body, ops[i])
		}
	}
}

// ackError decodes an NLMSG_ERROR answer: errno 0 is success, and so is a
// delete of a route that is already gone.
func ackError(h unix.NlMsghdr, body []byte, op routeOp) error {
	err := rtnl.AckError(h, body)
	if op.paths == nil && (errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENOENT)) {
		return nil
	}
	return err
}

// appendRouteMsg appends op as one netlink message: RTM_NEWROUTE with
// replace semantics when it has paths, RTM_DELROUTE of our route otherwise.
func (w *batchWriter) appendRouteMsg(b []byte, op routeOp, seq uint32) []byte {
	start := len(b)
	typ, flags := uint16(unix.RTM_DELROUTE), uint16(unix.NLM_F_ACK)
	// A delete leaves type and scope open (RT_SCOPE_NOWHERE is the kernel's
	// wildcard), as `ip route del` does; protocol and metric pin it to ours.
	scope, routeType := uint8(unix.RT_SCOPE_NOWHERE), uint8(unix.RTN_UNSPEC)
	if op.paths != nil {
		typ, flags = unix.RTM_NEWROUTE, flags|unix.NLM_F_CREATE|unix.NLM_F_REPLACE
		scope, routeType = unix.RT_SCOPE_UNIVERSE, unix.RTN_UNICAST
	}
	b = rtnl.AppendHeader(b, typ, flags, seq)
	family := uint8(unix.AF_INET)
	if op.prefix.Addr().Is6() {
		family = unix.AF_INET6
	}
	// rtmsg: RTA_TABLE always carries the full table number.
	b = append(b, family, uint8(op.prefix.Bits()), 0, 0, rtnl.TableByte(w.table), uint8(Protocol), scope, routeType, 0, 0, 0, 0)
	b = rtnl.AppendAttr(b, unix.RTA_DST, op.prefix.Addr().AsSlice())
	b = rtnl.AppendUint32Attr(b, unix.RTA_TABLE, w.table)
	b = rtnl.AppendUint32Attr(b, unix.RTA_PRIORITY, op.metric)
	b = appendPaths(b, op.prefix, op.paths)
	rtnl.Finish(b, start)
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
			b = rtnl.AppendUint32Attr(b, unix.RTA_OIF, uint32(paths[0].ifindex))
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
		return rtnl.AppendAttr(b, unix.RTA_VIA, append(via, addr.AsSlice()...))
	}
	return rtnl.AppendAttr(b, unix.RTA_GATEWAY, addr.AsSlice())
}
