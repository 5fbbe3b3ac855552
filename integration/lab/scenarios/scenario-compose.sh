# shellcheck shell=bash
# Scenario compose: compose/compose.yaml (the file docs/swarm.md quotes), an
# ipvlan-bgp network declared in YAML, brought up and down with Docker
# Compose on host1, then on host1 and host2 with the same file: each host's
# container gets an address of its own block, is announced to the leaves and
# reachable across the fabric, and `docker compose down` leaves no route, no
# allocated address and no link behind.

CP_FILE=/payload/scenarios/compose/compose.yaml
CP_T0=$(now_ms)
# compose HOST ARGS...: Docker Compose against HOST's dockerd. Debian ships
# Compose v2 as the docker-compose command; the CLI plugin
# (`docker compose`) is the same program.
if command -v docker-compose >/dev/null; then CP_CMD=(docker-compose); else CP_CMD=(docker compose); fi
# Only the newest suite's image carries Compose (image.sh): elsewhere the
# scenario says it did not run, and passes nothing.
if ! "${CP_CMD[@]}" version >/dev/null 2>&1; then
	lab_log "compose: not run: this suite's image has no Docker Compose (the lab installs Debian's docker-compose from trixie on)"
	return 0
fi
compose() {
	local h=$1
	shift
	DOCKER_HOST="unix:///run/$h/docker.sock" "${CP_CMD[@]}" -f "$CP_FILE" "$@"
}
lab_log "compose: $("${CP_CMD[@]}" version)"
# cp_ip HOST [4|6]: the address of the host's web container on the network.
cp_ip() {
	local f=IPAddress
	[ "${2:-4}" = 6 ] && f=GlobalIPv6Address
	dk "$1" inspect -f "{{with index .NetworkSettings.Networks \"shop_routed\"}}{{.$f}}{{end}}" shop-web-1
}
# cp_clean HOST: the host's plugin holds no network, endpoint or pool, and
# no ipvlan link is left in the host.
cp_clean() {
	status_json "$1" | jq -e '(.networks | length) == 0 and (.endpoints | length) == 0 and (.pools | length) == 0' >/dev/null &&
		[ -z "$(ipvlan_links "$1")" ]
}
# cp_has BOX ADDRESS: the box's kernel routes the address's /32 or /128.
cp_has() {
	local fam=-4 len=32
	[ "${2#*:}" != "$2" ] && fam=-6 len=128
	ip -n "$1" "$fam" route show "$2/$len" 2>/dev/null | grep -q .
}
# cp_routed ADDRESS...: both leaves route every address; cp_gone: neither
# routes any.
cp_routed() {
	local a
	for a in "$@"; do cp_has leaf1 "$a" && cp_has leaf2 "$a" || return 1; done
}
cp_gone() {
	local a
	for a in "$@"; do ! cp_has leaf1 "$a" && ! cp_has leaf2 "$a" || return 1; done
}

# The fabric network all.sh made holds 10.244.0.0/16 on every host: the
# compose file takes the same subnets (so each host's IPAM_LOCAL_RANGES block
# applies); fabric comes back at the end.
in_parallel "dk host1 network rm fabric >/dev/null" "dk host2 network rm fabric >/dev/null"
for h in host1 host2; do cp_clean "$h" || fail "compose: $h's plugin is not clean before the scenario: $(status_json "$h" | jq -c '{networks, endpoints, pools}')"; done

# ---- one host ----
t0=$(now_ms)
compose host1 up -d >/tmp/cp-up.out 2>&1 || fail "compose: up on host1 failed: $(cat /tmp/cp-up.out)"
t_up=$(($(now_ms) - t0))
t0=$(now_ms)
a1=$(cp_ip host1)
a1v6=$(cp_ip host1 6)
case "$a1 $a1v6" in "10.244.1."*" fd00:244:0:1:"*) ;; *) fail "compose: host1's container got '$a1' '$a1v6', not from host1's blocks" ;; esac
[ "$(dk host1 network inspect -f '{{.Driver}} {{.IPAM.Driver}} {{.EnableIPv6}} {{index .Options "parent"}} {{index .Options "announce"}}' shop_routed)" = "$PLUGIN $PLUGIN true eth0 host" ] ||
	fail "compose: the network is not what the file declares: $(dk host1 network inspect shop_routed)"
wait_for "cp_routed $a1 $a1v6" 60 || fail "compose: $a1/32 or $a1v6/128 never reached both leaves"
t_routed=$(($(now_ms) - t0))
pass "compose: up on host1 (${t_up} ms): network shop_routed (driver and IPAM ipvlan-bgp, parent eth0, IPv6), web got $a1 and $a1v6 from host1's blocks, on both leaves ${t_routed} ms after up returned"
t0=$(now_ms)
compose host1 down >/tmp/cp-down.out 2>&1 || fail "compose: down on host1 failed: $(cat /tmp/cp-down.out)"
t_down=$(($(now_ms) - t0))
t0=$(now_ms)
wait_for "cp_gone $a1 $a1v6" 60 || fail "compose: $a1 or $a1v6 stayed on a leaf after down"
t_gone=$(($(now_ms) - t0))
cp_clean host1 || fail "compose: down on host1 left: $(status_json host1 | jq -c '{networks, endpoints, pools}') links: $(ipvlan_links host1)"
dk host1 network inspect shop_routed >/dev/null 2>&1 && fail "compose: down left the network shop_routed"
pass "compose: down on host1 (${t_down} ms): routes gone from both leaves ${t_gone} ms after down returned; no network, endpoint, pool or link left in the plugin or the host"
echo "compose_up_ms=$t_up compose_routed_ms=$t_routed compose_down_ms=$t_down compose_withdrawn_ms=$t_gone" >>/payload-out/timings.txt

# ---- two hosts, the same file ----
t0=$(now_ms)
in_parallel "compose host1 up -d" "compose host2 up -d"
t_up2=$(($(now_ms) - t0))
t0=$(now_ms)
a1=$(cp_ip host1)
a1v6=$(cp_ip host1 6)
a2=$(cp_ip host2)
a2v6=$(cp_ip host2 6)
case "$a1 $a1v6" in "10.244.1."*" fd00:244:0:1:"*) ;; *) fail "compose: host1's container got '$a1' '$a1v6'" ;; esac
case "$a2 $a2v6" in "10.244.2."*" fd00:244:0:2:"*) ;; *) fail "compose: host2's container got '$a2' '$a2v6'" ;; esac
wait_for "cp_routed $a1 $a1v6 $a2 $a2v6" 60 || fail "compose: the containers' routes never reached both leaves"
t_routed2=$(($(now_ms) - t0))
dk host1 exec shop-web-1 ping -c 2 -W 2 "$a2" >/dev/null || fail "compose: host1's web cannot ping host2's at $a2"
dk host2 exec shop-web-1 ping -6 -c 2 -W 2 "$a1v6" >/dev/null || fail "compose: host2's web cannot ping host1's at $a1v6"
page=$(dk host1 exec shop-web-1 wget -q -T 5 -O - "http://$a2/") || fail "compose: HTTP from host1's web to host2's failed"
[ "$page" = "$(dk host2 inspect -f '{{.Config.Hostname}}' shop-web-1)" ] || fail "compose: http://$a2/ answered '$page', not host2's container"
pass "compose: the same file up on host1 and host2 (${t_up2} ms, in parallel): $a1 and $a2 from each host's block, on both leaves ${t_routed2} ms after up returned; ping over IPv4 and IPv6 and HTTP across the fabric"
t0=$(now_ms)
in_parallel "compose host1 down" "compose host2 down"
t_down2=$(($(now_ms) - t0))
t0=$(now_ms)
wait_for "cp_gone $a1 $a1v6 $a2 $a2v6" 60 || fail "compose: a route stayed on a leaf after down on both hosts"
t_gone2=$(($(now_ms) - t0))
for h in host1 host2; do
	cp_clean "$h" || fail "compose: down on $h left: $(status_json "$h" | jq -c '{networks, endpoints, pools}') links: $(ipvlan_links "$h")"
done
pass "compose: down on both hosts: down returned after ${t_down2} ms (in parallel), every route gone from both leaves ${t_gone2} ms later; no network, endpoint, pool or link left"

in_parallel "net_create host1 fabric" "net_create host2 fabric"
echo "compose_two_up_ms=$t_up2 compose_two_routed_ms=$t_routed2 compose_two_down_ms=$t_down2 compose_two_withdrawn_ms=$t_gone2 compose_total_ms=$(($(now_ms) - CP_T0))" >>/payload-out/timings.txt
pass "compose: done in $(($(now_ms) - CP_T0)) ms; fabric network re-created"
