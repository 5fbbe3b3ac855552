package driver

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"

	"github.com/ipvlan-bgp/ipvlan-bgp/internal/route"
	"github.com/ipvlan-bgp/ipvlan-bgp/store"
)

// Store buckets. Keys are Docker's network and endpoint IDs.
const (
	bucketNetworks  = "networks"
	bucketEndpoints = "endpoints"
)

// parentKind records whether the plugin created a network's parent link, and
// so must delete it with the last network on it and recreate it at start-up.
type parentKind string

const (
	parentExisting parentKind = ""      // the operator's NIC: never touched
	parentVLAN     parentKind = "vlan"  // NIC.VID created by the plugin
	parentDummy    parentKind = "dummy" // internal network's parent
)

// networkRecord is one network as stored and held in memory.
type networkRecord struct {
	ID     string        `json:"id"`
	Config networkConfig `json:"config"`
	Pools  []pool        `json:"pools"`
	// Parent is the link the children hang off: the NIC, NIC.VID or the
	// dummy.
	Parent      string     `json:"parent"`
	ParentOwned parentKind `json:"parentOwned,omitempty"`
}

func (n networkRecord) hasPool(prefix netip.Prefix) bool {
	return slices.ContainsFunc(n.Pools, func(p pool) bool { return p.Prefix == prefix })
}

// endpointRecord is one endpoint as stored and held in memory.
type endpointRecord struct {
	ID        string         `json:"id"`
	NetworkID string         `json:"networkID"`
	Addresses []netip.Prefix `json:"addresses"`
	Config    endpointConfig `json:"config"`
	// Joined is set once Join has created the link; the link is then either
	// in the host namespace (Docker has not moved it yet) or in a container.
	Joined bool `json:"joined,omitempty"`
	// Fallback marks an endpoint past the route budget whose network
	// announces its subnet instead of the endpoint's host routes.
	Fallback bool `json:"fallback,omitempty"`
	// Ifindex is the link's index when Join created it; the kernel keeps
	// it when Docker moves the link, which is how its counters are found
	// in the container (traffic.go).
	Ifindex int `json:"ifindex,omitempty"`
	// Sandbox is the base name of Docker's SandboxKey
	// (/var/run/docker/netns/NAME), what `docker inspect` shows as
	// .NetworkSettings.SandboxKey: the only trace of the container Docker
	// gives a network driver.
	Sandbox string `json:"sandbox,omitempty"`
}

// state is the in-memory copy of the store. Accessors lock and hand out
// copies, so no caller holds a pointer into the maps.
type state struct {
	mu        sync.Mutex
	networks  map[string]networkRecord
	endpoints map[string]endpointRecord
	// holders indexes endpoints by address: the IPAM driver asks for
	// every address it hands out or takes back.
	holders map[netip.Addr]string
}

func newState() *state {
	return &state{networks: map[string]networkRecord{}, endpoints: map[string]endpointRecord{}, holders: map[netip.Addr]string{}}
}

// holderOf is the endpoint that has addr.
func (s *state) holderOf(addr netip.Addr) (endpointRecord, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.endpoints[s.holders[addr]]
	return e, ok
}

func (s *state) network(id string) (networkRecord, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.networks[id]
	return n, ok
}

func (s *state) endpoint(id string) (endpointRecord, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.endpoints[id]
	return e, ok
}

func (s *state) allNetworks() []networkRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Collect(maps.Values(s.networks))
}

func (s *state) allEndpoints() []endpointRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Collect(maps.Values(s.endpoints))
}

// endpointsOf lists a network's endpoints.
func (s *state) endpointsOf(networkID string) []endpointRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []endpointRecord
	for _, e := range s.endpoints {
		if e.NetworkID == networkID {
			out = append(out, e)
		}
	}
	return out
}

func (s *state) putNetwork(n networkRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.networks[n.ID] = n
}

func (s *state) putEndpoint(e endpointRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.removeEndpointLocked(e.ID)
	s.endpoints[e.ID] = e
	for _, a := range e.Addresses {
		s.holders[a.Addr()] = e.ID
	}
}

// removeNetwork drops a network and its endpoints.
func (s *state) removeNetwork(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.networks, id)
	for epID, e := range s.endpoints {
		if e.NetworkID == id {
			s.removeEndpointLocked(epID)
		}
	}
}

func (s *state) removeEndpoint(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.removeEndpointLocked(id)
}

func (s *state) removeEndpointLocked(id string) {
	for _, a := range s.endpoints[id].Addresses {
		if s.holders[a.Addr()] == id {
			delete(s.holders, a.Addr())
		}
	}
	delete(s.endpoints, id)
}

// load reads every record from the store. A record that does not decode
// stops the load: starting with part of the state would delete the links of
// the endpoints it skipped.
func (s *state) load(db *store.DB) error {
	return db.View(func(tx *store.Tx) error {
		err := loadBucket(tx, bucketNetworks, func(n networkRecord) string { return n.ID }, s.networks)
		if err != nil {
			return err
		}
		err = loadBucket(tx, bucketEndpoints, func(e endpointRecord) string { return e.ID }, s.endpoints)
		for _, e := range s.endpoints {
			for _, a := range e.Addresses {
				s.holders[a.Addr()] = e.ID
			}
		}
		return err
	})
}

// loadBucket decodes every record of bucket into m, checking that each is
// filed under its own ID.
func loadBucket[T any](tx *store.Tx, bucket string, idOf func(T) string, m map[string]T) error {
	return tx.ForEach(bucket, func(key string, decode func(any) error) error {
		var rec T
		if err := decode(&rec); err != nil {
			return err
		}
		if id := idOf(rec); id != key {
			return fmt.Errorf("record %s/%s holds ID %q: %w", bucket, key, id, store.ErrCorrupt)
		}
		m[key] = rec
		return nil
	})
}

// announcements sits between the driver and the BGP speaker. It remembers
// what each owner (endpoint or network ID) has announced, for EndpointInfo,
// and it arms an endpoint's announcement at Join so that a watcher that sees
// the link move only announces if no Leave came in between.
type announcements struct {
	mu        sync.Mutex
	announcer route.Announcer
	current   map[string][]route.Advert
	armed     map[string]uint64
	nextToken uint64
}

func newAnnouncements(a route.Announcer) *announcements {
	return &announcements{announcer: a, current: map[string][]route.Advert{}, armed: map[string]uint64{}}
}

// arm starts a new announcement window for owner and returns its token.
func (a *announcements) arm(owner string) uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.nextToken++
	a.armed[owner] = a.nextToken
	return a.nextToken
}

// setIfArmed announces adverts unless owner was withdrawn or re-armed since
// token was issued. Set is called under the lock so that it is ordered with
// a concurrent withdraw.
func (a *announcements) setIfArmed(owner string, token uint64, adverts []route.Advert) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.armed[owner] != token {
		return false
	}
	a.setLocked(owner, adverts)
	return true
}

// armedWith reports whether owner's announcement window is still the one
// token opened: no withdraw or new arm since.
func (a *announcements) armedWith(owner string, token uint64) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.armed[owner] == token
}

// set announces adverts for owner unconditionally (networks' subnets).
func (a *announcements) set(owner string, adverts []route.Advert) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.setLocked(owner, adverts)
}

// withdraw disarms owner and withdraws whatever it announced.
func (a *announcements) withdraw(owner string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.armed, owner)
	a.setLocked(owner, nil)
}

func (a *announcements) setLocked(owner string, adverts []route.Advert) {
	if len(adverts) == 0 {
		delete(a.current, owner)
	} else {
		a.current[owner] = adverts
	}
	a.announcer.Set(owner, adverts)
}

// announced is what owner has announced now.
func (a *announcements) announced(owner string) []route.Advert {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.current[owner])
}
