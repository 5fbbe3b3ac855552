# shellcheck shell=bash
# Scenario g: `docker plugin upgrade`, done the way docs/upgrade.md tells
# operators, on host1 while a container runs there: a new release is
# published under its own tag, then disable -f, upgrade, enable. The
# container keeps its address and its route on the leaves throughout, a ping
# to it across the fabric loses nothing, the plugin keeps its settings and
# state (allocations), and new containers work on the new version.

release=$REGISTRY/ipvlan-bgp:upgrade-test
# The same binary with a marker file and a config that differ, so Docker
# sees a new release (an identical rootfs layer is refused: "content ...
# already exists" on a host that holds it).
rm -rf /tmp/plugin-next
cp -a /payload/plugin /tmp/plugin-next
echo "$release" >/tmp/plugin-next/rootfs/RELEASE
jq '.description += " (next release)"' /payload/plugin/config.json >/tmp/plugin-next/config.json
DOCKER="docker -H unix://$(_dk_sock host1)" /payload/tools/publish.sh "$release" /tmp/plugin-next >/dev/null

run_on host1 g1
g1=$(container_ip host1 g1)
run_on host2 g-peer
wait_for "router_has leaf1 $g1/32 via && router_has spine1 $g1/32 via" 60 || fail "g: leaves never learned $g1"
wait_for "dk host2 exec g-peer ping -c 1 -W 1 $g1" 60 || fail "g: g-peer on host2 cannot reach $g1 before the upgrade"
alloc_before=$(allocated host1)
settings_before=$(dk host1 plugin inspect -f '{{json .Settings.Env}}' "$PLUGIN")
watcher=$(watch_route /tmp/g-losses "$g1/32" leaf1 spine1)
pinger=$(ping_start /tmp/g-ping host2 g-peer "$g1")

start=$(now_ms)
# The commands of docs/upgrade.md.
out=$(dk host1 plugin disable -f "$PLUGIN" 2>&1) || fail "g: docker plugin disable -f: $out"
out=$(dk host1 plugin upgrade --grant-all-permissions --skip-remote-check "$PLUGIN" "$release" 2>&1) ||
	fail "g: docker plugin upgrade: $out"
out=$(dk host1 plugin enable "$PLUGIN" 2>&1) || fail "g: docker plugin enable: $out"
took=$(($(now_ms) - start))

[ "$(dk host1 plugin inspect -f '{{.PluginReference}}' "$PLUGIN")" = "$release" ] ||
	fail "g: the plugin still runs $(dk host1 plugin inspect -f '{{.PluginReference}}' "$PLUGIN") after the upgrade"
[ "$(dk host1 plugin inspect -f '{{json .Settings.Env}}' "$PLUGIN")" = "$settings_before" ] ||
	fail "g: the upgrade changed the plugin's settings: $(dk host1 plugin inspect -f '{{json .Settings.Env}}' "$PLUGIN")"
wait_for "status_json host1 | jq -e '[.bgp.peers[] | select(.state == \"established\")] | length > 0'" 90 ||
	fail "g: no BGP session came back after the upgrade: $(status_json host1 | jq -c .bgp)"
dk host1 exec g1 ip -4 addr show eth0 | grep -q "inet $g1/" || fail "g: g1 lost its address $g1"
[ "$(allocated host1)" = "$alloc_before" ] || fail "g: allocations went from $alloc_before to $(allocated host1)"
[ -z "$(ipvlan_links host1)" ] || fail "g: ipvlan links leaked in host1: $(ipvlan_links host1)"
sleep 3
watch_stop "$watcher" /tmp/g-losses "g: the leaves dropped g1's route during the upgrade"
read -r lost sent < <(ping_lost "$pinger" /tmp/g-ping) || true
[ "${sent:-0}" -gt 0 ] && [ "$lost" -eq 0 ] ||
	fail "g: a ping from host2 to $g1 lost ${lost:-?} of ${sent:-0} packets across the upgrade: $(tail -3 /tmp/g-ping)"
pass "g: plugin upgraded to $release in $((took / 1000)) s (disable -f, upgrade, enable): settings, address and allocations kept, $g1/32 on leaf1 and spine1 throughout (polled every 100 ms), a ping every 200 ms from host2 lost 0 of $sent"

run_on host1 g2
g2=$(container_ip host1 g2)
[ -n "$g2" ] && [ "$g2" != "$g1" ] || fail "g: a container after the upgrade got '$g2' (g1=$g1)"
wait_for "router_has leaf1 $g2/32 via" 60 || fail "g: $g2/32 of a container started after the upgrade never reached leaf1"
dk host1 rm -f g1 g2 >/dev/null
wait_for "! router_has leaf1 $g1/32 via && ! router_has leaf1 $g2/32 via" 60 || fail "g: routes of removed containers stayed on leaf1"
dk host2 rm -f g-peer >/dev/null
pass "g: after the upgrade a new container got $g2, announced, and both were withdrawn on removal"
