# shellcheck shell=bash
# Scenario j: host reboot. host2 "loses power" with two containers running,
# one with a restart policy: every process of it dies at once, its
# containers' namespaces and with them their links go, the plugin's links
# and learned routes go, /run is empty. Then containerd, dockerd and (from
# dockerd) the plugin start again. The plugin must not announce the dead
# container (its endpoint is joined in the state file, its link is
# nowhere): leaf2 drops its route once the restarted speaker's End-of-RIB
# ends graceful restart; Docker deletes the stale endpoints, restarts the
# container with the policy, and that one is announced again. Nothing of
# the plugin is left without an owner.

run_on host2 j-keep --restart always
run_on host2 j-dead
keep=$(container_ip host2 j-keep)
dead=$(container_ip host2 j-dead)
wait_for "router_has leaf2 $keep/32 via && router_has leaf2 $dead/32 via" 60 ||
	fail "j: leaf2 never learned $keep and $dead"

# power_off HOST: everything of the host dies at once, as at a power cut:
# its processes (containers, shims, containerd, dockerd, the plugin), the
# containers' namespaces (tmpfs under /run at a real reboot), the plugin's
# links and routes (kernel state), the mounts of the containers' roots.
power_off() {
	local h=$1 pid ns mnt c link
	local -a pids=()
	for c in $(dk "$h" ps -q); do pids+=("$(dk "$h" inspect -f '{{.State.Pid}}' "$c")"); done
	pids+=($(plugin_pid "$h") $(pgrep -f "containerd-shim.*/run/$h/") $(pgrep -f "containerd --config /run/$h/containerd.toml") "$(cat "/run/$h/dockerd.pid")")
	for pid in "${pids[@]}"; do
		kill -KILL "$pid" 2>/dev/null || true
	done
	wait_for "! kill -0 $(cat "/run/$h/dockerd.pid") 2>/dev/null" 30 || fail "j: dockerd of $h survived the power cut"
	for ns in /run/"$h"/netns/*; do
		[ -e "$ns" ] || continue
		umount "$ns" 2>/dev/null || true
		rm -f "$ns"
	done
	for mnt in $(findmnt -rn -o TARGET | grep -E "^(/var/lib/lab/$h/|/run/$h/)" | sort -r || true); do
		umount -l "$mnt"
	done
	for link in $(ip -n "$h" -o link show | grep -oE 'ipb[dv]?-[0-9a-f]+' || true); do
		ip -n "$h" link del "$link"
	done
	ip -n "$h" route flush proto 201
	ip -n "$h" -6 route flush proto 201
	rm -rf "/run/$h"
}

power_off host2
# Until it is back, leaf2 keeps host2's routes: graceful restart holds them
# for BGP_RESTART_TIME.
router_has leaf2 "$keep/32" via || fail "j: leaf2 dropped host2's routes at once (graceful restart should hold them)"
log_from=$(($(wc -l <"$LAB_LOGS/dockerd-host2.log") + 1))
launch_dockerd host2 host2 --config-file "$(dockerd_config_file host2)"
wait_dockerd host2
wait_for "[ -n \"\$(plugin_pid host2)\" ]" 120 || fail "j: dockerd did not start the plugin after the reboot"
wait_for "[ \"\$(dk host2 inspect -f '{{.State.Running}}' j-keep)\" = true ]" 120 || fail "j: the container with a restart policy was not started again"
keep=$(container_ip host2 j-keep)

wait_for "! router_has leaf2 $dead/32 via" 180 || fail "j: leaf2 still routes the dead container's $dead/32 after the reboot"
# Docker deletes the stale endpoints soon after it starts: the plugin must
# not have announced the dead one in between.
since_boot=$(tail -n "+$log_from" "$LAB_LOGS/dockerd-host2.log")
if echo "$since_boot" | grep 'endpoint announced' | grep -qF "$dead/32"; then
	fail "j: the restarted plugin announced the dead container's $dead/32"
fi
echo "$since_boot" | grep -q "link is in no container" ||
	fail "j: the restarted plugin never said it found a joined endpoint whose link is gone"
pass "j: the dead container's $dead/32 left leaf2 after the reboot: the restarted plugin did not announce it (its link was in no container), graceful restart ended at End-of-RIB"
wait_for "router_has leaf2 $keep/32 via" 120 || fail "j: the restarted container's $keep/32 never reached leaf2"
doc=$(status_json host2)
if echo "$doc" | jq -e --arg d "$dead" '[.endpoints[] | select(any(.addresses[]; startswith($d + "/")))] | length > 0' >/dev/null; then
	fail "j: the plugin still holds the dead container's endpoint: $(echo "$doc" | jq -c .endpoints)"
fi
if echo "$doc" | jq -e --arg d "$dead/32" 'any(.endpoints[].announced[]?, .networks[].announced[]?; startswith($d))' >/dev/null; then
	fail "j: the plugin announces the dead container's $dead/32"
fi
[ -z "$(ipvlan_links host2)" ] || fail "j: ipvlan links left in host2 after the reboot: $(ipvlan_links host2)"
pass "j: after a reboot host2's restarted container $keep is announced, the dead one is not, and no link is left without an owner"
dk host2 rm -f j-keep j-dead >/dev/null
