# shellcheck shell=bash
# Helpers for lab scenarios, sourced inside the VM:   . /lab/lib.sh
#
# A "Docker host" in the lab is a network namespace with its own dockerd (and so its own
# containerd), its own data root, exec root and socket. BGP peers (FRR, BIRD) run in
# namespaces too. Daemon logs go to /payload-out/logs/ so they come back to the host.
#
# Functions:
#   lab_log MSG...                 timestamped line (seconds since boot)
#   pass MSG / fail MSG            print a PASS line / print a FAIL line and exit 1
#   check MSG CMD...               run CMD; pass MSG if it succeeds, else fail MSG
#   wait_for 'CMD' TIMEOUT_S       retry CMD (a shell string) until it succeeds or time runs out
#   in_parallel 'CMD'...           run each CMD (a shell string) at once, wait for all, print
#                                  their output in order; fail naming those that failed
#   netns_add NS                   create a namespace (if missing) with lo up
#   start_dockerd NAME NETNS [dockerd args...]   start one dockerd in NETNS and wait for it
#   launch_dockerd / wait_dockerd  the same in two steps, to start several in parallel
#   dk NAME docker-args...         the docker CLI against host NAME
#   import_busybox NAME [REF]      docker import the busybox rootfs (default busybox:latest)
#   start_registry [NS] [ADDR]     Debian's docker-registry on ADDR (default 127.0.0.1:5000)
#   start_frr NS DIR CONF          zebra+bgpd (FRR_DAEMONS) in NS, CONF loaded through vtysh
#   vtysh_ns NS CMD...             vtysh against the FRR of NS, one -c per CMD
#   start_bird NS DIR CONF         BIRD 2 in NS
#   birdc_ns NS CMD...             birdc against the BIRD of NS

LAB_LOGS=${LAB_LOGS:-/payload-out/logs}
LAB_STATE=/run/lab/state
mkdir -p "$LAB_LOGS" "$LAB_STATE"

lab_log() { printf '[%7ss] %s\n' "$(cut -d' ' -f1 /proc/uptime)" "$*"; }
pass() { printf 'PASS [%ss]: %s\n' "$(cut -d' ' -f1 /proc/uptime)" "$*"; }
fail() {
	printf 'FAIL [%ss]: %s\n' "$(cut -d' ' -f1 /proc/uptime)" "$*"
	exit 1
}
check() {
	local msg=$1
	shift
	if "$@"; then pass "$msg"; else fail "$msg"; fi
}

# wait_for 'CMD' TIMEOUT_S: CMD is evaluated by the shell (pipes allowed), output hidden.
wait_for() {
	local cmd=$1 timeout=${2:-30} deadline
	deadline=$(($(date +%s) + timeout))
	until eval "$cmd" >/dev/null 2>&1; do
		if [ "$(date +%s)" -ge "$deadline" ]; then
			lab_log "timed out after ${timeout}s waiting for: $cmd"
			return 1
		fi
		sleep 0.2
	done
}

# in_parallel 'CMD'...: each CMD runs in a subshell of its own (a `fail` inside ends that
# subshell only, and is reported here). Daemons a CMD starts outlive it.
in_parallel() {
	local dir i c failed=()
	local -a pids=()
	dir=$(mktemp -d /tmp/in_parallel.XXXXXX)
	i=0
	for c in "$@"; do
		(eval "$c") >"$dir/$i" 2>&1 </dev/null &
		pids+=($!)
		i=$((i + 1))
	done
	i=0
	for c in "$@"; do
		wait "${pids[$i]}" || failed+=("$c")
		cat "$dir/$i"
		i=$((i + 1))
	done
	rm -rf "$dir"
	[ ${#failed[@]} = 0 ] || fail "failed: $(printf "'%s' " "${failed[@]}")"
}

netns_add() {
	local ns=$1
	[ -e "/run/netns/$ns" ] || ip netns add "$ns"
	ip -n "$ns" link set lo up
}

# Paths of Docker host NAME. The exec root stays short on purpose: plugin and containerd
# sockets live under it and a unix socket path must fit in 108 bytes.
_dk_sock() { echo "/run/$1/docker.sock"; }

# launch_dockerd NAME NETNS [extra dockerd args...]: start containerd and dockerd for host
# NAME in namespace NETNS without waiting for them.
#
# containerd is started here rather than by dockerd: dockerd gives the containerd it spawns
# itself only a short, fixed time (~15 s) to come up and then exits, which an emulated VM on
# a busy machine does not always meet (seen: "timeout waiting for containerd to start"); our
# containerd gets as long as it needs. Still one containerd per dockerd, with its own root,
# state and socket.
#
# Both must run in the SAME mount namespace: `ip netns exec` also creates a new mount
# namespace, and runc (under containerd) must see the overlay mounts dockerd makes for the
# container's root filesystem (else: "exec: /bin/sh: no such file or directory"). So one
# `ip netns exec` shell mounts cgroup2 again (ip netns exec gives a fresh /sys that hides it),
# starts containerd, waits for it, then becomes dockerd.
# LAB_DOCKERD_ARGS (word-split) is added to every dockerd; by default private ranges are
# trusted as insecure registries so a start_registry on a namespace address just works.
launch_dockerd() {
	local name=$1 ns=$2
	shift 2
	netns_add "$ns"
	local ctrd="/run/$name/containerd"
	mkdir -p "$ctrd" "/var/lib/lab/$name/containerd"
	cat >"/run/$name/containerd.toml" <<EOF
version = 2
root = "/var/lib/lab/$name/containerd"
state = "$ctrd"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$ctrd/containerd.sock"
EOF
	local -a extra
	read -r -a extra <<<"${LAB_DOCKERD_ARGS:---insecure-registry 10.0.0.0/8 --insecure-registry 172.16.0.0/12 --insecure-registry 192.168.0.0/16}"
	# shellcheck disable=SC2016
	ip netns exec "$ns" bash -c '
		conf=$1 sock=$2 clog=$3
		shift 3
		mount -t cgroup2 cgroup2 /sys/fs/cgroup || exit 1
		containerd --config "$conf" >"$clog" 2>&1 </dev/null &
		for _ in $(seq 1500); do
			ctr --address "$sock" version >/dev/null 2>&1 && exec dockerd "$@"
			sleep 0.2
		done
		echo "containerd did not answer on $sock within 300 s"
		exit 1' \
		sh "/run/$name/containerd.toml" "$ctrd/containerd.sock" "$LAB_LOGS/containerd-$name.log" \
		--containerd "$ctrd/containerd.sock" \
		--data-root "/var/lib/lab/$name" \
		--exec-root "/run/$name" \
		--pidfile "/run/$name/dockerd.pid" \
		-H "unix://$(_dk_sock "$name")" \
		--storage-driver overlay2 \
		--userland-proxy=false \
		"${extra[@]}" "$@" \
		>>"$LAB_LOGS/dockerd-$name.log" 2>&1 </dev/null &
	echo "$ns" >"$LAB_STATE/dockerd-$name.ns"
}

wait_dockerd() {
	local name=$1 timeout=${2:-240}
	if ! wait_for "dk $name version" "$timeout"; then
		tail -n 20 "$LAB_LOGS/containerd-$name.log"
		tail -n 30 "$LAB_LOGS/dockerd-$name.log"
		fail "dockerd $name not ready after ${timeout}s"
	fi
}

start_dockerd() {
	launch_dockerd "$@"
	wait_dockerd "$1"
}

dk() {
	local name=$1
	shift
	docker -H "unix://$(_dk_sock "$name")" "$@"
}

import_busybox() {
	local name=$1 ref=${2:-busybox:latest}
	dk "$name" import --change 'CMD ["sh"]' /opt/lab/busybox.tar "$ref" >/dev/null
}

# start_registry [NS] [ADDR]: a plain-HTTP registry (Debian's docker-registry, distribution
# 2.x). In a namespace, listen on an address of that namespace the other hosts can route to
# (launch_dockerd trusts private ranges as insecure registries; 127.0.0.1 needs nothing).
start_registry() {
	local ns=${1:-} addr=${2:-127.0.0.1:5000}
	local dir="$LAB_STATE/registry${ns:+-$ns}"
	mkdir -p "$dir/data"
	cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: $addr
EOF
	local -a pre=()
	[ -n "$ns" ] && pre=(ip netns exec "$ns")
	"${pre[@]}" docker-registry serve "$dir/config.yml" \
		>"$LAB_LOGS/registry${ns:+-$ns}.log" 2>&1 </dev/null &
	if ! wait_for "${pre[*]} busybox wget -q -O /dev/null http://$addr/v2/" 120; then
		tail -n 20 "$LAB_LOGS/registry${ns:+-$ns}.log"
		fail "registry on $addr${ns:+ in $ns} not ready"
	fi
}

# start_frr NS DIR CONF: zebra and bgpd (or $FRR_DAEMONS) in namespace NS, each with its own
# pid file, zserv socket and vty socket in DIR (owned by frr, the daemons drop to it), no TCP
# vty (-P 0). They start with an empty config and CONF (an integrated frr.conf-style file) is
# then applied through vtysh, which sends each command to the daemon it belongs to.
# FRR 9 and later (trixie, forky) also run mgmtd, first: it owns the interface
# configuration (`interface lo` / `ip address`) and zebra's, which vtysh sends to it. mgmtd
# and its clients meet on sockets in FRR's run directory, which --vty_socket does not move:
# -N NS (the path space) gives each instance its own, /run/frr/NS. vtysh goes without -N: it
# reaches every daemon, mgmtd included, through the vty sockets in DIR.
start_frr() {
	local ns=$1 dir=$2 conf=$3 d
	netns_add "$ns"
	mkdir -p "$dir" "/run/frr/$ns"
	: >"$dir/empty.conf"
	chown -R frr:frr "$dir" "/run/frr/$ns"
	echo "$dir" >"$LAB_STATE/frr-$ns.dir"
	local daemons=${FRR_DAEMONS:-zebra bgpd}
	[ -x /usr/lib/frr/mgmtd ] && [[ " $daemons " != *" mgmtd "* ]] && daemons="mgmtd $daemons"
	local -a conf_arg
	for d in $daemons; do
		conf_arg=(-f "$dir/empty.conf")
		[ "$d" = mgmtd ] && conf_arg=() # mgmtd reads no file of its own
		if ! ip netns exec "$ns" "/usr/lib/frr/$d" -d -u frr -g frr -P 0 -N "$ns" \
			"${conf_arg[@]}" -i "$dir/$d.pid" -z "$dir/zserv.api" \
			--vty_socket "$dir" --log "file:$LAB_LOGS/frr-$ns-$d.log" \
			>>"$LAB_LOGS/frr-$ns-$d.out" 2>&1; then
			cat "$LAB_LOGS/frr-$ns-$d.out"
			fail "FRR $d did not start in $ns"
		fi
		# zebra must accept on zserv.api before the others connect.
		if [ "$d" = zebra ]; then wait_for "[ -S $dir/zserv.api ]" 60 || fail "zebra in $ns: no zserv socket"; fi
	done
	wait_for "vtysh_ns $ns 'show version'" 60 || fail "FRR in $ns: vtysh cannot connect"
	if ! vtysh --vty_socket "$dir" -f "$conf" >"$LAB_LOGS/frr-$ns-load.log" 2>&1; then
		cat "$LAB_LOGS/frr-$ns-load.log"
		fail "FRR in $ns rejected $conf"
	fi
}

vtysh_ns() {
	local ns=$1 dir a
	shift
	dir=$(cat "$LAB_STATE/frr-$ns.dir") || return 1
	local -a cmds=()
	for a in "$@"; do cmds+=(-c "$a"); done
	vtysh --vty_socket "$dir" "${cmds[@]}"
}

# start_bird NS DIR CONF: BIRD 2 in namespace NS with its control socket and pid in DIR.
start_bird() {
	local ns=$1 dir=$2 conf=$3
	netns_add "$ns"
	mkdir -p "$dir"
	echo "$dir" >"$LAB_STATE/bird-$ns.dir"
	if ! ip netns exec "$ns" bird -c "$conf" -s "$dir/bird.ctl" -P "$dir/bird.pid" \
		>"$LAB_LOGS/bird-$ns.out" 2>&1; then
		cat "$LAB_LOGS/bird-$ns.out"
		fail "BIRD did not start in $ns"
	fi
	wait_for "birdc -s $dir/bird.ctl show status" 60 || fail "BIRD in $ns: birdc cannot connect"
}

birdc_ns() {
	local ns=$1 dir
	shift
	dir=$(cat "$LAB_STATE/bird-$ns.dir") || return 1
	birdc -s "$dir/bird.ctl" "$@"
}
