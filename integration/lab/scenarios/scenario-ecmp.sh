# shellcheck shell=bash
# Scenario f: ECMP. The dual-homed host3 learns the route of a container on
# host4 (a remote rack, also dual-homed) from both leaves (leaf1 on FRR,
# leaf2 on BIRD) at equal cost and installs one route with two next hops;
# with leaf2 down the container stays reachable through leaf1.
#
# Reachability is checked with leaf2 down, not before: an ipvlan child only
# receives what arrives on its parent (host4's eth0, towards leaf1), so a
# flow the ECMP hash sends towards leaf2 reaches host4 on eth1 and stops
# there. A dual-homed host that wants both uplinks to carry traffic to its
# containers needs a bridge over both as the ipvlan parent (scenario
# dualhomed).

run_on host4 f4
run_on host3 f3
f4=$(container_ip host4 f4)
wait_for "ip -n host3 route show $f4/32 | grep -q 'via 10.0.3.0' && ip -n host3 route show $f4/32 | grep -q 'via 10.0.3.2'" 60 ||
	fail "f: host3 has no ECMP route to $f4/32: $(ip -n host3 route show "$f4/32")"
ip -n host3 route show "$f4/32"
proto=$(ip -n host3 -j route show "$f4/32" | jq -r '.[0].protocol')
[ "$proto" = 201 ] || fail "f: host3's route to $f4/32 has protocol $proto, want the plugin's (201)"
pass "f: host3 installed $f4/32 once, with next hops leaf1 (10.0.3.0) and leaf2 (10.0.3.2), protocol 201"

# leaf2 goes down: every one of its links.
for l in swp1 swp3 swp4 swp51 swp52; do ip -n leaf2 link set "$l" down; done
wait_for "[ \$(ip -n host3 route show $f4/32 | grep -c via) = 1 ] && ip -n host3 route show $f4/32 | grep -q 'via 10.0.3.0'" 60 ||
	fail "f: host3 still routes via leaf2 after it went down: $(ip -n host3 route show "$f4/32")"
wait_for "dk host3 exec f3 ping -c 1 -W 2 $f4" 30 || fail "f: f4 unreachable from host3's f3 with leaf2 down"
dk host3 exec f3 ping -c 3 -W 2 "$f4" >/dev/null || fail "f: f4 not steadily reachable with leaf2 down"
pass "f: with leaf2 down host3 routes $f4/32 via leaf1 alone and f3 reaches f4"
for l in swp1 swp3 swp4 swp51 swp52; do ip -n leaf2 link set "$l" up; done
wait_for "ip -n host3 route show $f4/32 | grep -q 'via 10.0.3.2'" 90 || fail "f: leaf2's path did not come back"
pass "f: leaf2 back: host3's route to $f4/32 has both next hops again"
dk host4 rm -f f4 >/dev/null
dk host3 rm -f f3 >/dev/null
wait_sessions
