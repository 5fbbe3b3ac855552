# shellcheck shell=bash
# Scenario swarm: Docker Swarm on three hosts of the fabric, host1 the
# manager, host2 and host3 workers joined over the management bridge. Every
# node runs swarm/node.sh (the config-only network), the manager
# swarm/manager.sh (the swarm network, a global and a replicated service,
# both dnsrr): the files docs/swarm.md quotes. Each task gets an address of
# its own host's block, is announced to both leaves and reachable across the
# fabric; DNS names the tasks; scaling, a rolling restart and a drained node
# announce and withdraw the right routes while the others never leave the
# leaves (polled every 100 ms). Swarm refuses live restore: the nodes'
# dockerds reload their daemon.json without it, and with it again at the end.

SW_NODES="host1 host2 host3"
SW_BOXES="leaf1 leaf2"
SW_T0=$(now_ms)
# sw_on HOST CMD...: CMD with the docker CLI pointed at HOST, as a
# user's shell on that node would be.
sw_on() {
	local h=$1
	shift
	DOCKER_HOST="unix:///run/$h/docker.sock" "$@"
}

# sw_tasks SERVICE [HOST...]: "HOST CONTAINER ADDRESS" for each running task
# of SERVICE on the nodes (all by default).
sw_tasks() {
	local svc=$1 h c
	shift
	local -a hosts=("$@")
	[ ${#hosts[@]} -gt 0 ] || read -r -a hosts <<<"$SW_NODES"
	for h in "${hosts[@]}"; do
		for c in $(dk "$h" ps -q --filter "label=com.docker.swarm.service.name=$svc" --filter status=running); do
			echo "$h $c $(dk "$h" inspect -f '{{with index .NetworkSettings.Networks "apps"}}{{.IPAddress}}{{end}}' "$c")"
		done
	done
}
sw_count() { sw_tasks "$@" | awk '$3 != ""' | wc -l; }
sw_addrs() { sw_tasks "$@" | awk '{print $3}'; }
# sw_running SERVICE N: the manager and the nodes agree that SERVICE has
# settled on N tasks: N tasks are meant to run (the history rows Swarm keeps
# of replaced tasks are meant to be shut down, and not counted), each in state
# Running, and N containers of it run with an address on apps.
sw_running() {
	local states
	states=$(dk host1 service ps --filter desired-state=running --format '{{.CurrentState}}' "$1") || return 1
	[ "$(grep -c . <<<"$states")" = "$2" ] && ! grep -qv '^Running' <<<"$states" && [ "$(sw_count "$1")" = "$2" ]
}
# sw_update_state SERVICE: the state of the service's last update (empty
# before its first).
sw_update_state() { dk host1 service inspect -f '{{with .UpdateStatus}}{{.State}}{{end}}' "$1"; }
# sw_report: what the manager knows of the services, for a failure message.
sw_report() {
	echo "api's update: $(dk host1 service inspect -f '{{with .UpdateStatus}}{{.State}}: {{.Message}}{{end}}' api)"
	dk host1 service ps web api
}
# sw_announced ADDRESS...: both leaves route every address.
sw_announced() {
	local a box
	for a in "$@"; do
		for box in $SW_BOXES; do router_has "$box" "$a/32" via || return 1; done
	done
}
sw_withdrawn() {
	local a box
	for a in "$@"; do
		for box in $SW_BOXES; do ! router_has "$box" "$a/32" . || return 1; done
	done
}
# sw_block HOST: the host's block of 10.244.0.0/16 (IPAM_LOCAL_RANGES).
sw_block() { echo "10.244.${1#host}."; }
# sw_in_blocks FILE: every task in FILE (sw_tasks' lines) has an address of
# its own host's block.
sw_in_blocks() {
	local h c a
	while read -r h c a; do
		case $a in "$(sw_block "$h")"*) ;; *) fail "swarm: task $c on $h got '$a', outside $h's block $(sw_block "$h")0/24" ;; esac
	done <"$1"
}
# sw_log_mark HOST: where the host's dockerd log ends now (the plugin logs
# into it); sw_since HOST: the lines after the mark.
sw_log_mark() { wc -l <"$LAB_LOGS/dockerd-$1.log"; }
sw_since() { tail -n +"$((sw_mark[$1] + 1))" "$LAB_LOGS/dockerd-$1.log"; }

# sw_refused NAME 'EXPECTED' CMD...: CMD fails with EXPECTED in its error.
sw_refused() {
	local name=$1 want=$2 out
	shift 2
	if out=$("$@" 2>&1); then fail "swarm: $name: '$*' was accepted: $out"; fi
	grep -qF -- "$want" <<<"$out" || fail "swarm: $name: '$*' failed otherwise than with '$want': $out"
	pass "swarm: $name: refused with: $(grep -F -- "$want" <<<"$out" | head -1)"
}
# sw_dns HOST CONTAINER NAME: the IPv4 addresses the container's resolver
# gives for NAME, sorted.
sw_dns() {
	dk "$1" exec "$2" nslookup "$3" 2>/dev/null | awk '/^Name:/ {n=1} n && /^Address/ {print $NF}' | grep -E '^[0-9.]+$' | sort
}
# sw_resolves HOST CONTAINER NAME FILE: from the container, NAME resolves
# to the addresses of the tasks in FILE (sw_tasks' lines), no more, no less.
sw_resolves() {
	local want
	want=$(awk '{print $3}' "$4" | sort | xargs)
	[ -n "$want" ] || fail "swarm: no task to resolve $3 to"
	wait_for "[ \"\$(sw_dns $1 $2 $3 | xargs)\" = '$want' ]" 60 ||
		fail "swarm: '$3' from $2 on $1 resolves to '$(sw_dns "$1" "$2" "$3" | xargs)', want '$want'"
}

# ---- preparation: live restore off (swarm mode refuses it); the subnet is free ----
# The fabric network all.sh made holds 10.244.0.0/16 on every host; the swarm
# network takes the same subnet (so each host's IPAM_LOCAL_RANGES block
# applies), and fabric comes back at the end. Live restore goes off as an
# operator turns it off: in daemon.json, and a reload. host4 keeps it, and
# shows what Swarm answers.
prep=()
for h in $SW_NODES; do prep+=("dk $h network rm fabric >/dev/null && live_restore $h false"); done
in_parallel "${prep[@]}"
sw_refused live-restore '--live-restore daemon configuration is incompatible with swarm mode' \
	dk host4 swarm init --advertise-addr 192.168.100.14
declare -A sw_mark
for h in $SW_NODES; do sw_mark[$h]=$(sw_log_mark "$h"); done
t_prep=$(($(now_ms) - SW_T0))
pass "swarm: fabric network removed, live restore off on host1-host3 by a reload of daemon.json, no restart (${t_prep} ms)"

# ---- the swarm: host1 manager, host2 and host3 join over the management bridge ----
t0=$(now_ms)
dk host1 swarm init --advertise-addr 192.168.100.11 >/dev/null
token=$(dk host1 swarm join-token -q worker)
# sw_join HOST: the node joins as a worker. On a loaded machine the CLI
# can give up first ("Timeout was reached before node joined. The attempt to
# join the swarm will continue in the background", seen in the lab); that
# answer alone is taken, and the wait for Ready nodes below decides.
sw_join() {
	local out
	out=$(dk "$1" swarm join --token "$token" --advertise-addr "192.168.100.1${1#host}" 192.168.100.11:2377 2>&1) && return
	grep -qF 'The attempt to join the swarm will continue in the background' <<<"$out" ||
		fail "swarm: $1 could not join: $out"
	echo "$1: $out"
}
in_parallel "sw_join host2" "sw_join host3"
wait_for "[ \$(dk host1 node ls -q --filter role=worker | wc -l) = 2 ] && ! dk host1 node ls --format '{{.Status}}' | grep -vq Ready" 300 ||
	fail "swarm: the workers are not Ready: $(dk host1 node ls)"
declare -A sw_node
for h in $SW_NODES; do sw_node[$h]=$(dk "$h" info -f '{{.Swarm.NodeID}}'); done
t_swarm=$(($(now_ms) - t0))
pass "swarm: host1 manager, host2 and host3 workers, all Ready (${t_swarm} ms; gossip over 192.168.100.0/24)"
# The engine tells a driver of global connectivity scope of the swarm's
# nodes (DiscoverNew): each node's plugin is told of itself, at its
# advertised address.
others=()
for h in $SW_NODES; do
	wait_for "sw_since $h | grep -q 'swarm node discovered.* node=192.168.100.1${h#host} self=true'" 60 ||
		fail "swarm: $h's plugin was not told of its own node: $(sw_since "$h" | grep -F 'swarm node' | head -3)"
	others+=("$h $(sw_since "$h" | grep -F 'swarm node discovered' | grep -cv 'self=true' || true)")
done
pass "swarm: every node's plugin got DiscoverNew for its own node; of the others (node: notifications): ${others[*]}"

# ---- the network and the services, from the files docs/swarm.md quotes ----
t0=$(now_ms)
nodes=()
for h in $SW_NODES; do nodes+=("sw_on $h sh /payload/scenarios/swarm/node.sh >/dev/null"); done
in_parallel "${nodes[@]}"
for h in $SW_NODES; do
	[ "$(status_json "$h" | jq '.networks | length')" = 0 ] || fail "swarm: a --config-only network reached $h's plugin"
done
pass "swarm: node.sh on every node: apps-config is local to each and made no plugin call (the plugin holds no network)"
sw_on host1 sh /payload/scenarios/swarm/manager.sh >/tmp/sw-manager.out 2>&1 || fail "swarm: manager.sh failed: $(cat /tmp/sw-manager.out)"
t_create=$(($(now_ms) - t0))
# Beside the files, a service in VIP mode (the default, without
# --endpoint-mode dnsrr), for what Swarm does with it below; its task starts
# with the others.
dk host1 service create --detach --init --name vip --network apps busybox sleep 86400 >/dev/null 2>&1 ||
	fail "swarm: a VIP-mode service on the network was refused"
wait_for "sw_running web 3 && sw_running api 2 && sw_running vip 1" 420 ||
	fail "swarm: tasks not running after 420 s: web $(sw_count web)/3, api $(sw_count api)/2, vip $(sw_count vip)/1: $(dk host1 service ps --no-trunc web api vip)"
t_tasks=$(($(now_ms) - t0))
sw_tasks web >/tmp/sw-web
sw_tasks api >/tmp/sw-api
sw_tasks vip >/tmp/sw-vip
cat /tmp/sw-web /tmp/sw-api /tmp/sw-vip
[ "$(awk '{print $1}' /tmp/sw-web | sort | xargs)" = "$SW_NODES" ] || fail "swarm: web's tasks are not one on each node: $(cat /tmp/sw-web)"
while read -r h c _; do
	[ "$(dk "$h" inspect -f '{{len .NetworkSettings.Networks}}' "$c")" = 1 ] ||
		fail "swarm: task $c on $h has other networks besides apps: $(dk "$h" inspect -f '{{json .NetworkSettings.Networks}}' "$c" | jq -c keys)"
done < <(cat /tmp/sw-web /tmp/sw-api /tmp/sw-vip)
cat /tmp/sw-web /tmp/sw-api /tmp/sw-vip >/tmp/sw-all
sw_in_blocks /tmp/sw-all
pass "swarm: web runs on all 3 nodes, api on 2, vip on 1; every task has one interface, an address of its own host's block"
# shellcheck disable=SC2046
wait_for "sw_announced $(awk '{print $3}' /tmp/sw-all | xargs)" 60 ||
	fail "swarm: not every task's /32 reached leaf1 and leaf2"
t_routes=$(($(now_ms) - t0))
read -r h c _ < <(grep '^host1 ' /tmp/sw-web)
a6=$(dk "$h" inspect -f '{{with index .NetworkSettings.Networks "apps"}}{{.GlobalIPv6Address}}{{end}}' "$c")
case $a6 in fd00:244:0:1:*) ;; *) fail "swarm: host1's web task has IPv6 '$a6', not from host1's block fd00:244:0:1::/64" ;; esac
wait_for "ip -n leaf2 -6 route show $a6/128 | grep -q . && ip -n leaf1 -6 route show $a6/128 | grep -q ." 60 ||
	fail "swarm: host1's web task's $a6/128 never reached the leaves"
pass "swarm: every task's /32 (and host1's web task's $a6/128) on leaf1 and leaf2: ${t_create} ms to create the network and services, all tasks running after ${t_tasks} ms, routed at both leaves after ${t_routes} ms"

# ---- reachable across the fabric, from a task on another host ----
# sw_from HOST: a web task on a host other than HOST, behind leaf1 (host1's,
# or host2's for host1's tasks). host3 is dual-homed with eth0 (leaf1) as the
# parent: leaf2 sends traffic for host3's containers to eth1, where it stops
# (docs/operations.md, dual-homed hosts), so nothing behind leaf2 reaches them.
sw_from() {
	local from=host1
	[ "$1" != host1 ] || from=host2
	awk -v h="$from" '$1 == h {print $1, $2; exit}' /tmp/sw-web
}
pings=()
while read -r h c a; do
	read -r ph pc < <(sw_from "$h")
	pings+=("dk $ph exec $pc ping -c 2 -W 2 $a >/dev/null || fail 'swarm: a task on $ph cannot ping $a (a task on $h)'")
done < <(cat /tmp/sw-web /tmp/sw-api)
read -r ph pc < <(sw_from host1)
pings+=("dk $ph exec $pc ping -6 -c 2 -W 2 $a6 >/dev/null || fail 'swarm: a task on $ph cannot ping $a6 on host1 over IPv6'")
in_parallel "${pings[@]}"
read -r h c a < <(grep '^host1 ' /tmp/sw-web)
page=$(dk "$ph" exec "$pc" wget -q -T 5 -O - "http://$a/") || fail "swarm: HTTP from $ph to host1's web task failed"
[ "$page" = "$(dk host1 inspect -f '{{.Config.Hostname}}' "$c")" ] || fail "swarm: http://$a/ answered '$page', not host1's task"
pass "swarm: every task answers a ping from a task on another host (and over IPv6), and http://$a/ the hostname of host1's task"

# ---- DNS: dnsrr names the tasks ----
# Asked from host1's web task, which reaches every host's tasks (sw_from).
read -r ph pc _ < <(grep '^host1 ' /tmp/sw-web)
sw_resolves "$ph" "$pc" tasks.api /tmp/sw-api
sw_resolves "$ph" "$pc" api /tmp/sw-api
sw_resolves "$ph" "$pc" tasks.web /tmp/sw-web
for a in $(sw_dns "$ph" "$pc" api); do
	dk "$ph" exec "$pc" ping -c 1 -W 2 "$a" >/dev/null || fail "swarm: $a, resolved from the name api, does not answer"
done
pass "swarm: from host1's web task, tasks.api and api resolve to both api tasks, tasks.web to the 3 web tasks on 3 hosts, and they answer"

# ---- what Swarm refuses or leaves out on this network ----
# The network's settings come from the config-only network alone.
sw_refused config-from-ipv4 'user specified configurations are not supported if the network depends on a configuration network' \
	dk host1 network create -d "$PLUGIN" --scope swarm --config-from apps-config --ipv4=false apps-v6
sw_refused config-from-subnet 'user specified configurations are not supported if the network depends on a configuration network' \
	dk host1 network create -d "$PLUGIN" --scope swarm --config-from apps-config --subnet 10.246.0.0/16 apps-sub
sw_refused config-from-opt 'network driver options are not supported if the network depends on a configuration network' \
	dk host1 network create -d "$PLUGIN" --scope swarm --config-from apps-config -o parent=eth1 apps-opt
# An IPv6-only configuration is accepted as a config-only network, but no
# swarm network can take it.
dk host1 network create --config-only --ipv4=false --ipv6 --ipam-driver "$PLUGIN" --subnet fd00:245::/48 -o parent=eth0 v6-config >/dev/null ||
	fail "swarm: an IPv6-only config-only network was refused"
sw_refused ipv6-only 'IPv4 cannot be disabled in a Swarm scoped network' \
	dk host1 network create -d "$PLUGIN" --scope swarm --config-from v6-config apps-v6
dk host1 network rm v6-config >/dev/null
# No load balancer: published ports need the ingress network's VIPs.
sw_refused publish "port published with ingress mode can't be used with dnsrr mode" \
	dk host1 service create --detach --name pub --endpoint-mode dnsrr --publish 8080:80 --network apps busybox sleep 86400
# Without --endpoint-mode dnsrr (VIP mode) the service runs, but Swarm
# allocates it no virtual IP on this network: its name resolves to its
# task's address, as with dnsrr.
vips=$(dk host1 service inspect -f '{{json .Endpoint}}' vip)
jq -e '.Spec.Mode == "vip" and (.VirtualIPs | length) == 1' <<<"$vips" >/dev/null || fail "swarm: the VIP-mode service's endpoint is not VIP mode with one entry, for apps: $vips"
[ "$(jq -r '[.VirtualIPs[] | .Addr // empty] | length' <<<"$vips")" = 0 ] || fail "swarm: the VIP-mode service got a virtual IP: $vips"
vips=$(jq -c .VirtualIPs <<<"$vips")
sw_resolves "$ph" "$pc" vip /tmp/sw-vip
pass "swarm: a service without --endpoint-mode dnsrr runs, with no virtual IP ($vips); its name resolves to its task's address"
dk host1 service rm vip >/dev/null
# Attachable: a container started by hand on a worker joins the swarm network.
dk host2 run -d --name sw-standalone --net apps busybox sleep 86400 >/dev/null || fail "swarm: docker run --net apps on a worker failed"
sa=$(dk host2 inspect -f '{{with index .NetworkSettings.Networks "apps"}}{{.IPAddress}}{{end}}' sw-standalone)
case $sa in 10.244.2.*) ;; *) fail "swarm: the standalone container on host2 got '$sa'" ;; esac
wait_for "sw_announced $sa" 60 || fail "swarm: the standalone container's $sa/32 never reached the leaves"
read -r h c a < <(grep '^host1 ' /tmp/sw-web)
dk host2 exec sw-standalone ping -c 2 -W 2 "$a" >/dev/null || fail "swarm: the standalone container cannot ping host1's web task $a"
sw_resolves host2 sw-standalone tasks.web /tmp/sw-web
dk host2 rm -f sw-standalone >/dev/null
wait_for "sw_withdrawn $sa" 60 || fail "swarm: the standalone container's $sa/32 stayed on the leaves after docker rm"
pass "swarm: --attachable: a container run by hand on host2 got $sa, was announced, reached host1's web task, resolved tasks.web, and was withdrawn on docker rm"

# ---- a rolling restart, scaling and a drained node: new tasks announced, old withdrawn, the rest stay ----
# The web tasks of host1 and host2 are watched until the end.
steady=$(grep -v '^host3 ' /tmp/sw-web | awk '{print $3}' | xargs)
# shellcheck disable=SC2086
steady_w=$(watch_prefixes /tmp/sw-steady "$SW_BOXES" $steady)

# sw_phase NAME NEW GONE CMD...: run CMD while watching the routes of api's
# tasks and of host3's web task; wait until the services settle (SW_WAIT);
# then NEW tasks must have come and GONE gone, every task with an address of
# its host's block, the new ones announced at both leaves, the gone ones
# withdrawn, and the kept ones never left either leaf.
sw_phase() {
	local name=$1 want_new=$2 want_gone=$3 before after new gone kept w t0 t_cmd t_conv lost
	shift 3
	before=$(sw_addrs api; sw_addrs web host3)
	# shellcheck disable=SC2086
	w=$(watch_prefixes "/tmp/sw-$name" "$SW_BOXES" $before)
	t0=$(now_ms)
	"$@" >/dev/null || fail "swarm: $name: '$*' failed"
	t_cmd=$(($(now_ms) - t0))
	wait_for "$SW_WAIT" 420 || fail "swarm: $name: the services did not settle within 420 s: $(sw_report)"
	sw_tasks api >/tmp/sw-api
	sw_tasks web >/tmp/sw-web
	sw_in_blocks /tmp/sw-api
	after=$(awk '{print $3}' /tmp/sw-api; awk '$1 == "host3" {print $3}' /tmp/sw-web)
	new=$(comm -13 <(echo "$before" | sort) <(echo "$after" | sort) | xargs)
	gone=$(comm -23 <(echo "$before" | sort) <(echo "$after" | sort) | xargs)
	kept=$(comm -12 <(echo "$before" | sort) <(echo "$after" | sort) | xargs)
	if [ "$(wc -w <<<"$new")" != "$want_new" ] || [ "$(wc -w <<<"$gone")" != "$want_gone" ]; then
		fail "swarm: $name: $want_new new and $want_gone gone tasks expected, got new [$new], gone [$gone]"
	fi
	# shellcheck disable=SC2086
	wait_for "sw_announced $new && sw_withdrawn $gone" 60 ||
		fail "swarm: $name: new ($new) not announced or gone ($gone) not withdrawn at the leaves"
	t_conv=$(($(now_ms) - t0))
	stop_bg TERM "$w"
	# shellcheck disable=SC2086
	lost=$(watch_losses "/tmp/sw-$name" $kept)
	[ -z "$lost" ] || fail "swarm: $name: a running task's route left a leaf: $(echo "$lost" | head -5)"
	pass "swarm: $name: '$*' returned in ${t_cmd} ms; new [$new] announced and gone [$gone] withdrawn at both leaves after ${t_conv} ms; kept [$kept] never left them (polled every 100 ms)"
	echo "swarm_${name}_cmd_ms=$t_cmd swarm_${name}_converged_ms=$t_conv" >>/payload-out/timings.txt
}
# A rolling restart (one task at a time, the old one stopped first): the
# update completes and both api tasks are new ones.
old_api=$(sw_addrs api | sort)
SW_WAIT="[ \"\$(sw_update_state api)\" = completed ] && sw_running api 2"
sw_phase rolling-restart 2 2 dk host1 service update --detach --force api
[ -z "$(comm -12 <(echo "$old_api") <(sw_addrs api | sort))" ] || fail "swarm: rolling-restart: some api task was not replaced"
SW_WAIT="sw_running api 4"
sw_phase scale-up 2 0 dk host1 service scale --detach api=4
SW_WAIT="sw_running api 2"
sw_phase scale-down 0 2 dk host1 service scale --detach api=2

# ---- a drained node: its tasks go, their routes with them ----
# Its api tasks start again on the other nodes, with addresses of theirs.
k=$(sw_count api host3)
SW_WAIT="sw_running api 2 && sw_running web 2 && [ \$(sw_count api host3) = 0 ] && [ \$(sw_count web host3) = 0 ]"
sw_phase drain-host3 "$k" $((k + 1)) dk host1 node update --availability drain "${sw_node[host3]}"

# ---- teardown: nothing left behind ----
stop_bg TERM "$steady_w"
# shellcheck disable=SC2086
lost=$(watch_losses /tmp/sw-steady $steady)
[ -z "$lost" ] || fail "swarm: host1's or host2's web task's route left a leaf: $(echo "$lost" | head -5)"
pass "swarm: host1's and host2's web tasks [$steady] never left leaf1 or leaf2 through the rolling restart, the scaling and the drain (polled every 100 ms)"
all=$({ sw_addrs web; sw_addrs api; } | xargs)
t0=$(now_ms)
dk host1 service rm web api >/dev/null
wait_for "[ \$(sw_count web) = 0 ] && [ \$(sw_count api) = 0 ]" 120 || fail "swarm: tasks still running after docker service rm"
# shellcheck disable=SC2086
wait_for "sw_withdrawn $all" 60 || fail "swarm: routes of removed tasks stayed on the leaves"
for h in $SW_NODES; do
	wait_for "status_json $h | jq -e '(.networks | length) == 0 and (.endpoints | length) == 0 and (.pools | length) == 0'" 60 ||
		fail "swarm: $h's plugin still holds: $(status_json "$h" | jq -c '{networks, endpoints, pools}')"
	[ -z "$(ipvlan_links "$h")" ] || fail "swarm: ipvlan links left on $h: $(ipvlan_links "$h")"
done
t_rm=$(($(now_ms) - t0))
pass "swarm: docker service rm: every route withdrawn, and on each node the plugin dropped the network, its endpoints and pools (no address allocated), no link left (${t_rm} ms)"
# The plugin logs every call it answers with an error ("call failed").
for h in $SW_NODES; do
	failed=$(sw_since "$h" | grep 'call failed' || true)
	[ -z "$failed" ] || fail "swarm: $h's plugin answered a call of Swarm's with an error: $(echo "$failed" | head -3)"
done
pass "swarm: no call of the engines' to the plugins failed on any node"

# A swarm network made without a config-only network: Docker takes it but
# drops its -o, --subnet and --ipam-driver (the driver is local-scope), so a
# node would get an internal network, its tasks unreachable and numbered
# alike everywhere. The plugin refuses it where a task starts, the task fails
# with why, and nothing is left on any node.
dk host1 network create -d "$PLUGIN" --scope swarm --ipam-driver "$PLUGIN" --subnet 10.247.0.0/16 -o parent=eth0 noconf >/dev/null ||
	fail "swarm: docker network create refused a swarm network without --config-from"
noconf_id=$(dk host1 network inspect -f '{{.ID}}' noconf)
dk host1 service create --detach --init --name noconf --endpoint-mode dnsrr --network noconf busybox sleep 86400 >/dev/null ||
	fail "swarm: a service on a swarm network without --config-from was refused at creation"
noconf_err() { dk host1 service ps --no-trunc --format '{{.Error}}' noconf | grep -F 'a swarm network needs one' | head -1; }
wait_for '[ -n "$(noconf_err)" ]' 120 || fail "swarm: no task of a service on a swarm network without --config-from failed with the plugin's reason: $(dk host1 service ps --no-trunc noconf)"
err=$(noconf_err)
dk host1 service rm noconf >/dev/null
dk host1 network rm noconf >/dev/null
for h in $SW_NODES; do
	wait_for "! status_json $h | jq -e --arg id $noconf_id '.networks[] | select(.id == \$id)'" 60 ||
		fail "swarm: $h's plugin holds the refused network"
	! ip -n "$h" -o link show | grep -q ' ipbd-' || fail "swarm: a dummy parent was left on $h: $(ip -n "$h" -o link show | grep ' ipbd-')"
done
pass "swarm: a swarm network without --config-from: the task fails with '$err'; nothing left on any node"

dk host1 network rm apps >/dev/null
for h in host3 host2; do dk "$h" swarm leave >/dev/null; done
dk host1 swarm leave --force >/dev/null
gone=()
for h in $SW_NODES; do gone+=("$h $(sw_since "$h" | grep -cF 'swarm node gone' || true)"); done
lab_log "swarm: DiscoverDelete notifications after the nodes left (node: count): ${gone[*]}"
for h in $SW_NODES; do dk "$h" network rm apps-config >/dev/null; done

# ---- back to what the other scenarios expect ----
restore=()
for h in $SW_NODES; do restore+=("live_restore $h true && net_create $h fabric"); done
in_parallel "${restore[@]}"
wait_sessions
echo "swarm_prep_ms=$t_prep swarm_join_ms=$t_swarm swarm_create_ms=$t_create swarm_tasks_ms=$t_tasks swarm_routes_ms=$t_routes swarm_rm_ms=$t_rm swarm_total_ms=$(($(now_ms) - SW_T0))" >>/payload-out/timings.txt
pass "swarm: done in $(($(now_ms) - SW_T0)) ms; the nodes left the swarm, live restore back on, fabric network re-created"
