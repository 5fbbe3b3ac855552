#!/bin/bash
# The demo (`make demo`): the seed's story end to end. Two Docker hosts on two
# leaves of a spine/leaf BGP fabric install ipvlan-bgp from a registry, create
# the same routed network, and their containers reach each other across the
# fabric because each host announces its containers' addresses the moment they
# start.
set -euo pipefail
. /lab/lib.sh
. /payload/scenarios/fabric.sh

banner() { printf '\n==== %s ====\n' "$*"; }

banner "fabric: 2 spines, 2 leaves (FRR), 2 Docker hosts"
fabric_up frr
hosts_up host1 host2
plugin_publish host1
# shellcheck disable=SC2046
plugin_install host1 $(host1_settings)
# shellcheck disable=SC2046
plugin_install host2 $(host2_settings)
dk host1 plugin ls

banner "BGP sessions at leaf1"
wait_for "vtysh_ns leaf1 'show bgp neighbors swp1 json' | jq -e '.swp1.bgpState == \"Established\"'" 90 ||
	fail "host1's unnumbered session to leaf1 did not come up"
wait_for "vtysh_ns leaf2 'show bgp neighbors 10.0.2.1 json' | jq -e '.[\"10.0.2.1\"].bgpState == \"Established\"'" 90 ||
	fail "host2's session to leaf2 did not come up"
vtysh_ns leaf1 "show bgp summary"

banner "the same network on both hosts: docker network create -d ipvlan-bgp:latest --subnet 10.244.0.0/16 ..."
net_create host1 fabric
net_create host2 fabric
dk host1 network ls --filter driver=ipvlan-bgp:latest

banner "a container on each host"
dk host1 run -d --name web --net fabric busybox \
	sh -c 'mkdir /www && echo "hello from a container on host1" >/www/index.html && exec httpd -f -p 80 -h /www' >/dev/null
dk host2 run -d --name client --net fabric busybox sleep 3600 >/dev/null
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
