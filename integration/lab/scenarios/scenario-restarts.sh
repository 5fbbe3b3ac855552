# shellcheck shell=bash
# Scenario d: restarts. The plugin killed with SIGKILL while containers run,
# then restarted by Docker; then dockerd itself restarted. Afterwards no
# container lost its address, every running container's route is on the
# leaves (and never left them: graceful restart), nothing leaked, and new
# containers get new, unique addresses.

run_on host1 d1
run_on host1 d2
d1=$(container_ip host1 d1)
d2=$(container_ip host1 d2)
wait_for "router_has leaf1 $d1/32 via && router_has leaf1 $d2/32 via && router_has spine1 $d2/32 via" 60 ||
	fail "d: leaves never learned $d1 and $d2"
allocated() { status_json host1 | jq '[.pools[] | select(.pool == "10.244.0.0/16") | .allocated] | add'; }
alloc_before=$(allocated)

# Watch leaf1's and spine1's kernels every 100 ms for the whole scenario.
(while :; do
	for box in leaf1 spine1; do
		router_has "$box" "$d1/32" via || echo "$(date +%T.%N) $box lost $d1/32" >>/tmp/d-losses
	done
	sleep 0.1
done) &
watcher=$!

check_after() {
	local when=$1 c addr
	for c in d1:$d1 d2:$d2; do
		addr=${c#*:}
		dk host1 exec "${c%%:*}" ip -4 addr show eth0 | grep -q "inet $addr/" ||
			fail "d: ${c%%:*} lost its address $addr after $when"
		wait_for "router_has leaf1 $addr/32 via && router_has spine1 $addr/32 via" 60 ||
			fail "d: $addr/32 not on the leaves after $when"
	done
	[ -z "$(ipvlan_links host1)" ] || fail "d: ipvlan links leaked in host1 after $when: $(ipvlan_links host1)"
	[ "$(allocated)" = "$alloc_before" ] || fail "d: allocations went from $alloc_before to $(allocated) after $when"
	dk host1 exec d1 ping -c 2 -W 2 "$(container_ip host2 d-peer)" >/dev/null || fail "d: d1 cannot reach host2 after $when"
}
run_on host2 d-peer

old=$(plugin_pid host1)
[ -n "$old" ] || fail "d: no plugin process found for host1"
kill -KILL "$old"
wait_for "[ -n \"\$(plugin_pid host1)\" ] && [ \"\$(plugin_pid host1)\" != $old ]" 60 || fail "d: Docker did not restart the killed plugin"
wait_for "dk host1 plugin inspect -f '{{.Enabled}}' $PLUGIN | grep -q true" 30 || fail "d: plugin not enabled after the kill"
sleep 3
check_after "the plugin was killed with SIGKILL (pid $old -> $(plugin_pid host1))"
pass "d: plugin SIGKILLed and restarted by Docker: addresses, routes and allocations intact, no link leaked"

restart_dockerd host1
wait_for "[ -n \"\$(plugin_pid host1)\" ]" 60 || fail "d: no plugin after dockerd restart"
sleep 3
check_after "dockerd restarted"
pass "d: dockerd restarted: addresses, routes and allocations intact, no link leaked"

kill "$watcher"
wait "$watcher" 2>/dev/null || true
[ ! -s /tmp/d-losses ] || fail "d: the leaves dropped a running container's route during a restart: $(head -5 /tmp/d-losses)"
pass "d: leaf1 and spine1 routed $d1/32 throughout both restarts (polled every 100 ms)"

run_on host1 d3
d3=$(container_ip host1 d3)
[ -n "$d3" ] && [ "$d3" != "$d1" ] && [ "$d3" != "$d2" ] || fail "d: new container got '$d3' (d1=$d1 d2=$d2)"
wait_for "router_has leaf1 $d3/32 via" 60 || fail "d: new container's $d3/32 never reached leaf1"
pass "d: a new container got a new unique address $d3, announced to leaf1"
dk host1 rm -f d1 d2 d3 >/dev/null
dk host2 rm -f d-peer >/dev/null
