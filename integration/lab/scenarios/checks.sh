# shellcheck shell=bash
# Checks the plugin scenarios share, sourced after fabric.sh.

# wait_sessions: every host's sessions to its leaves are Established.
wait_sessions() {
	local frr=("swp1|host1's unnumbered session" "10.0.3.1|host3's IPv4 session" "fd00:0:3::2|host3's IPv6 session"
		"10.0.4.1|host4's IPv4 session" "fd00:0:5::2|host4's IPv6 session") n
	for n in "${frr[@]}"; do
		wait_for "vtysh_ns leaf1 'show bgp neighbors ${n%%|*} json' | jq -e '.[\"${n%%|*}\"].bgpState == \"Established\"'" 90 ||
			fail "${n#*|} to leaf1 did not come up"
	done
	for n in host2_v4 host2_v6 host3_v4 host3_v6 host4_v4 host4_v6; do
		wait_for "birdc_ns leaf2 show protocols $n | grep -q Established" 90 ||
			fail "$n's session to leaf2 (BIRD) did not come up"
	done
	pass "sessions Established: host1-leaf1 (unnumbered), host2-leaf2 (BIRD), host3 and host4 to both leaves, IPv4 and IPv6"
}

# run_on HOST NAME [docker run args...]: a container on the fabric network.
run_on() {
	local h=$1 name=$2
	shift 2
	dk "$h" run -d --name "$name" --net fabric "$@" busybox sleep 86400 >/dev/null
}

# now_ms: wall-clock milliseconds inside the VM.
now_ms() { date +%s%3N; }

# until_ms 'CMD' TIMEOUT_S: milliseconds until CMD first succeeds, polled
# every 20 ms; fails the scenario on timeout.
until_ms() {
	local cmd=$1 timeout=$2 start deadline
	start=$(now_ms)
	deadline=$((start + timeout * 1000))
	until eval "$cmd" >/dev/null 2>&1; do
		[ "$(now_ms)" -lt "$deadline" ] || return 1
		sleep 0.02
	done
	echo $(($(now_ms) - start))
}

# ipvlan_links HOST: ipvlan links left in the host's own namespace (a
# running container's link lives in the container, so this should be empty).
ipvlan_links() { ip -n "$1" -o link show type ipvlan | awk -F': ' '{print $2}'; }

# status_json HOST: the plugin's status document, read the way an operator
# does: the plugin binary's status subcommand on its socket.
status_json() {
	local h=$1 mount
	mount=$(plugin_mount "$h")
	"$mount/../rootfs/ipvlan-bgp" status --json --socket "$mount/status.sock"
}

# plugin_mount HOST: the plugin's propagated mount (its /state) on the host.
plugin_mount() {
	local id
	id=$(dk "$1" plugin inspect -f '{{.Id}}' "$PLUGIN")
	echo "/var/lib/lab/$1/plugins/$id/propagated-mount"
}

# allocated HOST: addresses the host's plugin has handed out of the shared
# container subnet, from its status document.
allocated() { status_json "$1" | jq '[.pools[] | select(.pool == "10.244.0.0/16") | .allocated] | add'; }

# watch_route FILE PREFIX BOX...: in the background, poll the routers'
# kernels for PREFIX every 100 ms and append a line to FILE each time one
# lacks it. Prints the watcher's PID for watch_stop.
watch_route() {
	local file=$1 prefix=$2
	shift 2
	: >"$file"
	(while :; do
		for box in "$@"; do
			router_has "$box" "$prefix" via || echo "$(date +%T.%N) $box lost $prefix" >>"$file"
		done
		sleep 0.1
	done) >/dev/null 2>&1 &
	echo $!
}

# stop_bg SIGNAL PID: stop a process started in the background by a
# command substitution (so not this shell's child) and wait until it is gone.
stop_bg() {
	kill "-$1" "$2" 2>/dev/null || true
	while kill -0 "$2" 2>/dev/null; do sleep 0.1; done
}

# watch_stop PID FILE WHAT: end a watch_route; fail with WHAT if it saw a loss.
watch_stop() {
	stop_bg TERM "$1"
	[ ! -s "$2" ] || fail "$3: $(head -5 "$2")"
}

# ping_start FILE HOST CONTAINER TARGET: in the background, ping TARGET from
# inside CONTAINER's namespace every 200 ms (the VM's iputils ping: busybox's
# cannot say how many were lost). Prints the ping's PID for ping_lost.
ping_start() {
	local pid
	pid=$(dk "$2" inspect -f '{{.State.Pid}}' "$3")
	nsenter -t "$pid" -n ping -n -i 0.2 "$4" >"$1" 2>&1 &
	echo $!
}

# ping_lost PID FILE: stop the ping and print "LOST SENT".
ping_lost() {
	stop_bg INT "$1"
	sed -n 's/^\([0-9]*\) packets transmitted, \([0-9]*\) received.*/\1 \2/p' "$2" | awk '{print $1 - $2, $1}'
}

# watch_prefixes FILE 'BOX...' ADDRESS...: like watch_route for many host
# routes at once (/32 and /128 addresses, given bare): every 100 ms one dump
# of each box's kernel table, a line "TIME BOX lost ADDRESS" in FILE for each
# address missing from it. Prints the watcher's PID for stop_bg; judge the
# losses with watch_losses, for the addresses that were meant to stay.
watch_prefixes() {
	local file=$1 boxes=$2
	shift 2
	: >"$file"
	(while :; do
		for box in $boxes; do
			table=$(ip -n "$box" -4 route show; ip -n "$box" -6 route show)
			for a in "$@"; do
				grep -q "^$a " <<<"$table" || echo "$(date +%T.%N) $box lost $a" >>"$file"
			done
		done
		sleep 0.1
	done) >/dev/null 2>&1 &
	echo $!
}

# watch_losses FILE ADDRESS...: the lines of FILE about the given addresses.
watch_losses() {
	local file=$1 a
	shift
	for a in "$@"; do grep " lost $a\$" "$file" || true; done
}
