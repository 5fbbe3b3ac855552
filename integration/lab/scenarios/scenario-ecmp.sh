# shellcheck shell=bash
# Scenario f: ECMP. The dual-homed host3 learns a container's route from both
# leaves (leaf1 on FRR, leaf2 on BIRD) and installs one route with two next
# hops; with leaf2 down the container stays reachable through leaf1.

run_on host1 f1
run_on host3 f3
f1=$(container_ip host1 f1)
wait_for "ip -n host3 route show $f1/32 | grep -q 'via 10.0.3.0' && ip -n host3 route show $f1/32 | grep -q 'via 10.0.3.2'" 60 ||
	fail "f: host3 has no ECMP route to $f1/32: $(ip -n host3 route show "$f1/32")"
ip -n host3 route show "$f1/32"
proto=$(ip -n host3 -j route show "$f1/32" | jq -r '.[0].protocol')
[ "$proto" = 201 ] || fail "f: host3's route to $f1/32 has protocol $proto, want the plugin's (201)"
pass "f: host3 installed $f1/32 once, with next hops leaf1 (10.0.3.0) and leaf2 (10.0.3.2), protocol 201"
dk host3 exec f3 ping -c 2 -W 2 "$f1" >/dev/null || fail "f: f3 (host3) cannot reach f1 (host1)"

# leaf2 goes down: every one of its links.
for l in swp1 swp3 swp51 swp52; do ip -n leaf2 link set "$l" down; done
wait_for "[ \$(ip -n host3 route show $f1/32 | grep -c via) = 1 ] && ip -n host3 route show $f1/32 | grep -q 'via 10.0.3.0'" 60 ||
	fail "f: host3 still routes via leaf2 after it went down: $(ip -n host3 route show "$f1/32")"
dk host3 exec f3 ping -c 3 -W 2 "$f1" >/dev/null || fail "f: f1 unreachable from host3 with leaf2 down"
pass "f: with leaf2 down host3 routes $f1/32 via leaf1 alone and f1 stays reachable"
for l in swp1 swp3 swp51 swp52; do ip -n leaf2 link set "$l" up; done
wait_for "ip -n host3 route show $f1/32 | grep -q 'via 10.0.3.2'" 90 || fail "f: leaf2's path did not come back"
dk host1 rm -f f1 >/dev/null
dk host3 rm -f f3 >/dev/null
wait_sessions
