// Package rtnl is the plugin's own rtnetlink: what driver, fib and bgp need
// beyond the netlink library's calls, in one place. A Conn is a route
// socket of its own (extended acks on it, never a process-wide switch),
// with a request/answer exchange and dumps; RetryDump reruns a dump the
// kernel interrupted, for both a Conn's dumps and the library's; Messages
// and Attrs iterate over what the kernel sends, checking every length; the
// Append functions build requests.
//
// Each package that uses it keeps its netlink work in one file that says
// so: driver/links.go, fib/netlink.go, bgp/routerid.go.
package rtnl

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// DumpAttempts bounds the runs of a dump the kernel marked as interrupted
// (what it lists changed while it was read). Under a steady stream of
// changes a few are enough; past that the caller's next periodic read tries
// again.
const DumpAttempts = 5

// ErrDumpInterrupted is the netlink library's error for an interrupted
// dump, which a Conn's dumps return too, so RetryDump serves both.
var ErrDumpInterrupted = netlink.ErrDumpInterrupted

// RetryDump runs dump again, up to DumpAttempts in all, while it reports an
// interrupted dump.
func RetryDump[T any](dump func() (T, error)) (T, error) {
	var (
		result T
		err    error
	)
	for range DumpAttempts {
		result, err = dump()
		if !errors.Is(err, ErrDumpInterrupted) {
			break
		}
	}
	return result, err
}

// AnswerWait bounds the wait for an answer the kernel should already have
// queued: a Conn's receive timeout.
const AnswerWait = 2 * time.Second

// Conn is a route netlink socket of its own: bound, with extended acks
// (the kernel's reason with an error: "Nexthop has invalid gateway") and
// capped acks (an error does not echo the whole request back), and a
// receive timeout of AnswerWait. It is not safe for concurrent use.
type Conn struct {
	fd   int
	seq  uint32
	rbuf []byte
}

// receiveBuffer takes a whole datagram: the kernel fills a dump's to about
// a page or 32 KiB.
const receiveBuffer = 64 << 10

// Open opens a Conn in the namespace ns; 0 or netns.None() is the current
// one.
func Open(ns netns.NsHandle) (*Conn, error) {
	fd, err := socketIn(ns)
	if err != nil {
		return nil, fmt.Errorf("open netlink route socket: %w", err)
	}
	if err := setup(fd); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &Conn{fd: fd, rbuf: make([]byte, receiveBuffer)}, nil
}

// socketIn opens the socket in ns from a thread of its own, which enters
// ns and comes back; a thread that cannot come back is left locked, so the
// runtime ends it with its goroutine.
func socketIn(ns netns.NsHandle) (int, error) {
	open := func() (int, error) {
		return unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	}
	if ns == 0 || ns == netns.None() {
		return open()
	}
	type result struct {
		fd  int
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		home, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{-1, fmt.Errorf("read the current network namespace: %w", err)}
			return
		}
		defer home.Close()
		if err := netns.Set(ns); err != nil {
			runtime.UnlockOSThread()
			done <- result{-1, fmt.Errorf("enter network namespace: %w", err)}
			return
		}
		fd, err := open()
		if netns.Set(home) == nil {
			runtime.UnlockOSThread()
		}
		done <- result{fd, err}
	}()
	r := <-done
	return r.fd, r.err
}

func setup(fd int) error {
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("bind netlink route socket: %w", err)
	}
	for _, opt := range []int{unix.NETLINK_EXT_ACK, unix.NETLINK_CAP_ACK} {
		if err := unix.SetsockoptInt(fd, unix.SOL_NETLINK, opt, 1); err != nil {
			return fmt.Errorf("set netlink socket option %d: %w", opt, err)
		}
	}
	tv := unix.NsecToTimeval(AnswerWait.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fmt.Errorf("set netlink receive timeout: %w", err)
	}
	return nil
}

// Close closes the socket.
func (c *Conn) Close() { unix.Close(c.fd) }

// SetBuffers asks for send and receive buffers of the given sizes: past
// net.core.[rw]mem_max only with CAP_NET_ADMIN, which writing routes needs
// anyway; without it the kernel's caps apply.
func (c *Conn) SetBuffers(send, receive int) {
	for _, opt := range [][3]int{{unix.SO_SNDBUFFORCE, unix.SO_SNDBUF, send}, {unix.SO_RCVBUFFORCE, unix.SO_RCVBUF, receive}} {
		if err := unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, opt[0], opt[2]); err != nil {
			_ = unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, opt[1], opt[2])
		}
	}
}

// SetStrictCheck asks the kernel to filter dumps by what the request names
// (a route dump's table and protocol; Linux 4.20 on). Older kernels send
// everything, so a reader filters anyway.
func (c *Conn) SetStrictCheck() {
	_ = unix.SetsockoptInt(c.fd, unix.SOL_NETLINK, unix.NETLINK_GET_STRICT_CHK, 1)
}

// Seq takes n sequence numbers for the caller's messages and returns the
// first.
func (c *Conn) Seq(n int) uint32 {
	first := c.seq + 1
	c.seq += uint32(n)
	return first
}

// Send hands one datagram of messages to the kernel, which handles every
// message in it before the call returns.
func (c *Conn) Send(b []byte) error {
	for {
		err := unix.Sendto(c.fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		if !errors.Is(err, unix.EINTR) { // EINTR: the Go runtime's preemption signal
			return err
		}
	}
}

// Receive reads one datagram (flags: 0 or unix.MSG_DONTWAIT), valid until
// the next Receive. The kernel's EINTR is retried; EAGAIN means nothing
// came within AnswerWait (or, with MSG_DONTWAIT, nothing is queued).
func (c *Conn) Receive(flags int) ([]byte, error) {
	for {
		n, _, err := unix.Recvfrom(c.fd, c.rbuf, flags)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return c.rbuf[:n], nil
	}
}

// SetReceiveBuffer makes each Receive take up to size bytes: a datagram
// larger than the buffer is cut short.
func (c *Conn) SetReceiveBuffer(size int) { c.rbuf = make([]byte, size) }

// Exchange sends one request (built with AppendHeader, its sequence number
// from Seq, asking for an acknowledgement) and returns the bodies of the
// answers of type want (copies: a caller may keep them). The kernel's
// refusal is the error, with its reason when it gave one.
func (c *Conn) Exchange(req []byte, want uint16) ([][]byte, error) {
	seq := binary.NativeEndian.Uint32(req[8:])
	if err := c.Send(req); err != nil {
		return nil, fmt.Errorf("send to the kernel: %w", err)
	}
	var answers [][]byte
	for {
		b, err := c.Receive(0)
		if err != nil {
			return nil, receiveError(err)
		}
		for m := range Messages(b) {
			if m.Header.Seq != seq {
				continue // the tail of an abandoned exchange
			}
			switch m.Header.Type {
			case unix.NLMSG_ERROR:
				return answers, AckError(m.Header, m.Body)
			case unix.NLMSG_DONE:
				return answers, nil
			case want:
				answers = append(answers, bytes.Clone(m.Body))
			}
		}
	}
}

// Dump sends one dump request (built with AppendHeader, its sequence
// number from Seq) and calls f with the body of every answer of type want
// as it streams in: body valid only during the call. The first error f
// returns ends the calls to f, and is the dump's error once the dump has
// been read to its end. An interrupted dump is ErrDumpInterrupted: run it
// again (RetryDump).
func (c *Conn) Dump(req []byte, want uint16, f func(body []byte) error) error {
	seq := binary.NativeEndian.Uint32(req[8:])
	if err := c.Send(req); err != nil {
		return fmt.Errorf("ask for the dump: %w", err)
	}
	interrupted := false
	var failed error
	for {
		b, err := c.Receive(0)
		if err != nil {
			return fmt.Errorf("read the dump: %w", receiveError(err))
		}
		for m := range Messages(b) {
			h := m.Header
			if h.Seq != seq {
				continue // the tail of an abandoned dump
			}
			interrupted = interrupted || h.Flags&unix.NLM_F_DUMP_INTR != 0
			switch h.Type {
			case unix.NLMSG_DONE:
				if interrupted {
					return ErrDumpInterrupted
				}
				return failed
			case unix.NLMSG_ERROR:
				if err := AckError(h, m.Body); err != nil {
					return fmt.Errorf("dump refused: %w", err)
				}
				return failed
			case want:
				if failed == nil {
					failed = f(m.Body)
				}
			}
		}
	}
}

func receiveError(err error) error {
	if errors.Is(err, unix.EAGAIN) {
		return fmt.Errorf("no answer from the kernel within %s", AnswerWait)
	}
	return err
}

// Message is one netlink message of a datagram, its body after the header.
type Message struct {
	Header unix.NlMsghdr
	Body   []byte
}

// Messages yields the well-formed messages of a datagram and stops at the
// first one whose length does not fit.
func Messages(b []byte) func(yield func(Message) bool) {
	return func(yield func(Message) bool) {
		for len(b) >= unix.SizeofNlMsghdr {
			h := unix.NlMsghdr{
				Len: binary.NativeEndian.Uint32(b), Type: binary.NativeEndian.Uint16(b[4:]),
				Flags: binary.NativeEndian.Uint16(b[6:]), Seq: binary.NativeEndian.Uint32(b[8:]),
				Pid: binary.NativeEndian.Uint32(b[12:]),
			}
			if h.Len < unix.SizeofNlMsghdr || int(h.Len) > len(b) {
				return
			}
			if !yield(Message{Header: h, Body: b[unix.SizeofNlMsghdr:h.Len]}) {
				return
			}
			b = b[min(NlmAlign(int(h.Len)), len(b)):]
		}
	}
}

// Attrs yields the well-formed attributes (rtattr, or nlattr: the same
// layout) of b, stopping at the first whose length does not fit.
func Attrs(b []byte) func(yield func(uint16, []byte) bool) {
	return func(yield func(uint16, []byte) bool) {
		for len(b) >= unix.SizeofRtAttr {
			l, typ := int(binary.NativeEndian.Uint16(b)), binary.NativeEndian.Uint16(b[2:])
			if l < unix.SizeofRtAttr || l > len(b) {
				return
			}
			if !yield(typ, b[unix.SizeofRtAttr:l]) {
				return
			}
			b = b[min(RtaAlign(l), len(b)):]
		}
	}
}

// CheckAttrs reports an attribute of b whose length does not fit, where
// Attrs would stop silently; a last attribute without its padding is fine.
func CheckAttrs(b []byte) error {
	for len(b) >= unix.SizeofRtAttr {
		l := int(binary.NativeEndian.Uint16(b))
		if l < unix.SizeofRtAttr || l > len(b) {
			return fmt.Errorf("malformed netlink attribute of length %d in %d bytes", l, len(b))
		}
		b = b[min(RtaAlign(l), len(b)):]
	}
	return nil
}

// AckError decodes an NLMSG_ERROR answer's body: nil for errno 0 (an
// acknowledgement), else the errno, with the kernel's reason when the
// answer carries one (errors.Is finds the errno either way).
func AckError(h unix.NlMsghdr, body []byte) error {
	if len(body) < 4 {
		return errors.New("short answer from the kernel")
	}
	errno := syscall.Errno(-int32(binary.NativeEndian.Uint32(body)))
	if errno == 0 {
		return nil
	}
	if msg := extAckMessage(h, body[4:]); msg != "" {
		return fmt.Errorf("%w: %s", errno, msg)
	}
	return errno
}

// extAckMessage finds the kernel's text in an error answer: after the
// echoed request header come attributes, NLMSGERR_ATTR_MSG among them.
func extAckMessage(h unix.NlMsghdr, b []byte) string {
	if h.Flags&unix.NLM_F_ACK_TLVS == 0 || len(b) < unix.SizeofNlMsghdr {
		return ""
	}
	echoed := int(binary.NativeEndian.Uint32(b))
	if h.Flags&unix.NLM_F_CAPPED != 0 {
		echoed = unix.SizeofNlMsghdr
	}
	for typ, value := range Attrs(b[min(NlmAlign(echoed), len(b)):]) {
		if typ == unix.NLMSGERR_ATTR_MSG {
			return unix.ByteSliceToString(value)
		}
	}
	return ""
}

// AppendHeader appends a message header of type typ with flags
// (NLM_F_REQUEST is added) and seq; Finish sets its length once the body
// is in.
func AppendHeader(b []byte, typ, flags uint16, seq uint32) []byte {
	b = binary.NativeEndian.AppendUint32(b, 0) // length, known at the end
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = binary.NativeEndian.AppendUint16(b, flags|unix.NLM_F_REQUEST)
	b = binary.NativeEndian.AppendUint32(b, seq)
	return binary.NativeEndian.AppendUint32(b, 0) // port id: the kernel's
}

// Finish sets the length of the message that starts at start in b.
func Finish(b []byte, start int) {
	binary.NativeEndian.PutUint32(b[start:], uint32(len(b)-start))
}

// AppendAttr appends one attribute, padded to the alignment netlink wants.
func AppendAttr(b []byte, typ uint16, data []byte) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(unix.SizeofRtAttr+len(data)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, data...)
	for len(b)%unix.RTA_ALIGNTO != 0 {
		b = append(b, 0)
	}
	return b
}

// AppendUint32Attr appends an attribute holding one 32-bit number.
func AppendUint32Attr(b []byte, typ uint16, v uint32) []byte {
	return AppendAttr(b, typ, binary.NativeEndian.AppendUint32(nil, v))
}

// TableByte is a routing table as rtmsg's one-byte field holds it: tables
// from 256 on are RT_TABLE_UNSPEC there, and only RTA_TABLE names them.
func TableByte(table uint32) uint8 {
	if table < 256 {
		return uint8(table)
	}
	return unix.RT_TABLE_UNSPEC
}

// NlmAlign rounds n up to netlink's message alignment.
func NlmAlign(n int) int { return (n + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }

// RtaAlign rounds n up to an attribute's alignment.
func RtaAlign(n int) int { return (n + unix.RTA_ALIGNTO - 1) &^ (unix.RTA_ALIGNTO - 1) }
