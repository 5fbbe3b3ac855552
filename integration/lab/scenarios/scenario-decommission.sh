# shellcheck shell=bash
# Scenario decommission: the plugin taken off a host in the order
# docs/operations.md gives, without blackholing. host3 runs a container on
# the fabric network, one on a VLAN network (a parent the plugin creates,
# eth0.100) and an internal network (a dummy parent the plugin creates).
# 1. Drain: the containers are removed while the sessions are up, so the
#    leaves get a real withdraw (not graceful restart's stale hold) and
#    drop the routes within seconds. 2. The networks are removed: the plugin
#    deletes the parents it created. 3. `docker plugin disable` (no -f: no
#    network uses it now): the leaves hold nothing of host3 as stale; the
#    learned routes (protocol 201) stay in host3's kernel, kept for a
#    restart, and are flushed by hand. 4. The state directory is copied
#    away, then `docker plugin rm` deletes it with the plugin. Nothing of the
#    plugin is left on host3. At the end host3 gets the plugin back.

decom_links() { ip -n host3 -o link show | grep -E ': ipb[dv]?-|alias ipvlan-bgp' || true; }
decom_learned() { { ip -n host3 route show proto 201; ip -n host3 -6 route show proto 201; } | wc -l; }
# leaf_routes_host3: routes the leaves hold into host3's block.
leaf_routes_host3() { { ip -n leaf1 route show; ip -n leaf2 route show; } | grep -c '^10\.244\.3\.' || true; }

run_on host3 x3
dk host3 network create -d "$PLUGIN" --ipam-driver "$PLUGIN" --subnet 10.250.3.0/24 -o parent=eth0.100 x-vlan >/dev/null
dk host3 network create -d "$PLUGIN" --ipam-driver "$PLUGIN" --subnet 10.251.3.0/24 --internal x-internal >/dev/null
dk host3 run -d --name x3-vlan --net x-vlan busybox sleep 86400 >/dev/null
dk host3 run -d --name x3-internal --net x-internal busybox sleep 86400 >/dev/null
x3=$(container_ip host3 x3)
wait_for "router_has leaf1 $x3/32 via && router_has leaf2 $x3/32 via && router_has spine1 $x3/32 via" 60 ||
	fail "decommission: the leaves never learned $x3/32"
ip -n host3 -d link show eth0.100 | grep -q 'alias ipvlan-bgp' || fail "decommission: no plugin-owned eth0.100 on host3"
ip -n host3 -o link show type dummy | grep -q ': ipbd-' || fail "decommission: no plugin-owned dummy parent on host3"
[ "$(decom_learned)" -gt 0 ] || fail "decommission: host3 learned no routes to start from"
# x-vlan's --subnet has no block in host3's IPAM_LOCAL_RANGES: a warning
# saying to set it (docs/operations.md, "Warnings"); the internal network
# announces nothing and gets none.
status_json host3 | jq -e '[.warnings // [] | .[] | select(test("pool 10\\.250\\.3\\.0/24 has no local range.*set IPAM_LOCAL_RANGES"))] | length == 1' >/dev/null ||
	fail "decommission: host3's status does not warn that x-vlan's pool has no local range: $(status_json host3 | jq -c '.warnings')"
if status_json host3 | jq -e '.warnings // [] | any(test("10\\.251\\.3\\.0/24"))' >/dev/null; then
	fail "decommission: host3 warns about the internal network's pool: $(status_json host3 | jq -c '.warnings')"
fi
ID=$(dk host3 plugin inspect -f '{{.Id}}' "$PLUGIN")
P=/var/lib/lab/host3/plugins/$ID
[ -f "$P/propagated-mount/ipvlan-bgp.db" ] || fail "decommission: no state file in $P/propagated-mount"
pass "decommission: host3 runs $x3 (on the leaves), a VLAN network on eth0.100 (its pool without a local range: warned in status) and an internal one on $(ip -n host3 -o link show type dummy | grep -o 'ipbd-[0-9a-f]*'), with $(decom_learned) learned routes"

# 1. Drain: every container on the plugin's networks, while BGP is up.
start=$(now_ms)
for n in $(dk host3 network ls -q --filter driver="$PLUGIN"); do
	for c in $(dk host3 ps -aq --filter network="$n"); do dk host3 rm -f "$c" >/dev/null; done
done
gone=$(until_ms "! router_has leaf1 $x3/32 via && ! router_has leaf2 $x3/32 via && ! router_has spine1 $x3/32 via" 30) ||
	fail "decommission: $x3/32 stayed on the leaves after its container was removed"
[ "$(leaf_routes_host3)" = 0 ] || fail "decommission: the leaves still route into host3's block: $(ip -n leaf1 route show | grep "^10\\.244\\.3\\.")"
pass "decommission: drained: $x3/32 left leaf1, leaf2 and spine1 ${gone} ms after the containers were removed ($(( $(now_ms) - start )) ms in all), a withdraw, not a stale hold"

# 2. The networks: the plugin deletes the parents it created.
# shellcheck disable=SC2046
dk host3 network rm $(dk host3 network ls -q --filter driver="$PLUGIN") >/dev/null
[ -z "$(decom_links)" ] || fail "decommission: links left after the networks were removed: $(decom_links)"
pass "decommission: the networks removed, eth0.100 and the dummy parent went with them"

# 3. Disable: nothing uses the plugin, so no -f.
out=$(dk host3 plugin disable "$PLUGIN" 2>&1) || fail "decommission: docker plugin disable (without -f) failed: $out"
wait_for "! vtysh_ns leaf1 'show bgp neighbors 10.0.3.1 json' | jq -e '.[\"10.0.3.1\"].bgpState == \"Established\"'" 30 ||
	fail "decommission: leaf1's session to host3 stayed up after the plugin was disabled"
[ "$(leaf_routes_host3)" = 0 ] || fail "decommission: the leaves hold routes into host3's block after the disable"
left=$(decom_learned)
[ "$left" -gt 0 ] || fail "decommission: the learned routes were gone at once; graceful restart keeps them"
ip netns exec host3 sh -ec 'ip route flush proto 201; ip -6 route flush proto 201'
[ "$(decom_learned)" = 0 ] || fail "decommission: learned routes left after the flush"
pass "decommission: plugin disabled without -f: sessions down, the leaves hold nothing of host3; the $left learned routes it left in the kernel flushed"

# 4. Keep the state directory (bgp.toml, the state file), then remove.
rm -rf /tmp/decom-state
cp -a "$P/propagated-mount" /tmp/decom-state
dk host3 plugin rm "$PLUGIN" >/dev/null
[ ! -e "$P" ] || fail "decommission: $P is still there after docker plugin rm"
[ -f /tmp/decom-state/ipvlan-bgp.db ] || fail "decommission: the copy of the state directory lacks the state file"
if [ -n "$(decom_links)" ] || [ "$(decom_learned)" != 0 ]; then fail "decommission: something of the plugin is left on host3: $(decom_links) $(decom_learned) routes"; fi
[ -z "$(dk host3 plugin ls -q)" ] || fail "decommission: host3 still lists a plugin"
pass "decommission: docker plugin rm deleted the plugin and its state directory (copied away before); no link, route or plugin left on host3"

# host3 back in the fabric.
# shellcheck disable=SC2046
plugin_install host3 $(host3_settings)
net_create host3 fabric
wait_for "vtysh_ns leaf1 'show bgp neighbors 10.0.3.1 json' | jq -e '.[\"10.0.3.1\"].bgpState == \"Established\"' && birdc_ns leaf2 show protocols host3_v4 | grep -q Established" 120 ||
	fail "decommission: host3's sessions did not come back after the reinstall"
pass "decommission: host3 reinstalled and peering again"
