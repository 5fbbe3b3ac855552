package rtnl

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/ipvlan-bgp/ipvlan-bgp/internal/testnet"
)

func TestMain(m *testing.M) { testnet.Main(m) }

// getLink asks for the link with index, as ifinfomsg and an ack.
func getLink(c *Conn, index int32) []byte {
	req := AppendHeader(nil, unix.RTM_GETLINK, unix.NLM_F_ACK, c.Seq(1))
	req = append(req, unix.AF_UNSPEC, 0, 0, 0)
	req = binary.NativeEndian.AppendUint32(req, uint32(index))
	req = append(req, make([]byte, 8)...)
	Finish(req, 0)
	return req
}

// TestExchangeAndDump: an answered request, a refused one (the errno, and
// the kernel's words with it when it gave any), and a dump, on a Conn in
// another namespace.
func TestExchangeAndDump(t *testing.T) {
	ns := testnet.NewNS(t, "rtnl")
	ns.Exec(t, "ip", "link", "add", "a0", "type", "veth", "peer", "name", "b0")
	h, err := netns.GetFromName(ns.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	c, err := Open(h)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	answers, err := c.Exchange(getLink(c, 1), unix.RTM_NEWLINK)
	if err != nil || len(answers) != 1 {
		t.Fatalf("get lo: %d answers, %v; want one", len(answers), err)
	}
	if _, err := c.Exchange(getLink(c, 1<<30), unix.RTM_NEWLINK); !errors.Is(err, unix.ENODEV) {
		t.Fatalf("get a missing link: %v, want ENODEV", err)
	}
	req := AppendHeader(nil, unix.RTM_GETLINK, unix.NLM_F_DUMP, c.Seq(1))
	req = append(req, make([]byte, unix.SizeofIfInfomsg)...)
	Finish(req, 0)
	var names []string
	_, err = RetryDump(func() (struct{}, error) {
		names = names[:0]
		return struct{}{}, c.Dump(req, unix.RTM_NEWLINK, func(body []byte) error {
			if len(body) < unix.SizeofIfInfomsg {
				return nil
			}
			for typ, value := range Attrs(body[unix.SizeofIfInfomsg:]) {
				if typ == unix.IFLA_IFNAME {
					names = append(names, unix.ByteSliceToString(value))
				}
			}
			return nil
		})
	})
	if err != nil || len(names) != 3 {
		t.Fatalf("dumped links %v, %v; want lo, a0 and b0 of the namespace", names, err)
	}
	// The first error of the callback is the dump's, the callback is not
	// called again, and the socket answers the next request.
	stop := errors.New("stop")
	calls := 0
	req = AppendHeader(req[:0], unix.RTM_GETLINK, unix.NLM_F_DUMP, c.Seq(1))
	req = append(req, make([]byte, unix.SizeofIfInfomsg)...)
	Finish(req, 0)
	if err := c.Dump(req, unix.RTM_NEWLINK, func([]byte) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("a dump whose callback fails: %v after %d calls, want stop after 1", err, calls)
	}
	if answers, err := c.Exchange(getLink(c, 1), unix.RTM_NEWLINK); err != nil || len(answers) != 1 {
		t.Fatalf("get lo after the failed dump: %d answers, %v; want one", len(answers), err)
	}
}

func TestAckError(t *testing.T) {
	ack := func(errno int32, flags uint16, tail []byte) (unix.NlMsghdr, []byte) {
		body := binary.NativeEndian.AppendUint32(nil, uint32(errno))
		body = AppendHeader(body, unix.RTM_NEWROUTE, 0, 1)
		Finish(body, 4)
		return unix.NlMsghdr{Type: unix.NLMSG_ERROR, Flags: flags}, append(body, tail...)
	}
	if err := AckError(ack(0, 0, nil)); err != nil {
		t.Errorf("errno 0: %v, want nil", err)
	}
	words := AppendAttr(nil, unix.NLMSGERR_ATTR_MSG, []byte("Nexthop has invalid gateway\x00"))
	err := AckError(ack(-int32(unix.ENETUNREACH), unix.NLM_F_ACK_TLVS|unix.NLM_F_CAPPED, words))
	if !errors.Is(err, unix.ENETUNREACH) || err.Error() != "network is unreachable: Nexthop has invalid gateway" {
		t.Errorf("extended ack: %v", err)
	}
	if err := AckError(unix.NlMsghdr{}, []byte{1}); err == nil {
		t.Error("a short answer is no error")
	}
}

// FuzzParse: whatever comes in, the iterators stay inside their bytes and
// CheckAttrs refuses exactly what Attrs stops at early.
func FuzzParse(f *testing.F) {
	f.Add(AppendUint32Attr(AppendAttr(nil, 1, []byte("ab")), 2, 7))
	f.Add([]byte("0000\x05\x00000"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for m := range Messages(b) {
			if int(m.Header.Len) != unix.SizeofNlMsghdr+len(m.Body) {
				t.Fatalf("body of %d bytes under a header of %d", len(m.Body), m.Header.Len)
			}
		}
		read := 0
		for _, value := range Attrs(b) {
			read += RtaAlign(unix.SizeofRtAttr + len(value))
		}
		if complete := read > len(b)-unix.SizeofRtAttr; complete != (CheckAttrs(b) == nil) {
			t.Fatalf("Attrs read %d of %d bytes; CheckAttrs says %v", read, len(b), CheckAttrs(b))
		}
	})
}
