# shellcheck shell=bash
# Scenario d: restarts. The plugin killed with SIGKILL while containers run,
# then restarted by Docker; then dockerd itself restarted. Afterwards no
# container lost its address, every running container's route is on the
# leaves (and never left them: graceful restart), a ping across the fabric
# lost no packet, nothing leaked, and new containers get new, unique
# addresses.

run_on host1 d1
run_on host1 d2
d1=$(container_ip host1 d1)
d2=$(container_ip host1 d2)
wait_for "router_has leaf1 $d1/32 via && router_has leaf1 $d2/32 via && router_has spine1 $d2/32 via" 60 ||
	fail "d: leaves never learned $d1 and $d2"
alloc_before=$(allocated host1)

# Watch leaf1's and spine1's kernels every 100 ms for the whole scenario.
watcher=$(watch_route /tmp/d-losses "$d1/32" leaf1 spine1)

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
	[ "$(allocated host1)" = "$alloc_before" ] || fail "d: allocations went from $alloc_before to $(allocated host1) after $when"
	dk host1 exec d1 ping -c 2 -W 2 "$(container_ip host2 d-peer)" >/dev/null || fail "d: d1 cannot reach host2 after $when"
}
run_on host2 d-peer
wait_for "dk host2 exec d-peer ping -c 1 -W 1 $d1" 60 || fail "d: d-peer on host2 cannot reach $d1 before the restarts"
# Packets both ways across both plugins: host2's container to d1 on host1.
pinger=$(ping_start /tmp/d-ping host2 d-peer "$d1")

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

watch_stop "$watcher" /tmp/d-losses "d: the leaves dropped a running container's route during a restart"
pass "d: leaf1 and spine1 routed $d1/32 throughout both restarts (polled every 100 ms)"
read -r lost sent < <(ping_lost "$pinger" /tmp/d-ping) || true
[ "${sent:-0}" -gt 0 ] && [ "$lost" -eq 0 ] || fail "d: a ping from host2 to $d1 lost ${lost:-?} of ${sent:-0} packets across the restarts: $(tail -3 /tmp/d-ping)"
pass "d: a ping from host2's d-peer to $d1 every 200 ms lost 0 of $sent packets across both restarts"

run_on host1 d3
d3=$(container_ip host1 d3)
[ -n "$d3" ] && [ "$d3" != "$d1" ] && [ "$d3" != "$d2" ] || fail "d: new container got '$d3' (d1=$d1 d2=$d2)"
wait_for "router_has leaf1 $d3/32 via" 60 || fail "d: new container's $d3/32 never reached leaf1"
pass "d: a new container got a new unique address $d3, announced to leaf1"
dk host1 rm -f d1 d2 d3 >/dev/null
dk host2 rm -f d-peer >/dev/null
