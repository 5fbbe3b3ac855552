# shellcheck shell=bash
# The seed's fabric inside the lab VM, sourced by the plugin scenarios after
# /lab/lib.sh. One network namespace per box:
#
#            spine1 (AS 65100)        spine2 (AS 65100)
#              swp1|   swp2 \          / swp1   |swp2
#           swp51  |         \        /         |  swp52 ...
#            leaf1 (AS 65131)          leaf2 (AS 65132, FRR or BIRD)
#            swp1 |     swp3 \        / swp3    | swp1
#            eth0 |      eth0 \      / eth1     | eth0
#            host1 (65134)    host3 (65136)    host2 (65135)
#          unnumbered         dual-homed          numbered
#                             host4 (65137), dual-homed like host3 (swp4,
#                             eth0/eth1): a remote rack seen at equal cost
#
# Every host is a Docker host: its own dockerd, the plugin installed from the
# lab's registry, eth0 the ipvlan parent and the BGP uplink. A management
# bridge in the VM's root namespace (192.168.100.0/24) reaches each host's
# mgmt0 for the registry only; it carries no default route.

FABRIC=${FABRIC:-/payload/fabric}
REGISTRY=192.168.100.1:5000
# The lab has no Docker Hub: a swarm task runs the image its node has (each
# has busybox) instead of trying to pull it first. Every dockerd started
# from here on gets it.
export DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1
PLUGIN_REF=$REGISTRY/ipvlan-bgp:latest
# Docker resolves a managed network or IPAM plugin by its full name and tag.
PLUGIN=ipvlan-bgp:latest

# fabric_link A IFA ADDR4A ADDR6A B IFB ADDR4B ADDR6B: a veth between two
# boxes; "-" for no IPv4 address (an unnumbered link).
fabric_link() {
	local a=$1 ifa=$2 a4=$3 a6=$4 b=$5 ifb=$6 b4=$7 b6=$8
	ip link add "$ifa" netns "$a" type veth peer name "$ifb" netns "$b"
	[ "$a4" = - ] || ip -n "$a" addr add "$a4" dev "$ifa"
	[ "$b4" = - ] || ip -n "$b" addr add "$b4" dev "$ifb"
	ip -n "$a" addr add "$a6" dev "$ifa" nodad
	ip -n "$b" addr add "$b6" dev "$ifb" nodad
	ip -n "$a" link set "$ifa" up
	ip -n "$b" link set "$ifb" up
}

# fabric_up frr|bird HOST...: namespaces, links and routers for the given hosts
# (all four when none is given); leaf2 runs the given software. The hosts'
# dockerds are launched first, as they take longest to come up (hosts_up waits
# for them); the four routers and the registry start meanwhile, in parallel.
# A leaf forgets the neighbours of hosts that are not started, so its BGP
# summary lists only sessions that are meant to come up.
fabric_up() {
	local leaf2_impl=${1:-frr} ns h
	shift || true
	local -a hosts=("$@")
	[ ${#hosts[@]} -gt 0 ] || hosts=(host1 host2 host3 host4)
	for ns in spine1 spine2 leaf1 leaf2 "${hosts[@]}"; do netns_add "$ns"; done
	for ns in spine1 spine2 leaf1 leaf2; do
		ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
	done
	# Linux drops a port's IPv6 addresses when it goes down, where a switch
	# (or ifupdown on a host) keeps its configured ones: without this, a
	# scenario that takes a port down and up again leaves that link's IPv6
	# session down for the rest of the run.
	for ns in spine1 spine2 leaf1 leaf2 "${hosts[@]}"; do
		ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.keep_addr_on_down=1 net.ipv6.conf.default.keep_addr_on_down=1
	done
	fabric_link spine1 swp1 10.1.11.0/31 fd00:1:11::1/64 leaf1 swp51 10.1.11.1/31 fd00:1:11::2/64
	fabric_link spine1 swp2 10.1.12.0/31 fd00:1:12::1/64 leaf2 swp51 10.1.12.1/31 fd00:1:12::2/64
	fabric_link spine2 swp1 10.1.21.0/31 fd00:1:21::1/64 leaf1 swp52 10.1.21.1/31 fd00:1:21::2/64
	fabric_link spine2 swp2 10.1.22.0/31 fd00:1:22::1/64 leaf2 swp52 10.1.22.1/31 fd00:1:22::2/64
	for h in "${hosts[@]}"; do
		case $h in
		# host1's uplink is unnumbered: no IPv4 on the link (FRR would peer
		# over a /31's IPv4 instead of the link-local addresses); host1's own
		# IPv4 address lives on its loopback, as on a routed host.
		host1)
			fabric_link leaf1 swp1 - fd00:0:1::1/64 host1 eth0 - fd00:0:1::2/64
			ip -n host1 addr add 10.0.1.1/32 dev lo
			;;
		host2) fabric_link leaf2 swp1 10.0.2.0/31 fd00:0:2::1/64 host2 eth0 10.0.2.1/31 fd00:0:2::2/64 ;;
		host3)
			fabric_link leaf1 swp3 10.0.3.0/31 fd00:0:3::1/64 host3 eth0 10.0.3.1/31 fd00:0:3::2/64
			fabric_link leaf2 swp3 10.0.3.2/31 fd00:0:4::1/64 host3 eth1 10.0.3.3/31 fd00:0:4::2/64
			;;
		host4)
			fabric_link leaf1 swp4 10.0.4.0/31 fd00:0:5::1/64 host4 eth0 10.0.4.1/31 fd00:0:5::2/64
			fabric_link leaf2 swp4 10.0.4.2/31 fd00:0:6::1/64 host4 eth1 10.0.4.3/31 fd00:0:6::2/64
			;;
		*) fail "fabric_up: no host $h in the fabric" ;;
		esac
	done
	mgmt_up "${hosts[@]}"
	echo "${hosts[*]}" >"$LAB_STATE/fabric.hosts"
	for h in "${hosts[@]}"; do
		dockerd_config "$h" true
		launch_dockerd "$h" "$h" --config-file "$(dockerd_config_file "$h")"
	done
	local leaf2="start_frr leaf2 /run/lab/frr-leaf2 $FABRIC/leaf2.frr.conf"
	if [ "$leaf2_impl" = bird ]; then
		ip -n leaf2 addr add 10.255.0.12/32 dev lo
		leaf2="start_bird leaf2 /run/lab/bird-leaf2 $FABRIC/leaf2.bird.conf"
	fi
	echo "$leaf2_impl" >"$LAB_STATE/leaf2.impl"
	in_parallel \
		"start_frr spine1 /run/lab/frr-spine1 $FABRIC/spine1.frr.conf" \
		"start_frr spine2 /run/lab/frr-spine2 $FABRIC/spine2.frr.conf" \
		"start_frr leaf1 /run/lab/frr-leaf1 $FABRIC/leaf1.frr.conf" \
		"$leaf2" \
		"start_registry '' $REGISTRY"
	for h in host1 host2 host3 host4; do
		[[ " ${hosts[*]} " == *" $h "* ]] || leaves_forget "$h"
	done
}

# The leaves' neighbours of each host: "LEAF NEIGHBOUR" pairs, as in the
# fabric files.
host_neighbors() {
	case $1 in
	host1) echo leaf1 swp1 ;;
	host2) echo leaf2 10.0.2.1 leaf2 fd00:0:2::2 ;;
	host3) echo leaf1 10.0.3.1 leaf1 fd00:0:3::2 leaf2 10.0.3.3 leaf2 fd00:0:4::2 ;;
	host4) echo leaf1 10.0.4.1 leaf1 fd00:0:5::2 leaf2 10.0.4.3 leaf2 fd00:0:6::2 ;;
	esac
}

# leaves_forget HOST: an FRR leaf drops its neighbours on HOST (a BIRD leaf
# keeps them: it runs only in the full suite, where every host is up).
leaves_forget() {
	local -a pairs
	read -r -a pairs <<<"$(host_neighbors "$1")"
	local i leaf asn
	for ((i = 0; i < ${#pairs[@]}; i += 2)); do
		leaf=${pairs[$i]}
		[ "$leaf" = leaf2 ] && [ "$(cat "$LAB_STATE/leaf2.impl")" = bird ] && continue
		asn=$(awk '$1 == "router" && $2 == "bgp" { print $3; exit }' "$FABRIC/$leaf.frr.conf")
		vtysh_ns "$leaf" 'configure terminal' "router bgp $asn" "no neighbor ${pairs[$((i + 1))]}" >/dev/null
	done
}

# mgmt_up HOST...: the management bridge, for the registry only.
mgmt_up() {
	local ns i
	ip link add mgmt type bridge
	ip addr add 192.168.100.1/24 dev mgmt
	ip link set mgmt up
	for ns in "$@"; do
		i=$((10 + ${ns#host}))
		ip link add "mgmt-$ns" type veth peer name mgmt0 netns "$ns"
		ip link set "mgmt-$ns" master mgmt up
		ip -n "$ns" addr add "192.168.100.$i/24" dev mgmt0
		ip -n "$ns" link set mgmt0 up
	done
}

# hosts_up HOST...: wait for the dockerds fabric_up launched, import busybox.
hosts_up() {
	local h
	for h in "$@"; do wait_dockerd "$h"; done
	local -a imports=()
	for h in "$@"; do imports+=("import_busybox $h"); done
	in_parallel "${imports[@]}"
}

# plugin_publish HOST: publish the plugin built from the working tree to the
# lab's registry (fabric_up started it) with tools/publish.sh, as `make
# publish REGISTRY=192.168.100.1:5000` does on an operator's machine: DOCKER
# is the docker command of HOST.
plugin_publish() {
	DOCKER="docker -H unix://$(_dk_sock "$1")" /payload/tools/publish.sh "$PLUGIN_REF" /payload/plugin >/dev/null
}

# plugin_install HOST SETTING=VALUE...: what the README tells users to type.
plugin_install() {
	local h=$1
	shift
	dk "$h" plugin install --grant-all-permissions --alias "${PLUGIN%:*}" "$PLUGIN_REF" "$@" >/dev/null
}

# The settings each host's plugin gets: AS, router ID, its leaf neighbours,
# its block of the shared container subnet. host1 peers unnumbered on eth0,
# its ipvlan parent (the seed's set-up); the others numbered.
host1_settings() { echo BGP_ASN=65134 BGP_ROUTER_ID=10.0.1.1 BGP_NEIGHBORS=eth0:65131 IPAM_LOCAL_RANGES=10.244.1.0/24,fd00:244:0:1::/64; }
host2_settings() { echo BGP_ASN=65135 BGP_ROUTER_ID=10.0.2.1 BGP_NEIGHBORS=10.0.2.0:65132,fd00:0:2::1:65132 IPAM_LOCAL_RANGES=10.244.2.0/24,fd00:244:0:2::/64; }
host4_settings() { echo BGP_ASN=65137 BGP_ROUTER_ID=10.0.4.1 BGP_NEIGHBORS=10.0.4.0:65131,10.0.4.2:65132,fd00:0:5::1:65131,fd00:0:6::1:65132 IPAM_LOCAL_RANGES=10.244.4.0/24,fd00:244:0:4::/64; }
host3_settings() { echo BGP_ASN=65136 BGP_ROUTER_ID=10.0.3.1 BGP_NEIGHBORS=10.0.3.0:65131,10.0.3.2:65132,fd00:0:3::1:65131,fd00:0:4::1:65132 IPAM_LOCAL_RANGES=10.244.3.0/24,fd00:244:0:3::/64; }

# net_create HOST NAME [extra args]: the same dual-stack network on every host.
net_create() {
	local h=$1 name=$2
	shift 2
	dk "$h" network create -d "$PLUGIN" --ipam-driver "$PLUGIN" \
		--subnet 10.244.0.0/16 --ipv6 --subnet fd00:244::/48 -o parent=eth0 "$@" "$name" >/dev/null
}

# container_ip HOST NAME [4|6]: the container's address on its ipvlan network.
container_ip() {
	local fam=${3:-4} fmt='{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}'
	[ "$fam" = 6 ] && fmt='{{range .NetworkSettings.Networks}}{{.GlobalIPv6Address}}{{end}}'
	dk "$1" inspect -f "$fmt" "$2"
}

# router_has NS PREFIX NEXTHOP-REGEX: the box's kernel routes PREFIX via the
# expected next hop(s). Works for FRR and BIRD boxes alike (both install into
# their namespace's kernel).
router_has() {
	ip -n "$1" route show "$2" 2>/dev/null | grep -Eq "$3"
}

# rib_has NS PREFIX: the box's BGP RIB holds PREFIX.
rib_has() {
	local ns=$1 prefix=$2
	if [ "$ns" = leaf2 ] && [ "$(cat "$LAB_STATE/leaf2.impl")" = bird ]; then
		birdc_ns leaf2 show route "$prefix" | grep -q "$prefix"
	else
		vtysh_ns "$ns" "show bgp ipv$([ "${prefix#*:}" != "$prefix" ] && echo 6 || echo 4) unicast $prefix json" |
			jq -e '.paths | length > 0' >/dev/null
	fi
}

# Each host's dockerd reads a daemon.json of its own (--config-file), which
# turns live restore on: containers (and the plugin) keep running while
# dockerd restarts, as on production hosts; the restart scenario relies on
# it. Swarm mode refuses live restore, and the swarm scenario turns it off
# and on again as an operator would: in the file, then a reload (SIGHUP), no
# restart. In $LAB_STATE, which a host's power cut (scenario reboot) keeps.
dockerd_config_file() { echo "$LAB_STATE/daemon-$1.json"; }
# dockerd_config HOST true|false: write the host's daemon.json.
dockerd_config() { printf '{"live-restore": %s}\n' "$2" >"$(dockerd_config_file "$1")"; }
# live_restore HOST true|false: the running dockerd reloads its daemon.json
# with live restore on or off.
live_restore() {
	local h=$1 on=$2
	dockerd_config "$h" "$on"
	kill -HUP "$(cat "/run/$h/dockerd.pid")"
	wait_for "[ \"\$(dk $h info -f '{{.LiveRestoreEnabled}}')\" = $on ]" 60 ||
		fail "dockerd $h did not reload live-restore=$on: $(tail -n 5 "$LAB_LOGS/dockerd-$h.log")"
}

# restart_dockerd HOST: stop the host's dockerd and start it again, as
# `systemctl restart docker` does: containerd (a service of its own) stays
# up, and the new dockerd runs in containerd's mount and network namespaces,
# where the containers' namespaces are mounted. Containers live on (live
# restore, in its daemon.json).
restart_dockerd() {
	local h=$1 pid ctrd
	pid=$(cat "/run/$h/dockerd.pid")
	ctrd=$(pgrep -f "containerd --config /run/$h/containerd.toml" | head -n1)
	[ -n "$ctrd" ] || fail "no containerd for $h"
	kill -TERM "$pid"
	wait_for "! kill -0 $pid" 60 || fail "dockerd $h did not stop"
	nsenter -t "$ctrd" -m -n dockerd \
		--containerd "/run/$h/containerd/containerd.sock" \
		--data-root "/var/lib/lab/$h" --exec-root "/run/$h" \
		--pidfile "/run/$h/dockerd.pid" -H "unix:///run/$h/docker.sock" \
		--storage-driver overlay2 --userland-proxy=false \
		--insecure-registry 192.168.0.0/16 --config-file "$(dockerd_config_file "$h")" \
		>>"$LAB_LOGS/dockerd-$h.log" 2>&1 </dev/null &
	wait_dockerd "$h"
}

# plugin_pid HOST: the plugin process serving HOST's dockerd.
plugin_pid() {
	local p
	for p in $(pgrep -x ipvlan-bgp); do
		[ "$(ip netns identify "$p")" = "$1" ] && echo "$p"
	done
	return 0
}
