# shellcheck shell=bash
# Scenario i: fault injection. The plugin on host2 is killed (SIGKILL, from
# a failpoint: the file "failpoint" in its state directory names a Docker
# call and a step) at every instant that matters inside the calls of
# `docker network create`, `docker run`, `docker rm -f` and `docker network
# rm`. Docker restarts the plugin and retries the call (with the empty body
# its client re-sends, which the plugin refuses), the command fails, and
# the user repeats it. After each command the plugin's state, host2's links
# and leaf2's routes must equal those of a run without the kill: nothing
# lost, nothing leaked, the same commands work.

FAULT_NET=faultnet
FAULT_SUBNET=10.250.2.0/24
FAULT_ARGS=(--subnet "$FAULT_SUBNET" -o parent=eth0)

# fault_state: what a kill must not change, one line each: the network,
# its endpoints, its pool (addresses allocated, not which), the plugin's
# links left in host2, the container routes leaf2 holds.
fault_state() {
	status_json host2 | jq -c --arg s "$FAULT_SUBNET" '{
		networks: [.networks[] | select(.subnets | index($s)) | {parent, subnets, announce}],
		endpoints: [.endpoints[] | select(any(.addresses[]; startswith("10.250.2."))) | {addresses: (.addresses | length), joined}],
		pools: [.pools[] | select(.pool == $s) | {pool, range, gateway, allocated}]}'
	echo "links: $(ip -n host2 -o link show | grep -oE 'ipb[dv]?-[0-9a-f]+' | sort | tr '\n' ' ')"
	echo "leaf2 routes: $(ip -n leaf2 route show root "$FAULT_SUBNET" | grep -c .)"
}

# fault_expect WHAT STATE: wait until the state is STATE (BGP takes a moment
# to reach leaf2, the sweep a claim window), else fail naming the difference.
fault_expect() {
	local what=$1 want=$2
	wait_for "[ \"\$(fault_state)\" = \"\$want\" ]" 60 ||
		fail "i: after $what the state is
$(fault_state)
want, as without the kill,
$want"
}

# fault_repeat WHAT CMD...: run a docker command until it works, as a user
# repeats one that failed; three failures is a plugin that does not recover.
fault_repeat() {
	local what=$1 n
	shift
	for n in 1 2 3; do
		"$@" >/dev/null 2>"/tmp/i-err" && return 0
		lab_log "i: $what failed (attempt $n): $(tail -1 /tmp/i-err)"
		wait_for "dk host2 plugin inspect -f '{{.Enabled}}' $PLUGIN | grep -q true" 60 || true
	done
	fail "i: $what kept failing: $(tail -3 /tmp/i-err)"
}

# fault_arm POINT: the plugin dies the next time it passes POINT.
fault_arm() { echo "$1" >"$(plugin_mount host2)/failpoint"; }

# fault_fired POINT: the point was reached (the plugin removed the file and
# a new plugin process serves host2).
fault_fired() {
	local before=$2
	[ ! -e "$(plugin_mount host2)/failpoint" ] || fail "i: the plugin never reached $1"
	wait_for "[ -n \"\$(plugin_pid host2)\" ] && [ \"\$(plugin_pid host2)\" != $before ]" 60 ||
		fail "i: no new plugin process after the kill at $1"
}

net_up() { dk host2 network create -d "$PLUGIN" --ipam-driver "$PLUGIN" "${FAULT_ARGS[@]}" "$FAULT_NET"; }
net_down() { dk host2 network rm "$FAULT_NET"; }
ctr_up() { dk host2 run -d --name fault-c --net "$FAULT_NET" busybox sleep 86400; }
ctr_down() { dk host2 rm -f fault-c; }
# ctr_rerun: a docker run that failed leaves its container created: the user
# removes it and runs again.
ctr_rerun() {
	dk host2 rm -f fault-c >/dev/null 2>&1 || true
	ctr_up
}

# fault_at POINT WHAT CMD...: arm POINT, run the command (repeating it as
# the user does), and check the point fired.
fault_at() {
	local point=$1 what=$2 pid
	shift 2
	pid=$(plugin_pid host2)
	fault_arm "$point"
	fault_repeat "$what" "$@"
	fault_fired "$point" "$pid"
	covered=$((covered + 1))
}

# A lost address is swept once it has waited a claim window: a short one
# keeps the scenario short.
set_claim_window() {
	dk host2 plugin disable -f "$PLUGIN" >/dev/null
	dk host2 plugin set "$PLUGIN" IPAM_CLAIM_WINDOW="$1" >/dev/null
	dk host2 plugin enable "$PLUGIN" >/dev/null
}
set_claim_window 5

# Docker 28 asks GwAllocCheck and then requests no gateway for an L3
# network; older engines request one.
engine=$(dk host2 version -f '{{.Server.Version}}')
create_points=(IpamDriver.RequestPool:answered NetworkDriver.CreateNetwork:received NetworkDriver.CreateNetwork:parent-ready NetworkDriver.CreateNetwork:answered)
if [ "${engine%%.*}" -ge 28 ]; then
	create_points+=(NetworkDriver.GwAllocCheck:answered)
else
	create_points+=(IpamDriver.RequestAddress:answered)
fi

# The states of a run without a kill.
s_none=$(fault_state)
net_up >/dev/null
s_net=$(fault_state)
ctr_up >/dev/null
wait_for "[ \"\$(ip -n leaf2 route show root $FAULT_SUBNET | grep -c .)\" = 1 ]" 60 || fail "i: leaf2 never learned the container's route"
s_ctr=$(fault_state)
ctr_down >/dev/null
fault_expect "a plain docker rm" "$s_net"
net_down >/dev/null
fault_expect "a plain docker network rm" "$s_none"
covered=0
compared=0

for p in "${create_points[@]}"; do
	fault_at "$p" "docker network create" net_up
	fault_expect "docker network create killed at $p" "$s_net"
	net_down >/dev/null
	fault_expect "docker network rm after a kill at $p" "$s_none"
	compared=$((compared + 2))
done

net_up >/dev/null
for p in IpamDriver.RequestAddress:answered NetworkDriver.CreateEndpoint:answered NetworkDriver.Join:link-created \
	NetworkDriver.Join:answered; do
	fault_at "$p" "docker run" ctr_rerun
	fault_expect "docker run killed at $p" "$s_ctr"
	ctr_down >/dev/null
	fault_expect "docker rm after a kill at $p" "$s_net"
	compared=$((compared + 2))
done

for p in NetworkDriver.Leave:withdrawn NetworkDriver.Leave:answered NetworkDriver.DeleteEndpoint:withdrawn \
	NetworkDriver.DeleteEndpoint:answered IpamDriver.ReleaseAddress:answered; do
	ctr_up >/dev/null
	fault_expect "docker run before a kill at $p" "$s_ctr"
	fault_at "$p" "docker rm -f" ctr_down
	fault_expect "docker rm -f killed at $p" "$s_net"
	compared=$((compared + 2))
done
net_down >/dev/null

for p in NetworkDriver.DeleteNetwork:withdrawn NetworkDriver.DeleteNetwork:answered IpamDriver.ReleasePool:answered; do
	net_up >/dev/null
	fault_expect "docker network create before a kill at $p" "$s_net"
	fault_at "$p" "docker network rm" net_down
	fault_expect "docker network rm killed at $p" "$s_none"
	compared=$((compared + 2))
done
set_claim_window 60
pass "i: the plugin killed at $covered points inside network create, run, rm -f and network rm on Docker $engine; $compared states (plugin state, host2's links, leaf2's routes) equal to a run without the kill; every command worked when repeated"
