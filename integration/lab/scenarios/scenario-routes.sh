# shellcheck shell=bash
# Scenario a: the same network on every host; containers on host1 and host2
# reach each other across the fabric; every leaf and spine holds the
# container's /32 and /128 with the right next hop, in its RIB and kernel;
# `docker rm -f` withdraws it everywhere. Prints announce/withdraw times.

t0=$(now_ms)
run_on host1 a1
t_run=$(($(now_ms) - t0))
run_on host2 a2
a1=$(container_ip host1 a1)
a1v6=$(container_ip host1 a1 6)
a2=$(container_ip host2 a2)
[ -n "$a1" ] && [ -n "$a1v6" ] && [ -n "$a2" ] || fail "containers got no addresses (a1=$a1 a1v6=$a1v6 a2=$a2)"
case $a1 in 10.244.1.*) ;; *) fail "host1's container got $a1, outside host1's block 10.244.1.0/24" ;; esac
case $a2 in 10.244.2.*) ;; *) fail "host2's container got $a2, outside host2's block 10.244.2.0/24" ;; esac
pass "a: each host allocated from its own block of 10.244.0.0/16: $a1, $a2 ($a1v6)"

announce_ms=$(until_ms "router_has leaf2 $a1/32 via" 60) || fail "a: leaf2 never learned $a1/32"
echo "announce: docker run took ${t_run} ms; $a1/32 reached leaf2's kernel (BIRD, 3 hops away) ${announce_ms} ms after it returned"

# Expected next hops per box for host1's container: leaf1 reaches host1 over
# the unnumbered session (an IPv6 link-local next hop), each spine via
# leaf1's link to it, leaf2 via both spines (ECMP).
router_has leaf1 "$a1/32" 'via inet6 fe80::.* dev swp1' || fail "a: leaf1's kernel: $(ip -n leaf1 route show "$a1/32")"
router_has spine1 "$a1/32" 'via 10\.1\.11\.1 dev swp1' || fail "a: spine1's kernel: $(ip -n spine1 route show "$a1/32")"
router_has spine2 "$a1/32" 'via 10\.1\.21\.1 dev swp1' || fail "a: spine2's kernel: $(ip -n spine2 route show "$a1/32")"
wait_for "ip -n leaf2 route show $a1/32 | grep -q 10.1.12.0 && ip -n leaf2 route show $a1/32 | grep -q 10.1.22.0" 30 ||
	fail "a: leaf2's kernel has no ECMP over both spines: $(ip -n leaf2 route show "$a1/32")"
for box in leaf1 spine1 spine2 leaf2; do
	rib_has "$box" "$a1/32" || fail "a: $box's BGP RIB lacks $a1/32"
	wait_for "rib_has $box $a1v6/128" 30 || fail "a: $box's BGP RIB lacks $a1v6/128"
	wait_for "ip -n $box -6 route show $a1v6/128 | grep -q via" 30 || fail "a: $box's kernel lacks $a1v6/128"
done
pass "a: leaf1, both spines and leaf2 hold $a1/32 and $a1v6/128 in RIB and kernel with the expected next hops"

# a2's own /32 may still be on its way to host1's side (only a1's was
# followed above): the first answer is waited for, then three in a row.
wait_for "dk host2 exec a2 ping -c 1 -W 2 $a1" 60 || fail "a: a2 (host2) never reached a1 (host1) at $a1"
dk host2 exec a2 ping -c 3 -W 2 "$a1" >/dev/null || fail "a: a2 (host2) cannot ping a1 (host1) at $a1"
dk host1 exec a1 ping -c 3 -W 2 "$a2" >/dev/null || fail "a: a1 (host1) cannot ping a2 (host2) at $a2"
a2v6=$(container_ip host2 a2 6)
dk host2 exec a2 ping -6 -c 3 -W 2 "$a1v6" >/dev/null || fail "a: a2 cannot ping a1 over IPv6 ($a1v6)"
pass "a: containers on host1 and host2 ping each other over IPv4 and IPv6 ($a2v6 -> $a1v6)"

t0=$(now_ms)
dk host1 rm -f a1 >/dev/null
t_rm=$(($(now_ms) - t0))
gone_ms=$(until_ms "! router_has leaf2 $a1/32 via" 60) || fail "a: leaf2 still routes $a1/32 after docker rm -f"
echo "withdraw: docker rm -f took ${t_rm} ms; $a1/32 left leaf2's kernel ${gone_ms} ms after it returned"
for box in leaf1 spine1 spine2 leaf2; do
	wait_for "! router_has $box $a1/32 via && ! ip -n $box -6 route show $a1v6/128 | grep -q via" 60 ||
		fail "a: $box still routes a1 after docker rm -f"
done
router_has leaf1 "$a2/32" via || fail "a: removing a1 also withdrew a2's route"
pass "a: docker rm -f withdrew $a1/32 and $a1v6/128 from every leaf and spine, and only those"
dk host2 rm -f a2 >/dev/null
echo "a_announce_ms=$announce_ms a_run_ms=$t_run a_rm_ms=$t_rm a_withdraw_ms=$gone_ms" >>/payload-out/timings.txt
