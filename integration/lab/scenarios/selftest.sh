#!/bin/bash
# The lab self-test: proves the lab VM can do what the project's real scenarios need.
#   integration/lab/run.sh integration/lab/scenarios /payload/selftest.sh
#
# Two Docker hosts (namespaces h1, h2, one dockerd each) joined by a veth pair v1 <-> v2.
# FRR in h1 and BIRD in h2 speak eBGP over it and exchange the two container subnets, then
# a container on Docker's own ipvlan L3 network in h1 pings one in h2 over those routes.
# Every check fails the scenario when it does not hold.
set -euo pipefail
# run.sh ships integration/lab/guest/ as /lab in the guest.
# shellcheck source-path=SCRIPTDIR source=../guest/lib.sh
. /lab/lib.sh

lab_log "selftest: kernel $(uname -r), $(nproc) vCPUs, $(awk '/MemTotal/ { print int($2 / 1024) " MB" }' /proc/meminfo)"

# --- kernel: the link types the build machines lack -------------------------------------
check "kernel creates dummy, ipvlan (l3) and 802.1q links" sh -c '
	ip link add lab-d0 type dummy &&
	ip link add link lab-d0 name lab-i0 type ipvlan mode l3 &&
	ip link add link lab-d0 name lab-d0.10 type vlan id 10 &&
	ip link del lab-i0 && ip link del lab-d0.10 && ip link del lab-d0'

# --- binaries the interop scenarios use --------------------------------------------------
for b in vtysh /usr/lib/frr/zebra /usr/lib/frr/bgpd bird birdc radvd tcpdump jq docker-registry tini; do
	command -v "$b" >/dev/null || fail "binary $b missing"
done
pass "vtysh, FRR daemons, bird/birdc, radvd, tcpdump, jq, docker-registry present"

# --- two hosts joined by a veth -----------------------------------------------------------
netns_add h1
netns_add h2
ip link add v1 netns h1 type veth peer name v2 netns h2
ip -n h1 addr add 10.0.0.1/24 dev v1
ip -n h2 addr add 10.0.0.2/24 dev v2
ip -n h1 link set v1 up
ip -n h2 link set v2 up
check "h1 pings h2 over the veth" wait_for "ip netns exec h1 ping -c1 -W1 10.0.0.2" 10

# --- two dockerds in parallel ---------------------------------------------------------------
t=$(date +%s.%N)
launch_dockerd h1 h1
launch_dockerd h2 h2
wait_dockerd h1
wait_dockerd h2
lab_log "both dockerds ready after $(awk -v a="$t" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')s"
pass "dockerd h1 and h2 answer ($(dk h1 version -f '{{.Server.Version}}'))"
# shellcheck disable=SC2016
check "each dockerd runs in its own namespace" \
	sh -c '[ "$(ip netns identify $(cat /run/h1/dockerd.pid))" = h1 ] && [ "$(ip netns identify $(cat /run/h2/dockerd.pid))" = h2 ]'

for h in h1 h2; do
	dk "$h" plugin ls >/dev/null || fail "docker plugin ls fails on $h"
done
pass "docker plugin ls works on h1 and h2"

import_busybox h1
import_busybox h2
pass "busybox imported on both hosts"
out=$(dk h1 run --rm busybox echo hello-from-h1)
[ "$out" = hello-from-h1 ] || fail "docker run on h1 printed '$out'"
pass "docker run on h1 (default bridge)"

# --- BGP: FRR (AS 65001) in h1 <-> BIRD (AS 65002) in h2 ------------------------------------
cat >/run/lab/frr-h1.conf <<'EOF'
hostname h1
router bgp 65001
 bgp router-id 10.0.0.1
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor 10.0.0.2 remote-as 65002
 address-family ipv4 unicast
  network 192.168.100.0/24
 exit-address-family
EOF
cat >/run/lab/bird-h2.conf <<'EOF'
router id 10.0.0.2;
protocol device {}
protocol static { ipv4; route 192.168.200.0/24 unreachable; }
protocol kernel {
	ipv4 { export where source = RTS_BGP; };
	merge paths on;
}
protocol bgp frr {
	local 10.0.0.2 as 65002;
	neighbor 10.0.0.1 as 65001;
	ipv4 { import all; export where source = RTS_STATIC; };
}
EOF
start_frr h1 /run/lab/frr-h1 /run/lab/frr-h1.conf
start_bird h2 /run/lab/bird-h2 /run/lab/bird-h2.conf
if ! wait_for "vtysh_ns h1 'show bgp summary json' | jq -e '.ipv4Unicast.peers.\"10.0.0.2\".state == \"Established\"'" 60; then
	vtysh_ns h1 'show bgp summary' || true
	birdc_ns h2 show protocols all frr || true
	fail "BGP session FRR h1 <-> BIRD h2 not established"
fi
pass "BGP session FRR h1 <-> BIRD h2 established"
wait_for "ip -n h2 route show 192.168.100.0/24 | grep -q 'via 10.0.0.1'" 30 ||
	fail "BIRD did not install 192.168.100.0/24 from FRR into h2"
wait_for "ip -n h1 route show 192.168.200.0/24 | grep -q 'via 10.0.0.2'" 30 ||
	fail "zebra did not install 192.168.200.0/24 from BIRD into h1"
pass "routes exchanged and installed in both kernels"

# --- Docker's own ipvlan driver, L3 mode -----------------------------------------------------
dk h1 network create -d ipvlan -o ipvlan_mode=l3 -o parent=v1 --subnet 192.168.100.0/24 l3net >/dev/null
dk h2 network create -d ipvlan -o ipvlan_mode=l3 -o parent=v2 --subnet 192.168.200.0/24 l3net >/dev/null
pass "ipvlan L3 networks created"
dk h1 run -d --name c1 --net l3net --ip 192.168.100.10 busybox sleep 600 >/dev/null
dk h2 run -d --name c2 --net l3net --ip 192.168.200.10 busybox sleep 600 >/dev/null
dk h1 exec c1 ip addr show eth0 | grep -q 'inet 192.168.100.10/24' ||
	fail "c1 has not got 192.168.100.10/24: $(dk h1 exec c1 ip addr)"
pass "c1 has 192.168.100.10/24 on eth0"
pid=$(dk h1 inspect -f '{{.State.Pid}}' c1)
nsenter -t "$pid" -n ip -d link show eth0 | grep -Eq 'ipvlan +mode l3' ||
	fail "c1's eth0 is not an ipvlan L3 link: $(nsenter -t "$pid" -n ip -d link show eth0)"
pass "c1's eth0 is an ipvlan link in mode l3"
dk h1 exec c1 ip route | grep -q '^default dev eth0' || fail "c1 has no 'default dev eth0' route"
pass "c1 routes by default through eth0 (L3 mode)"
if ! dk h1 exec c1 ping -c 2 -W 2 192.168.200.10 >/dev/null; then
	fail "c1 (h1) cannot ping c2 (h2) over the BGP-learned routes"
fi
pass "c1 on h1 pings c2 on h2 over ipvlan L3 and BGP-learned routes"

# --- a registry the hosts can push to and pull from ------------------------------------------
start_registry h1 10.0.0.1:5000
dk h1 tag busybox 10.0.0.1:5000/lab/busybox:selftest
dk h1 push -q 10.0.0.1:5000/lab/busybox:selftest >/dev/null || fail "push to the registry from h1 failed"
dk h2 pull -q 10.0.0.1:5000/lab/busybox:selftest >/dev/null || fail "pull from the registry on h2 failed"
pass "registry in h1: push from h1, pull from h2"

# Something for the host to find in the output directory.
{
	dk h1 version
	vtysh_ns h1 'show bgp ipv4 unicast'
	birdc_ns h2 show route
} >/payload-out/selftest-state.txt 2>&1 || true

lab_log "selftest: all checks passed"
