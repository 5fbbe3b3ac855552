# shellcheck shell=bash
# Scenario b: the path across the fabric, read from IP TTLs as the seed did.
# From a container on host2 to one on host1 the hops are leaf2, a spine and
# leaf1 (the hosts themselves do not decrement TTL: ipvlan L3 delivers to and
# from the container in the host's stack without forwarding), and the echo
# reply arrives with TTL 64 minus the 3 routers it crossed.

run_on host1 b1
run_on host2 b2
b1=$(container_ip host1 b1)
wait_for "router_has leaf2 $b1/32 via" 60 || fail "b: leaf2 never learned $b1/32"

hops=$(dk host2 exec b2 traceroute -n -w 2 -q 1 -m 6 "$b1" 2>&1) || true
echo "$hops"
hop() { echo "$hops" | awk -v n="$1" '$1 == n { print $2 }'; }
[ "$(hop 1)" = 10.0.2.0 ] || fail "b: hop 1 is '$(hop 1)', want leaf2 (10.0.2.0, its port to host2)"
case $(hop 2) in 10.1.12.0 | 10.1.22.0) ;; *) fail "b: hop 2 is '$(hop 2)', want spine1 (10.1.12.0) or spine2 (10.1.22.0)" ;; esac
case $(hop 3) in 10.1.11.1 | 10.1.21.1) ;; *) fail "b: hop 3 is '$(hop 3)', want leaf1 (10.1.11.1 or 10.1.21.1)" ;; esac
[ "$(hop 4)" = "$b1" ] || fail "b: hop 4 is '$(hop 4)', want the container $b1"
pass "b: traceroute host2 -> host1 crosses leaf2 ($(hop 1)), a spine ($(hop 2)), leaf1 ($(hop 3)) to $b1"

ttl=$(dk host2 exec b2 ping -c 1 -W 2 "$b1" | sed -n 's/.*ttl=\([0-9]*\).*/\1/p')
[ "$ttl" = 61 ] || fail "b: echo reply TTL $ttl, want 61 (64 minus leaf1, a spine and leaf2)"
pass "b: the echo reply's TTL is $ttl: 3 routers crossed"
dk host1 rm -f b1 >/dev/null
dk host2 rm -f b2 >/dev/null
