// Package status is the plugin's view for people: a JSON document of its
// networks, endpoints, pools, BGP sessions and installed routes, served on
// a root-only unix socket, and the client side of `ipvlan-bgp status` that
// fetches it and prints it as tables or JSON.
//
// The document is built from the same read-only accessors the metrics use,
// and holds nothing secret: the speaker's Status carries no passwords.
package status

import (
	"context"
	"net/netip"
	"time"

	"github.com/ipvlan-bgp/ipvlan-bgp/internal/route"
	"github.com/ipvlan-bgp/ipvlan-bgp/metrics"
)

// Sources are the parts of the plugin the document is built from; a nil
// source leaves its section empty (BGP off: no BGP section).
type Sources = metrics.Sources

// Document is what the status socket answers.
type Document struct {
	Networks  []Network  `json:"networks"`
	Endpoints []Endpoint `json:"endpoints"`
	Pools     []Pool     `json:"pools"`
	Budget    Budget     `json:"route_budget"`
	BGP       *BGP       `json:"bgp,omitempty"`
	Routes    []Route    `json:"installed_routes"`
	// Errors names the sources that could not be read; their sections
	// are empty.
	Errors []string `json:"errors,omitempty"`
}

type Network struct {
	ID        string   `json:"id"`
	Parent    string   `json:"parent"`
	Mode      string   `json:"mode"`
	Announce  string   `json:"announce"`
	Subnets   []string `json:"subnets"`
	Announced []string `json:"announced"`
}

type Endpoint struct {
	ID        string   `json:"id"`
	Network   string   `json:"network"`
	Addresses []string `json:"addresses"`
	Interface string   `json:"interface"`
	Sandbox   string   `json:"sandbox,omitempty"`
	Joined    bool     `json:"joined"`
	Fallback  bool     `json:"budget_fallback,omitempty"`
	Announced []string `json:"announced"`
}

type Pool struct {
	Pool      string `json:"pool"`
	Range     string `json:"range"`
	Gateway   string `json:"gateway"` // "none" when the network asked for none
	Allocated uint64 `json:"allocated"`
	Free      uint64 `json:"free"`
}

type Budget struct {
	Limit    int    `json:"limit"`
	Used     int    `json:"used"`
	Fallback string `json:"fallback"`
	Refused  uint64 `json:"refused"`
	FellBack uint64 `json:"fell_back"`
}

type BGP struct {
	Running       bool   `json:"running"`
	ASN           uint32 `json:"asn"`
	RouterID      string `json:"router_id"`
	LocalPrefixes int    `json:"local_prefixes"`
	LastError     string `json:"last_error,omitempty"`
	Peers         []Peer `json:"peers"`
}

type Peer struct {
	Address       string `json:"address"`
	Interface     string `json:"interface,omitempty"`
	RemoteAS      uint32 `json:"remote_as"`
	State         string `json:"state"`
	UptimeSeconds int64  `json:"uptime_seconds"`
	Received      uint64 `json:"received"`
	Accepted      uint64 `json:"accepted"`
	Advertised    uint64 `json:"advertised"`
	// BFD is the state of the session's BFD (up, down, init, admin_down);
	// absent when BFD is off for it.
	BFD string `json:"bfd,omitempty"`
}

type Route struct {
	Prefix   string   `json:"prefix"`
	Nexthops []string `json:"nexthops"`
}

// readTimeout bounds building one document (the BGP peer list).
const readTimeout = 5 * time.Second

// Build reads every source into a document.
func Build(ctx context.Context, src Sources) Document {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	doc := Document{Networks: []Network{}, Endpoints: []Endpoint{}, Pools: []Pool{}, Routes: []Route{}}
	if src.Driver != nil {
		doc.addDriver(src.Driver)
	}
	if src.IPAM != nil {
		doc.addPools(ctx, src.IPAM)
	}
	if src.Speaker != nil {
		doc.addBGP(ctx, src.Speaker)
	}
	if src.Kernel != nil {
		for _, r := range src.Kernel.Routes() {
			nexthops := make([]string, len(r.Nexthops))
			for i, nh := range r.Nexthops {
				nexthops[i] = nh.Addr.String()
				if nh.Link != "" {
					nexthops[i] += " dev " + nh.Link
				}
			}
			doc.Routes = append(doc.Routes, Route{Prefix: r.Prefix.String(), Nexthops: nexthops})
		}
	}
	return doc
}

func (doc *Document) addDriver(d metrics.Driver) {
	for _, n := range d.Networks() {
		doc.Networks = append(doc.Networks, Network{
			ID: n.ID, Parent: n.Parent, Mode: n.Mode, Announce: n.Announce,
			Subnets: prefixStrings(n.Pools), Announced: advertStrings(n.Announced),
		})
	}
	for _, ep := range d.Endpoints() {
		doc.Endpoints = append(doc.Endpoints, Endpoint{
			ID: ep.ID, Network: ep.NetworkID, Addresses: prefixStrings(ep.Addresses), Interface: ep.Interface,
			Sandbox: ep.Sandbox, Joined: ep.Joined, Fallback: ep.Fallback, Announced: advertStrings(ep.Announced),
		})
	}
	b := d.RouteBudget()
	doc.Budget = Budget{Limit: b.Limit, Used: b.Used, Fallback: string(b.Fallback), Refused: b.Refused, FellBack: b.FellBack}
}

func (doc *Document) addPools(ctx context.Context, p metrics.Pools) {
	pools, err := p.Pools(ctx)
	if err != nil {
		doc.Errors = append(doc.Errors, "ipam: "+err.Error())
	}
	for _, p := range pools {
		doc.Pools = append(doc.Pools, Pool{
			Pool: p.Pool.String(), Range: p.Range.String(), Gateway: orNone(p.Gateway), Allocated: p.Allocated, Free: p.Free,
		})
	}
}

func (doc *Document) addBGP(ctx context.Context, s metrics.Speaker) {
	st, err := s.Status(ctx)
	if err != nil {
		doc.Errors = append(doc.Errors, "bgp: "+err.Error())
	}
	doc.BGP = &BGP{Running: st.Running, ASN: st.ASN, RouterID: st.RouterID, LocalPrefixes: st.Announced, LastError: st.LastError, Peers: []Peer{}}
	for _, p := range st.Peers {
		doc.BGP.Peers = append(doc.BGP.Peers, Peer{
			Address: p.Address, Interface: p.Interface, RemoteAS: p.RemoteAS, State: p.State,
			UptimeSeconds: int64(p.Uptime.Seconds()), Received: p.Received, Accepted: p.Accepted, Advertised: p.Advertised, BFD: p.BFD,
		})
	}
}

func prefixStrings(prefixes []netip.Prefix) []string {
	out := make([]string, len(prefixes))
	for i, p := range prefixes {
		out[i] = p.String()
	}
	return out
}

func advertStrings(adverts []route.Advert) []string {
	out := make([]string, len(adverts))
	for i, a := range adverts {
		out[i] = a.Prefix.String()
	}
	return out
}

// orNone shows an address, or "none" for the zero one.
func orNone(a netip.Addr) string {
	if !a.IsValid() {
		return "none"
	}
	return a.String()
}
