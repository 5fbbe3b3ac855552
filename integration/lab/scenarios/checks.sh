# shellcheck shell=bash
# Checks the plugin scenarios share, sourced after fabric.sh.

# wait_sessions: every host's sessions to its leaves are Established.
wait_sessions() {
	wait_for "vtysh_ns leaf1 'show bgp neighbors swp1 json' | jq -e '.swp1.bgpState == \"Established\"'" 90 ||
		fail "host1's unnumbered session to leaf1 did not come up"
	wait_for "birdc_ns leaf2 show protocols host2_v4 | grep -q Established" 90 ||
		fail "host2's session to leaf2 (BIRD) did not come up"
	wait_for "vtysh_ns leaf1 'show bgp neighbors 10.0.3.1 json' | jq -e '.[\"10.0.3.1\"].bgpState == \"Established\"'" 90 ||
		fail "host3's session to leaf1 did not come up"
	wait_for "birdc_ns leaf2 show protocols host3_v4 | grep -q Established" 90 ||
		fail "host3's session to leaf2 did not come up"
	wait_for "vtysh_ns leaf1 'show bgp neighbors 10.0.4.1 json' | jq -e '.[\"10.0.4.1\"].bgpState == \"Established\"'" 90 ||
		fail "host4's session to leaf1 did not come up"
	wait_for "birdc_ns leaf2 show protocols host4_v4 | grep -q Established" 90 ||
		fail "host4's session to leaf2 did not come up"
	pass "sessions Established: host1-leaf1 (unnumbered), host2-leaf2 (BIRD), host3 and host4 to both leaves"
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

