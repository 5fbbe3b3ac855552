# shellcheck shell=bash
# Scenario dualhomed: both uplinks of a dual-homed host carry traffic to its
# containers (docs/operations.md, "Dual-homed hosts"). host4 is numbered to
# leaf1 on eth0 and to leaf2 on eth1. With eth0 as the ipvlan parent, what
# leaf2 sends towards host4's containers enters on eth1 and stops there
# (scenario f's note): first that is shown, with leaf2 routing the container
# straight to host4's eth1. Then the recipe: a Linux bridge over eth0 and
# eth1 holds both uplinks' addresses and is the parent. Traffic from host2
# (behind leaf2, so it arrives on eth1) and from host1 (behind leaf1, so it
# arrives on eth0) reaches the container over IPv4 and IPv6, counted on each
# uplink. At the end host4 is put back as it was.
#
# Why not a bond: every bonding mode picks the slave by hash, load or
# role, never by the destination MAC, so towards two independent routed
# leaves a frame for leaf1's MAC leaves on the link to leaf2, which drops it
# (a bond needs a leaf pair that is one L2 device, MLAG or EVPN multihoming).
# A bridge sends each frame out the port where its destination MAC lives.

host4_net() { dk host4 network create -d "$PLUGIN" --ipam-driver "$PLUGIN" \
	--subnet 10.244.0.0/16 --ipv6 --subnet fd00:244::/48 -o parent="$1" fabric >/dev/null; }
# rx UPLINK: packets received on host4's uplink.
rx() { ip -n host4 -s -j link show "$1" | jq '.[0].stats64.rx.packets'; }
host4_sessions() {
	wait_for "vtysh_ns leaf1 'show bgp neighbors 10.0.4.1 json' | jq -e '.[\"10.0.4.1\"].bgpState == \"Established\"' && birdc_ns leaf2 show protocols host4_v4 | grep -q Established && birdc_ns leaf2 show protocols host4_v6 | grep -q Established" 120 ||
		fail "dualhomed: host4's sessions to leaf1 and leaf2 did not come back ($1)"
}

run_on host1 u1
run_on host2 u2
run_on host4 u4
u4=$(container_ip host4 u4)
wait_for "router_has leaf2 $u4/32 'via 10\.0\.4\.3 dev swp4' && router_has leaf1 $u4/32 'via 10\.0\.4\.1 dev swp4'" 60 ||
	fail "dualhomed: leaf2 does not route $u4/32 straight to host4's eth1 (and leaf1 to its eth0): $(ip -n leaf2 route show "$u4/32"); $(ip -n leaf1 route show "$u4/32")"
wait_for "dk host1 exec u1 ping -c 1 -W 1 $u4" 60 || fail "dualhomed: host1's u1 cannot reach $u4 through leaf1 (host4's eth0, the parent)"
before=$(rx eth1)
if dk host2 exec u2 ping -c 3 -W 1 "$u4" >/dev/null 2>&1; then
	fail "dualhomed: host2's u2 reached $u4 although leaf2 sends it to host4's eth1, which is not the parent"
fi
[ $(($(rx eth1) - before)) -ge 3 ] || fail "dualhomed: host2's pings did not arrive on host4's eth1 ($before -> $(rx eth1) packets)"
pass "dualhomed: with eth0 as the parent, $u4 is reached through leaf1 (eth0) but not through leaf2: host2's pings arrive on eth1 and stop there"
dk host4 rm -f u4 >/dev/null
dk host4 network rm fabric >/dev/null

# The recipe (docs/operations.md): the uplinks' addresses move to a bridge
# over both uplinks, the learned routes are flushed so that the plugin puts
# them back on the bridge (its kernel resync, within 30 s), and the network
# is created on the bridge.
ip netns exec host4 sh -ec '
ip link add br0 type bridge
ip addr del 10.0.4.1/31 dev eth0
ip addr del 10.0.4.3/31 dev eth1
ip -6 addr del fd00:0:5::2/64 dev eth0
ip -6 addr del fd00:0:6::2/64 dev eth1
ip link set eth0 master br0
ip link set eth1 master br0
ip addr add 10.0.4.1/31 dev br0
ip addr add 10.0.4.3/31 dev br0
ip -6 addr add fd00:0:5::2/64 dev br0 nodad
ip -6 addr add fd00:0:6::2/64 dev br0 nodad
ip link set br0 up
ip route flush proto 201
ip -6 route flush proto 201
'
host4_net br0
host4_sessions "with br0"
# host1's container is behind leaf1, host2's behind leaf2: host4's routes
# to them go to each leaf, now through br0.
u1=$(container_ip host1 u1)
u2=$(container_ip host2 u2)
wait_for "ip -n host4 route show $u1/32 | grep -q 'via 10.0.4.0 dev br0' && ip -n host4 route show $u2/32 | grep -q 'via 10.0.4.2 dev br0'" 90 ||
	fail "dualhomed: host4's routes do not go to the leaves through br0: $u1: $(ip -n host4 route show "$u1/32"); $u2: $(ip -n host4 route show "$u2/32")"
pass "dualhomed: host4's sessions to both leaves are up over br0; its routes go to leaf1 ($u1/32) and leaf2 ($u2/32) through br0"

run_on host4 u4
u4=$(container_ip host4 u4)
u4v6=$(container_ip host4 u4 6)
wait_for "router_has leaf2 $u4/32 'via 10\.0\.4\.3 dev swp4' && router_has leaf1 $u4/32 'via 10\.0\.4\.1 dev swp4'" 60 ||
	fail "dualhomed: leaf1 and leaf2 do not route $u4/32 straight to host4: $(ip -n leaf1 route show "$u4/32"); $(ip -n leaf2 route show "$u4/32")"
wait_for "ip -n leaf2 -6 route show $u4v6/128 | grep -q 'dev swp4'" 60 || fail "dualhomed: leaf2 does not route $u4v6/128 to host4"
for via in eth1:host2:u2 eth0:host1:u1; do
	uplink=${via%%:*} h=${via#*:} h=${h%%:*} c=${via##*:}
	wait_for "dk $h exec $c ping -c 1 -W 1 $u4" 60 || fail "dualhomed: $c on $h cannot reach $u4 with br0 as the parent"
	before=$(rx "$uplink")
	out=$(dk "$h" exec "$c" ping -c 20 -i 0.2 -W 1 "$u4" 2>&1) || fail "dualhomed: $c on $h lost pings to $u4: $(echo "$out" | tail -2)"
	echo "$out" | grep -q '20 packets transmitted, 20 packets received' || fail "dualhomed: $c on $h to $u4: $(echo "$out" | tail -2)"
	got=$(($(rx "$uplink") - before))
	[ "$got" -ge 20 ] || fail "dualhomed: 20 pings from $c on $h to $u4 came in as only $got packets on host4's $uplink"
	dk "$h" exec "$c" ping -6 -c 3 -W 2 "$u4v6" >/dev/null || fail "dualhomed: $c on $h cannot reach $u4v6 over IPv6"
	pass "dualhomed: with br0 as the parent, $c on $h reaches $u4 (20 of 20, $got packets in on $uplink) and $u4v6"
done
dk host4 exec u4 ping -c 3 -W 2 "$u2" >/dev/null || fail "dualhomed: u4 cannot reach $u2 on host2 from br0"
dk host4 exec u4 ping -c 3 -W 2 "$u1" >/dev/null || fail "dualhomed: u4 cannot reach $u1 on host1 from br0"

# Put host4 back: eth0 the parent, the addresses on the uplinks.
dk host1 rm -f u1 >/dev/null
dk host2 rm -f u2 >/dev/null
dk host4 rm -f u4 >/dev/null
dk host4 network rm fabric >/dev/null
ip netns exec host4 sh -ec '
ip link del br0
ip addr add 10.0.4.1/31 dev eth0
ip addr add 10.0.4.3/31 dev eth1
ip -6 addr add fd00:0:5::2/64 dev eth0 nodad
ip -6 addr add fd00:0:6::2/64 dev eth1 nodad
ip route flush proto 201
ip -6 route flush proto 201
'
host4_net eth0
host4_sessions "back on eth0 and eth1"
wait_for "ip -n host4 route show 10.255.0.11 | grep -q 'dev eth0'" 90 || fail "dualhomed: host4's learned routes did not come back on eth0: $(ip -n host4 route show proto 201 | head -3)"
if ip -n host4 link show br0 >/dev/null 2>&1; then fail "dualhomed: br0 is left in host4"; fi
pass "dualhomed: host4 back on eth0 and eth1"
