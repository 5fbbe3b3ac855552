# shellcheck shell=bash
# Containers on one host through Docker, in parallel batches, beside the
# same on Docker's own ipvlan driver in the same run: the time per
# container, the plugin's memory, the time from the last container's start
# to its route at the leaf, every /32 withdrawn after the removal, and the
# plugin's start-up with the endpoints stored. SCALE is 200: every container
# holds a containerd shim, and 1,000 of them do not fit the VM's memory;
# BenchmarkThousandEndpoints runs 1,000 through the plugin's socket.
. /payload/scenarios/fabric.sh
. /payload/scenarios/checks.sh

SCALE=${SCALE:-200}
PARALLEL=${PARALLEL:-20}
fabric_up frr host2
hosts_up host2
plugin_publish host2
plugin_install host2 $(host2_settings)
wait_for "vtysh_ns leaf2 'show bgp neighbors 10.0.2.1 json' | jq -e '.[\"10.0.2.1\"].bgpState == \"Established\"'" 90 ||
	fail "scale: host2's session to leaf2 did not come up"
dk host2 network create -d "$PLUGIN" --ipam-driver "$PLUGIN" --subnet 10.247.0.0/20 -o parent=eth0 scale >/dev/null
dk host2 network create -d ipvlan -o ipvlan_mode=l3 --subnet 10.248.0.0/20 docker-ipvlan >/dev/null

# many NETWORK PREFIX: start SCALE containers on NETWORK, PARALLEL at a
# time; prints the milliseconds it took.
many() {
	local start
	start=$(now_ms)
	seq "$SCALE" | xargs -P "$PARALLEL" -I{} docker -H "unix://$(_dk_sock host2)" run -d --name "$2{}" --net "$1" busybox sleep 86400 >/dev/null
	echo $(($(now_ms) - start))
}

# remove PREFIX: remove the SCALE containers named PREFIX*; prints ms.
remove() {
	local start
	start=$(now_ms)
	seq "$SCALE" | xargs -P "$PARALLEL" -I{} docker -H "unix://$(_dk_sock host2)" rm -f "$1{}" >/dev/null
	echo $(($(now_ms) - start))
}

leaf_routes() { ip -n leaf2 route show root 10.247.0.0/20 | grep -c . || true; }

docker_ms=$(many docker-ipvlan d)
lab_log "scale: $SCALE containers on Docker's ipvlan driver in $docker_ms ms"
plugin_ms=$(many scale p)
last_started=$(now_ms)
lab_log "scale: $SCALE containers on ipvlan-bgp in $plugin_ms ms"
wait_for "[ \"\$(leaf_routes)\" -ge $SCALE ]" 600 || fail "scale: leaf2 holds $(leaf_routes) of $SCALE container routes"
to_leaf=$(($(now_ms) - last_started))
rss=$(awk '/VmRSS/ {print $2}' "/proc/$(plugin_pid host2)/status")
lab_log "scale: every /32 at leaf2 $to_leaf ms after the last docker run returned; the plugin's RSS with $SCALE endpoints: $((rss / 1024)) MB"

# Start-up with SCALE endpoints stored: kill it, Docker starts it again,
# its log says when it listened and when it was ready.
old=$(plugin_pid host2)
kill -KILL "$old"
wait_for "[ -n \"\$(plugin_pid host2)\" ] && [ \"\$(plugin_pid host2)\" != $old ]" 120 || fail "scale: Docker did not restart the plugin"
wait_for "grep -q 'ready: state restored' $LAB_LOGS/dockerd-host2.log && [ \$(grep -c 'ready: state restored' $LAB_LOGS/dockerd-host2.log) -ge 2 ]" 120 ||
	fail "scale: the restarted plugin never said it was ready"
startup=$(grep 'ready: state restored' "$LAB_LOGS/dockerd-host2.log" | tail -1 | grep -oE 'after=[^ ]+' | head -1)
listening=$(grep 'listening for Docker' "$LAB_LOGS/dockerd-host2.log" | tail -1 | grep -oE 'after=[^ ]+' | head -1)
lab_log "scale: start-up with $SCALE endpoints stored: listening $listening, ready $startup"

p_rm=$(remove p)
d_rm=$(remove d)
wait_for "[ \"\$(leaf_routes)\" -eq 0 ]" 600 || fail "scale: leaf2 still holds $(leaf_routes) routes after the removal"
[ -z "$(ipvlan_links host2)" ] || fail "scale: ipvlan links left: $(ipvlan_links host2 | head)"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
{
	echo "containers: $SCALE, $PARALLEL at a time"
	echo "docker run, per container: ipvlan-bgp $((plugin_ms / SCALE)) ms, Docker's ipvlan $((docker_ms / SCALE)) ms ($(ratio "$plugin_ms" "$docker_ms")x)"
	echo "docker rm -f, per container: ipvlan-bgp $((p_rm / SCALE)) ms, Docker's ipvlan $((d_rm / SCALE)) ms ($(ratio "$p_rm" "$d_rm")x)"
	echo "last route at leaf2 after the last docker run: $to_leaf ms"
	echo "plugin RSS with $SCALE endpoints: $((rss / 1024)) MB"
	echo "start-up with $SCALE endpoints stored: listening $listening, ready $startup"
} | tee /payload-out/scale.txt
pass "scale: $SCALE containers announced and withdrawn; figures above"
