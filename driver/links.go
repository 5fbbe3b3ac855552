package driver

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/ipvlan-bgp/ipvlan-bgp/internal/rtnl"
)

// All netlink work of the driver is in this file: the links it creates and
// deletes, and the reads of links in containers' namespaces for the traffic
// counters (traffic.go). What any netlink user needs is in internal/rtnl.

const (
	// childPrefix starts the host-side name of every ipvlan link the plugin
	// creates, so that Reconcile can tell its own leftovers from anyone
	// else's links. Docker renames the link when it moves it into the
	// container, so the name only shows while the link is in the host.
	childPrefix = "ipb-"
	// dummyPrefix starts the name of an internal network's dummy parent.
	dummyPrefix = "ipbd-"
	// vlanPrefix starts the name a VLAN parent is created under before it
	// is marked as the plugin's and renamed to NIC.VID: a crash in between
	// leaves a link Reconcile knows by its name.
	vlanPrefix = "ipbv-"
	// ownerAlias is written into IFLA_IFALIAS of every parent the plugin
	// creates (VLAN and dummy), so that a parent left behind by a crash is
	// recognised as the plugin's even though its name (eth0.100) is not.
	ownerAlias = "ipvlan-bgp"
	// ifNameMax is IFNAMSIZ without the terminating NUL.
	ifNameMax = 15
)

func init() {
	// Ask the kernel for its extended error messages ("mtu greater than
	// device maximum"), which then reach the docker CLI. This applies to
	// requests on per-call sockets, which is what the driver uses when the
	// plugin passes no handle. It is the netlink library's process-wide
	// switch: the library has no per-socket one, and the other packages'
	// requests that need the kernel's words go through internal/rtnl,
	// which asks on its own sockets. Moving the link writes below to rtnl
	// as well would retire it (issue 12).
	nl.EnableErrorMessageReporting = true
}

// childName is the host-side name of an endpoint's ipvlan link.
func childName(endpointID string) string {
	return childPrefix + endpointID[:ifNameMax-len(childPrefix)]
}

// dummyName is the name of an internal network's dummy parent.
func dummyName(networkID string) string {
	return dummyPrefix + networkID[:ifNameMax-len(dummyPrefix)]
}

var kernelModes = map[ipvlanMode]netlink.IPVlanMode{
	modeL2: netlink.IPVLAN_MODE_L2, modeL3: netlink.IPVLAN_MODE_L3, modeL3S: netlink.IPVLAN_MODE_L3S,
}

var kernelFlags = map[ipvlanFlag]netlink.IPVlanFlag{
	flagBridge: netlink.IPVLAN_FLAG_BRIDGE, flagPrivate: netlink.IPVLAN_FLAG_PRIVATE, flagVEPA: netlink.IPVLAN_FLAG_VEPA,
}

// links is the driver's one door to netlink.
type links struct {
	h *netlink.Handle
}

// newLinks uses h, or the current namespace when h is nil. The zero Handle
// opens a socket per request, which is what carries extended acks.
func newLinks(h *netlink.Handle) *links {
	if h == nil {
		h = &netlink.Handle{}
	}
	return &links{h: h}
}

// lookup returns the link called name, or nil when there is none.
func (l *links) lookup(name string) (netlink.Link, error) {
	link, err := rtnl.RetryDump(func() (netlink.Link, error) { return l.h.LinkByName(name) })
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up link %s: %w", name, err)
	}
	return link, nil
}

// inHost reports whether the link called name is in the host namespace.
func (l *links) inHost(name string) (bool, error) {
	link, err := l.lookup(name)
	return link != nil, err
}

// mtu is the MTU of the link called name.
func (l *links) mtu(name string) (int, error) {
	link, err := l.lookup(name)
	if err != nil {
		return 0, err
	}
	if link == nil {
		return 0, fmt.Errorf("link %s not found", name)
	}
	return link.Attrs().MTU, nil
}

// createChild creates an endpoint's ipvlan link on parent and returns its
// index.
func (l *links) createChild(name, parent string, cfg networkConfig) (int, error) {
	p, err := l.lookup(parent)
	if err != nil {
		return 0, err
	}
	if p == nil {
		return 0, fmt.Errorf("create ipvlan link %s: parent %s not found", name, parent)
	}
	link := &netlink.IPVlan{
		LinkAttrs: netlink.LinkAttrs{Name: name, ParentIndex: p.Attrs().Index, MTU: cfg.MTU},
		Mode:      kernelModes[cfg.Mode],
		Flag:      kernelFlags[cfg.Flag],
	}
	if err := l.h.LinkAdd(link); err != nil {
		return 0, fmt.Errorf("create ipvlan link %s on %s: %w", name, parent, err)
	}
	// LinkAdd looks the new link up by name to fill in its index.
	return link.Attrs().Index, nil
}

// remove deletes the link called name; a link that is not there (deleted, or
// moved into a container) is not an error, so repeated calls succeed.
func (l *links) remove(name string) error {
	link, err := l.lookup(name)
	if err != nil || link == nil {
		return err
	}
	if err := l.h.LinkDel(link); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete link %s: %w", name, err)
	}
	return nil
}

// resolveParent finds the parent link of a network, creating a VLAN or dummy
// parent when it is missing. created says whether this call made it, for the
// caller to undo.
func (l *links) resolveParent(networkID string, cfg networkConfig) (name string, owned parentKind, created bool, err error) {
	name, kind := parentOf(networkID, cfg)
	link, err := l.lookup(name)
	if err != nil {
		return "", "", false, err
	}
	if link != nil {
		if kind != parentExisting && link.Attrs().Alias == ownerAlias {
			return name, kind, false, nil
		}
		return name, parentExisting, false, nil
	}
	if kind == parentExisting {
		return "", "", false, optionErr(optParent, cfg.Parent, "no such network interface")
	}
	if err := l.createParent(name, kind, cfg); err != nil {
		return "", "", false, err
	}
	return name, kind, true, nil
}

// parentOf names a network's parent and says what kind of parent the plugin
// would create if it were missing.
func parentOf(networkID string, cfg networkConfig) (string, parentKind) {
	switch {
	case cfg.Parent == "":
		return dummyName(networkID), parentDummy
	case cfg.VLAN != 0:
		return cfg.Parent, parentVLAN
	}
	return cfg.Parent, parentExisting
}

// createParent creates a VLAN or dummy parent, up and marked as the
// plugin's. The kernel ignores an alias given at creation, so the mark comes
// after: a dummy's name (ipbd-) already says whose it is, and a VLAN is made
// under a name that does (ipbv-) and renamed once marked. A crash at any
// point leaves a link Reconcile recognises.
func (l *links) createParent(name string, kind parentKind, cfg networkConfig) error {
	attrs := netlink.LinkAttrs{Name: name}
	var link netlink.Link
	switch kind {
	case parentVLAN:
		nic, err := l.lookup(cfg.ParentNIC)
		if err != nil {
			return err
		}
		if nic == nil {
			return optionErr(optParent, cfg.Parent, "no network interface %s to carry VLAN %d", cfg.ParentNIC, cfg.VLAN)
		}
		attrs.Name = fmt.Sprintf("%s%010x", vlanPrefix, rand.Uint64()&0xffffffffff)
		attrs.ParentIndex = nic.Attrs().Index
		link = &netlink.Vlan{LinkAttrs: attrs, VlanId: cfg.VLAN}
	case parentDummy:
		// A dummy has no MTU ceiling of its own; raising it lets the
		// network's MTU through to the children.
		attrs.MTU = max(cfg.MTU, 1500)
		link = &netlink.Dummy{LinkAttrs: attrs}
	default:
		return fmt.Errorf("create parent %s: the plugin does not create %q parents", name, kind)
	}
	if err := l.h.LinkAdd(link); err != nil {
		return fmt.Errorf("create %s parent %s: %w", kind, name, err)
	}
	current := attrs.Name // the name to delete it by if a step fails
	err := l.h.LinkSetAlias(link, ownerAlias)
	if err == nil && current != name {
		if err = l.h.LinkSetName(link, name); err == nil {
			current = name
		}
	}
	if err == nil {
		err = l.h.LinkSetUp(link)
	}
	if err != nil {
		err = fmt.Errorf("set up %s parent %s: %w", kind, name, err)
		return errors.Join(err, l.remove(current))
	}
	return nil
}

// ensureOwnedParent recreates a plugin-owned parent that went missing (a
// reboot, or someone deleted it), and brings one left down back up.
func (l *links) ensureOwnedParent(rec networkRecord) (created bool, err error) {
	link, err := l.lookup(rec.Parent)
	if err != nil {
		return false, err
	}
	if link == nil {
		return true, l.createParent(rec.Parent, rec.ParentOwned, rec.Config)
	}
	if link.Attrs().Flags&net.FlagUp == 0 {
		if err := l.h.LinkSetUp(link); err != nil {
			return false, fmt.Errorf("bring up parent %s: %w", rec.Parent, err)
		}
	}
	return false, nil
}

// list returns the names of the links that match keep.
func (l *links) list(keep func(netlink.Link) bool) ([]string, error) {
	all, err := rtnl.RetryDump(l.h.LinkList)
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	var names []string
	for _, link := range all {
		if keep(link) {
			names = append(names, link.Attrs().Name)
		}
	}
	return names, nil
}

// ownedChildren lists the plugin's ipvlan links left in the host namespace.
func (l *links) ownedChildren() ([]string, error) {
	return l.list(func(link netlink.Link) bool {
		return link.Type() == "ipvlan" && strings.HasPrefix(link.Attrs().Name, childPrefix)
	})
}

// ownedParents lists the VLAN and dummy parents the plugin created: marked,
// or named as only the plugin names them.
func (l *links) ownedParents() ([]string, error) {
	return l.list(func(link netlink.Link) bool {
		name := link.Attrs().Name
		return link.Attrs().Alias == ownerAlias ||
			(link.Type() == "dummy" && strings.HasPrefix(name, dummyPrefix)) ||
			(link.Type() == "vlan" && strings.HasPrefix(name, vlanPrefix))
	})
}

// idProbeGap is how many unused IDs in a row end the search past the
// kernel's list; see netnsIDs.
const idProbeGap = 256

// netnsIDs lists the IDs this namespace has given other namespaces. The
// kernel's dump of them ends after one message buffer (134 IDs on Linux
// 6.18, with 250 containers), so the IDs past the last one it lists are
// asked for one by one until idProbeGap in a row are unused: the kernel
// hands IDs out lowest first, so past the list they are dense but for
// namespaces gone since.
func netnsIDs(sock *rtnl.Conn) ([]int32, error) {
	req := rtnl.AppendHeader(nil, unix.RTM_GETNSID, unix.NLM_F_DUMP, sock.Seq(1))
	req = append(req, unix.AF_UNSPEC, 0, 0, 0) // rtgenmsg, padded
	rtnl.Finish(req, 0)
	var ids []int32
	err := sock.Dump(req, unix.RTM_NEWNSID, func(body []byte) error {
		more, err := parseNetnsIDs([][]byte{body})
		ids = append(ids, more...)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list network namespace IDs: %w", err)
	}
	next := int32(0)
	if len(ids) > 0 {
		next = slices.Max(ids) + 1
	}
	for unused := 0; unused < idProbeGap; next++ {
		used, err := netnsIDUsed(sock, next)
		if err != nil {
			return nil, fmt.Errorf("list network namespace IDs: %w", err)
		}
		if used {
			ids, unused = append(ids, next), 0
		} else {
			unused++
		}
	}
	return ids, nil
}

// netnsIDUsed asks whether id names a namespace.
func netnsIDUsed(sock *rtnl.Conn, id int32) (bool, error) {
	req := rtnl.AppendHeader(nil, unix.RTM_GETNSID, unix.NLM_F_ACK, sock.Seq(1))
	req = append(req, unix.AF_UNSPEC, 0, 0, 0) // rtgenmsg, padded
	req = rtnl.AppendUint32Attr(req, unix.NETNSA_NSID, uint32(id))
	rtnl.Finish(req, 0)
	_, err := sock.Exchange(req, unix.RTM_NEWNSID)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.EINVAL):
		return false, nil
	}
	return false, fmt.Errorf("ask for namespace ID %d: %w", id, err)
}

// parseNetnsIDs reads the IDs out of RTM_NEWNSID messages: a struct
// rtgenmsg padded to 4 bytes, then attributes. An attribute longer than
// its message is an error.
func parseNetnsIDs(msgs [][]byte) ([]int32, error) {
	var ids []int32
	for _, msg := range msgs {
		if len(msg) < unix.NLMSG_ALIGNTO {
			continue
		}
		attrs := msg[unix.NLMSG_ALIGNTO:]
		if err := rtnl.CheckAttrs(attrs); err != nil {
			return nil, err
		}
		for typ, value := range rtnl.Attrs(attrs) {
			if typ == unix.NETNSA_NSID && len(value) >= 4 {
				if id := int32(binary.NativeEndian.Uint32(value)); id >= 0 {
					ids = append(ids, id)
				}
			}
		}
	}
	return ids, nil
}

// linkInNetns returns the link with index in the namespace with ID nsid, or
// nil when there is none.
func linkInNetns(sock *rtnl.Conn, nsid int32, index int) (netlink.Link, error) {
	req := rtnl.AppendHeader(nil, unix.RTM_GETLINK, unix.NLM_F_ACK, sock.Seq(1))
	req = appendIfInfo(req, index)
	req = rtnl.AppendUint32Attr(req, unix.IFLA_TARGET_NETNSID, uint32(nsid))
	rtnl.Finish(req, 0)
	answers, err := sock.Exchange(req, unix.RTM_NEWLINK)
	switch {
	// ENODEV: no such link there; EINVAL: the namespace went away since
	// the ID was listed.
	case errors.Is(err, unix.ENODEV), errors.Is(err, unix.EINVAL):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("get link %d in namespace ID %d: %w", index, nsid, err)
	case len(answers) == 0:
		return nil, nil
	}
	return netlink.LinkDeserialize(nil, answers[0])
}

// linksInNetns lists the links of the namespace with ID nsid, one dump:
// each link's index and its parent's index (0 for none), as the namespace
// of the socket numbers it.
func linksInNetns(sock *rtnl.Conn, nsid int32) (map[int]int, error) {
	req := rtnl.AppendHeader(nil, unix.RTM_GETLINK, unix.NLM_F_DUMP, sock.Seq(1))
	req = appendIfInfo(req, 0)
	req = rtnl.AppendUint32Attr(req, unix.IFLA_TARGET_NETNSID, uint32(nsid))
	rtnl.Finish(req, 0)
	parents, err := rtnl.RetryDump(func() (map[int]int, error) {
		parents := map[int]int{}
		err := sock.Dump(req, unix.RTM_NEWLINK, func(body []byte) error {
			link, err := netlink.LinkDeserialize(nil, body)
			if err != nil {
				return err
			}
			parents[link.Attrs().Index] = link.Attrs().ParentIndex
			return nil
		})
		return parents, err
	})
	// EINVAL: the namespace went away since the ID was listed.
	if errors.Is(err, unix.EINVAL) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list links in namespace ID %d: %w", nsid, err)
	}
	return parents, nil
}

// appendIfInfo appends a struct ifinfomsg naming the link with index.
func appendIfInfo(b []byte, index int) []byte {
	b = append(b, unix.AF_UNSPEC, 0, 0, 0) // family, padding, type
	b = binary.NativeEndian.AppendUint32(b, uint32(int32(index)))
	b = binary.NativeEndian.AppendUint32(b, 0)    // flags
	return binary.NativeEndian.AppendUint32(b, 0) // change
}
