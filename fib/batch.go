package fib

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// routeOp is one change for the kernel: install prefix over paths, or
// delete our route to prefix at metric when paths is nil.
type routeOp struct {
	prefix netip.Prefix
	paths  []path
	metric uint32
}

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
	// answerWait bounds the wait for an answer the kernel should already
	// have queued; past it the routes are reported as unanswered.
	answerWait = 2 * time.Second
)

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
	fd    int
	table uint32
	seq   uint32
	req   []byte // the chunk being built
	rbuf  []byte // one received datagram
}

func newBatchWriter(table int) (*batchWriter, error) {
	fd, err := openRouteSocket()
	if err != nil {
		return nil, err
	}
	return &batchWriter{fd: fd, table: uint32(table), rbuf: make([]byte, 1<<16)}, nil
}

// openRouteSocket opens a netlink route socket in the current network
// namespace, set up for batches of requests and their answers.
func openRouteSocket() (int, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return -1, fmt.Errorf("open netlink route socket: %w", err)
	}
	if err := setupSocket(fd); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func setupSocket(fd int) error {
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("bind netlink route socket: %w", err)
	}
	// Extended acks carry the kernel's reason ("Nexthop has invalid
	// gateway"); capped acks do not echo the whole request back.
	for _, opt := range []int{unix.NETLINK_EXT_ACK, unix.NETLINK_CAP_ACK} {
		if err := unix.SetsockoptInt(fd, unix.SOL_NETLINK, opt, 1); err != nil {
			return fmt.Errorf("set netlink socket option %d: %w", opt, err)
		}
	}
	// Past net.core.[rw]mem_max only with CAP_NET_ADMIN, which writing
	// routes needs anyway; without it the kernel's caps apply: the default
	// send buffer still takes a chunk, and answers that overflow the
	// receive buffer are reported as unanswered.
	for _, opt := range [][3]int{{unix.SO_SNDBUFFORCE, unix.SO_SNDBUF, sendBuffer}, {unix.SO_RCVBUFFORCE, unix.SO_RCVBUF, receiveBuffer}} {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, opt[0], opt[2]); err != nil {
			_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, opt[1], opt[2])
		}
	}
	tv := unix.NsecToTimeval(answerWait.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fmt.Errorf("set netlink receive timeout: %w", err)
	}
	return nil
}

func (w *batchWriter) close() { unix.Close(w.fd) }

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
		end := w.encodeChunk(ops, start)
		w.exchange(ops[start:end], errs[start:end])
		start = end
	}
	return errs
}

// encodeChunk puts ops[start:] into w.req until a chunk is full and
// returns where it stopped. The i-th message of the chunk has sequence
// number w.seq+1+i; the last one asks for an acknowledgement.
func (w *batchWriter) encodeChunk(ops []routeOp, start int) int {
	w.req = w.req[:0]
	last := 0
	end := start
	for end < len(ops) && end-start < chunkOps && len(w.req) < chunkBytes {
		last = len(w.req)
		w.req = w.appendRouteMsg(w.req, ops[end], w.seq+1+uint32(end-start))
		end++
	}
	const flagsAt = 6 // nlmsghdr: length (4 bytes), type (2), flags (2)
	flags := binary.NativeEndian.Uint16(w.req[last+flagsAt:])
	binary.NativeEndian.PutUint16(w.req[last+flagsAt:], flags|unix.NLM_F_ACK)
	return end
}

// exchange sends one encoded chunk and collects the refusals.
func (w *batchWriter) exchange(ops []routeOp, errs []error) {
	first := w.seq + 1
	w.seq += uint32(len(ops))
	if err := w.send(); err != nil {
		for i := range errs {
			errs[i] = fmt.Errorf("send to the kernel: %w", err)
		}
		return
	}
	answered := make([]bool, len(ops))
	var lost error
	flags := 0
	for !answered[len(ops)-1] {
		n, _, err := unix.Recvfrom(w.fd, w.rbuf, flags)
		switch {
		case errors.Is(err, unix.EINTR): // the Go runtime's preemption signal
			continue
		case errors.Is(err, unix.ENOBUFS):
			// Answers overflowed the socket: read what is left, without
			// waiting for those that were dropped.
			lost, flags = err, unix.MSG_DONTWAIT
			continue
		case err != nil:
			w.unanswered(errs, answered, cmp.Or(lost, err))
			return
		}
		w.readAnswers(w.rbuf[:n], first, ops, errs, answered)
	}
	if lost != nil {
		// A dropped answer may have been a refusal: nothing unanswered
		// is known to be in.
		w.unanswered(errs, answered, lost)
	}
}

// send hands the chunk to the kernel, which handles every message in it
// before the call returns.
func (w *batchWriter) send() error { return sendToKernel(w.fd, w.req) }

// sendToKernel sends one datagram of netlink messages to the kernel.
func sendToKernel(fd int, b []byte) error {
	for {
		err := unix.Sendto(fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		if !errors.Is(err, unix.EINTR) { // EINTR: the Go runtime's preemption signal
			return err
		}
	}
}

// unanswered fails every op the kernel did not answer; a receive error
// (ENOBUFS: answers overflowed the socket) would otherwise hide them.
func (w *batchWriter) unanswered(errs []error, answered []bool, err error) {
	if errors.Is(err, unix.EAGAIN) {
		err = fmt.Errorf("no answer from the kernel within %s", answerWait)
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
	for msg := range netlinkMessages(b) {
		i := int(msg.header.Seq - first)
		if msg.header.Type == unix.NLMSG_ERROR && i >= 0 && i < len(ops) && !answered[i] {
			answered[i] = true
			errs[i] = ackError(msg.header, msg.body, ops[i])
		}
	}
}

// ackError decodes an NLMSG_ERROR answer: errno 0 is success, and so is a
// delete of a route that is already gone.
func ackError(h unix.NlMsghdr, body []byte, op routeOp) error {
	if len(body) < 4 {
		return errors.New("short answer from the kernel")
	}
	errno := syscall.Errno(-int32(binary.NativeEndian.Uint32(body)))
	if errno == 0 || (op.paths == nil && (errno == unix.ESRCH || errno == unix.ENOENT)) {
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
	for typ, value := range routeAttrs(b[min(nlmAlign(echoed), len(b)):]) {
		if typ == unix.NLMSGERR_ATTR_MSG {
			return unix.ByteSliceToString(value)
		}
	}
	return ""
}

func nlmAlign(n int) int { return (n + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }
func rtaAlign(n int) int { return (n + unix.RTA_ALIGNTO - 1) &^ (unix.RTA_ALIGNTO - 1) }
