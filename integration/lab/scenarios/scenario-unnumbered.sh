# shellcheck shell=bash
# Scenario c: the seed's failure. host1's BGP session to leaf1 runs over IPv6
# link-local on eth0, the same NIC that is the ipvlan parent. It must stay
# Established, never reset, while 20 containers attach and detach.

# FRR's count of sessions established and dropped on the port: a reset
# between two polls of the watcher below still moves them. (The "up since"
# epoch is not used: FRR derives it from the uptime and it jitters by 1 s.)
counters() { vtysh_ns leaf1 'show bgp neighbors swp1 json' | jq -ec '.swp1 | [(.connectionsEstablished | numbers), (.connectionsDropped | numbers)] | select(length == 2)'; }
state() { vtysh_ns leaf1 'show bgp neighbors swp1 json' | jq -r '.swp1.bgpState'; }
[ "$(state)" = Established ] || fail "c: host1-leaf1 session is $(state) before the test"
since=$(counters) || fail "c: FRR reports no connection counters for swp1"
parent_ll=$(ip -n host1 -6 -o addr show dev eth0 scope link | awk '{print $4}')

# Watch the session every 200 ms while the containers come and go.
(while :; do
	s=$(state)
	[ "$s" = Established ] || echo "$(date +%T.%N) $s" >>/tmp/c-session-drops
	sleep 0.2
done) &
watcher=$!
# Four at a time: docker run under emulation takes seconds.
for batch in 1 2 3 4 5; do
	pids=()
	for i in 1 2 3 4; do
		run_on host1 "c$batch-$i" &
		pids+=($!)
	done
	wait "${pids[@]}"
done
n=$(dk host1 ps -q --filter 'name=^c[1-5]-' | wc -l)
[ "$n" -ge 20 ] || fail "c: only $n of 20 containers are running"
for batch in 1 2 3 4 5; do
	pids=()
	for i in 1 2 3 4; do
		dk host1 rm -f "c$batch-$i" >/dev/null &
		pids+=($!)
	done
	wait "${pids[@]}"
done
kill "$watcher"
wait "$watcher" 2>/dev/null || true

[ ! -s /tmp/c-session-drops ] || fail "c: the session left Established: $(cat /tmp/c-session-drops)"
[ "$(counters)" = "$since" ] || fail "c: the session was reset during the test ([established, dropped] was $since, now $(counters))"
[ "$(ip -n host1 -6 -o addr show dev eth0 scope link | awk '{print $4}')" = "$parent_ll" ] ||
	fail "c: eth0's link-local address changed"
[ -z "$(ipvlan_links host1)" ] || fail "c: ipvlan links left in host1: $(ipvlan_links host1)"
pass "c: host1's unnumbered session on the ipvlan parent stayed Established (connections [established, dropped] $since throughout) while 20 containers attached and detached"
