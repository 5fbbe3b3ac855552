# shellcheck shell=bash
# Scenario k: what newer engines send, on the engine the lab runs. A
# dual-stack container, an IPv6-only one (Docker 28: --ipv4=false) and one
# on two networks (Docker 28: the default route chosen by --gw-priority),
# each reachable across the fabric; GwAllocCheck (Docker 28) leaves the L3
# network without a gateway address; an interface name chosen with
# com.docker.network.endpoint.ifname is accepted. On an engine older than 28
# the parts it cannot send are named as not run, not passed.

engine=$(dk host1 version -f '{{.Server.Version}}')
major=${engine%%.*}

# Dual stack, on the fabric network every host has.
run_on host1 k-dual1
run_on host2 k-dual2
v4=$(container_ip host1 k-dual1)
v6=$(container_ip host1 k-dual1 6)
wait_for "dk host2 exec k-dual2 ping -c 1 -W 1 $v4 && dk host2 exec k-dual2 ping -6 -c 1 -W 1 $v6" 90 ||
	fail "k: host2's container cannot reach host1's dual-stack container at $v4 and $v6"
pass "k: a dual-stack container on host1 ($v4, $v6) reached from host2 over both families (Docker $engine)"

# GwAllocCheck: no gateway address set aside in an L3 network on Docker 28.
gateway=$(status_json host1 | jq -r '.pools[] | select(.pool == "10.244.0.0/16") | .gateway')
if [ "$major" -ge 28 ]; then
	[ "$gateway" = none ] || fail "k: Docker $engine asked GwAllocCheck, yet the L3 pool holds gateway $gateway"
	pass "k: GwAllocCheck: the L3 network's pool sets no gateway address aside (Docker $engine)"
else
	[ "$gateway" = 10.244.0.1 ] || fail "k: Docker $engine requests a gateway for every pool; the pool shows '$gateway'"
	lab_log "k: not run on Docker $engine: GwAllocCheck (Docker 28+); the pool holds gateway $gateway as that engine asks"
fi

if [ "$major" -ge 28 ]; then
	# IPv6 only: no IPv4 pool is requested at all. Each host takes its
	# own block with --ip-range (no IPAM_LOCAL_RANGES entry covers it).
	for h in host1 host2; do
		dk "$h" network create -d "$PLUGIN" --ipam-driver "$PLUGIN" --ipv4=false --ipv6 \
			--subnet fd00:245::/48 --ip-range "fd00:245:0:${h#host}::/64" -o parent=eth0 k-v6only >/dev/null
	done
	dk host1 run -d --name k-v6 --net k-v6only busybox sleep 86400 >/dev/null
	dk host2 run -d --name k-v6peer --net k-v6only busybox sleep 86400 >/dev/null
	only6=$(container_ip host1 k-v6 6)
	[ -z "$(container_ip host1 k-v6)" ] || fail "k: the IPv6-only container has an IPv4 address $(container_ip host1 k-v6)"
	status_json host1 | jq -e '[.pools[] | select(.pool | startswith("fd00:245:"))] | length == 1' >/dev/null ||
		fail "k: the IPv6-only network's pools: $(status_json host1 | jq -c .pools)"
	wait_for "dk host2 exec k-v6peer ping -6 -c 1 -W 1 $only6" 90 || fail "k: host2 cannot reach host1's IPv6-only container at $only6"
	pass "k: an IPv6-only network (--ipv4=false) on Docker $engine: one IPv6 pool, the container at $only6 reached across the fabric"

	# Two networks: the default route is the one --gw-priority picks. The
	# bridge is dual-stack: up to 29.4.0 a dual-stack network's endpoint
	# wins both families over a single-stack one whatever the priorities
	# (moby's getGatewayEndpoint, fixed in 29.4.1).
	dk host1 network create --ipv6 --subnet 172.30.0.0/24 --subnet fd00:246::/64 k-br >/dev/null
	dk host1 run -d --name k-multi --network name=fabric,gw-priority=1 --network k-br busybox sleep 86400 >/dev/null
	dk host1 exec k-multi ip route show default | grep -q "default dev eth" ||
		fail "k: with gw-priority=1 on the fabric network the default route is $(dk host1 exec k-multi ip route show default)"
	multi=$(dk host1 inspect -f '{{(index .NetworkSettings.Networks "fabric").IPAddress}}' k-multi)
	wait_for "dk host2 exec k-dual2 ping -c 1 -W 1 $multi" 90 || fail "k: host2 cannot reach the two-network container at $multi"
	dk host1 run -d --name k-multi2 --network fabric --network name=k-br,gw-priority=1 busybox sleep 86400 >/dev/null
	dk host1 exec k-multi2 ip route show default | grep -q "default via" ||
		fail "k: with gw-priority=1 on the bridge the default route is $(dk host1 exec k-multi2 ip route show default)"
	pass "k: a container on the fabric network and a bridge keeps one default route, the one --gw-priority picks (ipvlan: dev; bridge: via its gateway), and is reached across the fabric at $multi"

	# A chosen interface name: accepted; dockerd up to 29.7 still names the
	# link ethN itself (moby#52866 passes DstName on).
	dk host1 run -d --name k-ifname --network name=fabric,driver-opt=com.docker.network.endpoint.ifname=data0 busybox sleep 86400 >/dev/null
	named=$(dk host1 exec k-ifname ip -o link show | awk -F': ' '$2 != "lo" {print $2}' | cut -d@ -f1)
	[ -n "$(container_ip host1 k-ifname)" ] || fail "k: the container asking for interface data0 got no address"
	pass "k: com.docker.network.endpoint.ifname=data0 accepted on Docker $engine; the container's interface is named '$named' by dockerd"
	dk host1 rm -f k-v6 k-multi k-multi2 k-ifname >/dev/null
	dk host2 rm -f k-v6peer >/dev/null
	dk host1 network rm k-v6only k-br >/dev/null
	dk host2 network rm k-v6only >/dev/null
else
	lab_log "k: not run on Docker $engine: the IPv6-only network (--ipv4=false), --gw-priority and endpoint ifname are Docker 28 options"
fi
dk host1 rm -f k-dual1 >/dev/null
dk host2 rm -f k-dual2 >/dev/null
