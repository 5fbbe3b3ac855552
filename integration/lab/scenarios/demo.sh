#!/bin/bash
# The demo (`make demo`): the seed's story end to end. Two Docker hosts on two
# leaves of a spine/leaf BGP fabric install ipvlan-bgp from a registry, create
# the same routed network, and their containers reach each other across the
# fabric because each host announces its containers' addresses the moment they
# start.
set -euo pipefail
. /lab/lib.sh
. /payload/scenarios/fabric.sh

banner() { printf '\n==== %s ==== [%ss]\n' "$*" "$(cut -d' ' -f1 /proc/uptime)"; }

# peers_established NS: every BGP neighbour of NS's FRR is Established (both
# families; the leaves forgot the neighbours of hosts the demo does not start).
peers_established() {
	vtysh_ns "$1" 'show bgp summary json' |
		jq -e '[.[].peers // {} | to_entries[] | .value.state] | length > 0 and all(. == "Established")' >/dev/null
}

banner "fabric: 2 spines, 2 leaves (FRR), 2 Docker hosts"
# Everything slow is started at once and waited for once: the two dockerds
# first, then the four routers and the registry while they come up.
fabric_up frr host1 host2
lab_log "step: routers and registry up"
hosts_up host1 host2
lab_log "step: dockerds up, busybox imported"
plugin_publish host1
lab_log "step: plugin published"
in_parallel "plugin_install host1 $(host1_settings)" "plugin_install host2 $(host2_settings)"
lab_log "step: plugin installed on both hosts"
dk host1 plugin ls

banner "the same network on both hosts: docker network create -d ipvlan-bgp:latest --subnet 10.244.0.0/16 ..."
in_parallel "net_create host1 fabric" "net_create host2 fabric"
dk host1 network ls --filter driver=ipvlan-bgp:latest

banner "BGP sessions at leaf1 and leaf2"
wait_for "peers_established leaf1 && peers_established leaf2" 90 || {
	vtysh_ns leaf1 "show bgp summary"
	vtysh_ns leaf2 "show bgp summary"
	fail "not every session of leaf1 and leaf2 came up"
}
vtysh_ns leaf1 "show bgp summary"
vtysh_ns leaf2 "show bgp summary"

banner "a container on each host"
in_parallel \
	"dk host1 run -d --name web --net fabric busybox sh -c 'mkdir /www && echo \"hello from a container on host1\" >/www/index.html && exec httpd -f -p 80 -h /www' >/dev/null" \
	"dk host2 run -d --name client --net fabric busybox sleep 3600 >/dev/null"
web=$(container_ip host1 web)
client=$(container_ip host2 client)
echo "web on host1: $web   client on host2: $client"
wait_for "router_has leaf2 $web/32 via" 30 || fail "leaf2 never learned $web/32"

banner "leaf1's routes to containers (learned from host1 over BGP)"
vtysh_ns leaf1 "show ip route 10.244.0.0/16 longer-prefixes"
banner "leaf2's kernel: ECMP over both spines to reach host1's container"
ip -n leaf2 route show "$web"

banner "ping across the fabric: client (host2) -> web (host1)"
dk host2 exec client ping -c 3 "$web" || fail "ping across the fabric failed"
banner "traceroute: leaf2, a spine, leaf1"
dk host2 exec client traceroute -n -w 1 -q 1 "$web" || true
banner "HTTP across the fabric"
page=$(dk host2 exec client wget -q -O - "http://$web/") || fail "HTTP across the fabric failed"
[ "$page" = "hello from a container on host1" ] || fail "HTTP across the fabric returned '$page'"
echo "host2's container fetched http://$web/: $page"

banner "docker rm -f web: the route is withdrawn everywhere"
dk host1 rm -f web >/dev/null
wait_for "! router_has leaf2 $web/32 via" 30 || fail "leaf2 still routes $web/32 after docker rm"
echo "leaf2 no longer routes $web/32"
pass "demo: containers on two hosts reached each other across the BGP fabric"
