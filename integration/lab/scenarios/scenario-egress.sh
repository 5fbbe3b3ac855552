# shellcheck shell=bash
# Scenario egress: a container's way out of the fabric (docs/operations.md,
# "Container egress"). spine1 becomes the border: a link to an "outside"
# namespace (203.0.113.0/31, a host 198.51.100.1 behind it that has no route
# to the containers), a default route to it, announced to the leaves, and
# NAT of what leaves on that link. host1, the unnumbered host, is set to
# install learned default routes (BGP_IMPORT_DEFAULT=true): its IPv4 default
# comes over the IPv6 link-local session with an IPv6 next hop, and a
# container on host1 reaches the outside host through it, translated at the
# border. At the end spine1, host1 and the outside are put back.

netns_add outside
fabric_link spine1 swp9 203.0.113.0/31 fd00:9::1/64 outside eth0 203.0.113.1/31 fd00:9::2/64
ip -n outside addr add 198.51.100.1/32 dev lo
ip -n spine1 route add default via 203.0.113.1
ip netns exec spine1 iptables -t nat -A POSTROUTING -o swp9 -j MASQUERADE
vtysh_ns spine1 'configure terminal' 'router bgp 65100' 'address-family ipv4 unicast' 'network 0.0.0.0/0' >/dev/null
wait_for "router_has leaf1 0.0.0.0/0 via && router_has leaf2 0.0.0.0/0 via" 60 || fail "egress: the leaves did not learn spine1's default route"

dk host1 plugin disable -f "$PLUGIN" >/dev/null
dk host1 plugin set "$PLUGIN" BGP_IMPORT_DEFAULT=true
dk host1 plugin enable "$PLUGIN" >/dev/null
wait_for "ip -n host1 route show default proto 201 | grep -q 'via inet6 .* dev eth0'" 90 ||
	fail "egress: host1 did not install the default route over its unnumbered session: $(ip -n host1 route show default)"
pass "egress: host1 installed the fabric's default route: $(ip -n host1 route show default proto 201 | head -1)"

run_on host1 e1
e1=$(container_ip host1 e1)
if ip netns exec outside ping -c 1 -W 1 "$e1" >/dev/null 2>&1; then fail "egress: the outside reaches the container's address $e1 directly"; fi
wait_for "dk host1 exec e1 ping -c 1 -W 1 198.51.100.1" 60 || fail "egress: e1 ($e1) on host1 cannot reach 198.51.100.1 outside"
dk host1 exec e1 ping -c 3 -W 2 198.51.100.1 >/dev/null || fail "egress: e1 does not steadily reach 198.51.100.1"
ip netns exec spine1 iptables -t nat -L POSTROUTING -v -n | awk '/MASQUERADE/ {exit !($1 > 0)}' ||
	fail "egress: spine1 translated nothing"
pass "egress: e1 ($e1) on the unnumbered host1 reaches 198.51.100.1 outside the fabric through the default route and spine1's NAT; the outside has no route to $e1"

dk host1 rm -f e1 >/dev/null
vtysh_ns spine1 'configure terminal' 'router bgp 65100' 'address-family ipv4 unicast' 'no network 0.0.0.0/0' >/dev/null
ip netns exec spine1 iptables -t nat -D POSTROUTING -o swp9 -j MASQUERADE
ip -n spine1 route del default via 203.0.113.1
ip netns del outside
dk host1 plugin disable -f "$PLUGIN" >/dev/null
dk host1 plugin set "$PLUGIN" BGP_IMPORT_DEFAULT=
dk host1 plugin enable "$PLUGIN" >/dev/null
wait_for "! router_has leaf1 0.0.0.0/0 via && ! router_has leaf2 0.0.0.0/0 via" 60 || fail "egress: the default route stayed on the leaves"
wait_for "vtysh_ns leaf1 'show bgp neighbors swp1 json' | jq -e '.swp1.bgpState == \"Established\"'" 90 || fail "egress: host1's session did not come back"
wait_for "[ -z \"\$(ip -n host1 route show default proto 201)\" ]" 60 || fail "egress: host1 kept the default route"
pass "egress: spine1, host1 and the outside put back"
