# shellcheck shell=bash
# Scenario h: BFD. host3 is dual-homed: eth0 to leaf1 (FRR, with its bfdd)
# and eth1 to leaf2 (BIRD, with its bfd protocol). Its uplink to leaf2 fails
# silently: every packet on it is dropped (iptables in leaf2, in, out and
# through) while the link stays up. A ping every 100 ms runs from h2, a
# container on host2 (behind leaf2 alone), to h3 on host3; before the
# failure it reaches host3 over leaf2 and eth1. The time from the failure
# until h3 answers again, the ping now going over the spines, leaf1 and
# eth0, is measured without BFD (the sessions' hold time, 9 s, and what
# graceful restart keeps after it) and with BFD at 300 ms x 3 on all four of
# host3's sessions (target: under 1 s). After the switch no ping may be lost
# until the uplink heals, and the route comes back over it.
#
# Why this uplink and this direction: an ipvlan child in L3 mode receives
# only what arrives on its parent (scenario f) and sends only through it
# (the kernel looks up the child's routes bound to the parent). host3's
# containers live on eth0. So that what arrives on eth1 reaches them, host3
# gets the shim docs/troubleshooting.md describes (an ipvlan child of its
# own on eth0, a route to its block through it, and, as that traffic is
# forwarded, a FORWARD rule past Docker's DROP policy); so that their
# answers find a way out of eth0 whatever host3 learned, it gets a default
# route through leaf1. A failure of eth0's own uplink leaves them no way
# out: dual-homing a container needs a parent on both uplinks (a bond).
#
# Needs all.sh's fabric (leaf2 on BIRD). Everything it changes is put back:
# host3's BGP_BFD, leaf1's `neighbor ... bfd` (its bfdd keeps running, idle),
# leaf2's configuration, the shim and the default route.

[ "$(cat "$LAB_STATE/leaf2.impl")" = bird ] || fail "h: needs leaf2 on BIRD (all.sh's fabric)"
ip netns exec host3 sysctl -qw net.ipv4.ip_forward=1
ip -n host3 link add ipvl-shim link eth0 type ipvlan mode l3 bridge
ip -n host3 addr add 10.255.3.1/32 dev ipvl-shim
ip -n host3 link set ipvl-shim up
ip -n host3 route add 10.244.3.0/24 dev ipvl-shim
ip netns exec host3 iptables -I FORWARD -o ipvl-shim -j ACCEPT
ip -n host3 route add default via 10.0.3.0 dev eth0

run_on host3 h3
run_on host2 h2
h3=$(container_ip host3 h3)
# diag: what the routers and host3 know of h3, for a failure's message.
diag() {
	local box
	for box in leaf1 leaf2 spine1 host2; do echo "$box: $(ip -n "$box" route show "$h3" | tr '\n' ' ')"; done
	echo "host3: $(ip -n host3 -4 route | tr '\n' ';')"
	echo "from h2: $(dk host2 exec h2 ping -c 1 -W 1 "$h3" 2>&1 | tail -2 | tr '\n' ' ')"
}
wait_for "dk host2 exec h2 ping -c 1 -W 1 $h3" 90 || fail "h: h2 (host2) cannot reach h3 ($h3) on host3: $(diag)"
router_has leaf2 "$h3/32" 'via 10.0.3.3' || fail "h: leaf2 does not route h3 over its port to host3: $(diag)"

# silence LEAF PORT on|off: drop everything on the leaf's port to host3, or
# stop dropping.
silence() {
	local leaf=$1 port=$2 op=-I t
	[ "$3" = off ] && op=-D
	for t in iptables ip6tables; do
		ip netns exec "$leaf" "$t" "$op" INPUT -i "$port" -j DROP
		ip netns exec "$leaf" "$t" "$op" OUTPUT -o "$port" -j DROP
		ip netns exec "$leaf" "$t" "$op" FORWARD -i "$port" -j DROP
		ip netns exec "$leaf" "$t" "$op" FORWARD -o "$port" -j DROP
	done
}

# pings_after T0 FILE: from the log of `ping -D -O`, the first answer after a
# ping lost past T0 (ms): "MS SEQ", or nothing yet.
pings_after() {
	awk -v t0="$1" '
		{ ts = substr($1, 2) * 1000; seq = $0; sub(/.*icmp_seq=/, "", seq); seq += 0 }
		/no answer yet/ && ts > t0 { lost = 1 }
		/bytes from/ && lost && ts > t0 { printf "%.0f %d\n", ts, seq; exit }' "$2"
}

# lost_after SEQ UNTIL FILE: pings after SEQ reported lost before UNTIL (ms).
lost_after() {
	awk -v first="$1" -v until="$2" '
		/no answer yet/ { ts = substr($1, 2) * 1000; seq = $0; sub(/.*icmp_seq=/, "", seq); if (seq + 0 > first && ts < until) n++ }
		END { print n + 0 }' "$3"
}

# failover NAME LEAF PORT HOST CONTAINER TIMEOUT: ping h3 every 100 ms from
# CONTAINER on HOST, silence LEAF's PORT, and measure how long until h3
# answers again (over host3's other uplink): the milliseconds go to $took.
# Then none of the next 30 pings may be lost; then the port heals.
failover() {
	local name=$1 leaf=$2 port=$3 host=$4 ctr=$5 timeout=$6 pid pinger t0 first seq healed lost
	local log=/tmp/h-$name.ping
	pid=$(dk "$host" inspect -f '{{.State.Pid}}' "$ctr")
	nsenter -t "$pid" -n ping -n -D -O -i 0.1 "$h3" >"$log" 2>&1 &
	pinger=$!
	wait_for "grep -q 'bytes from' $log" 30 || fail "h: $name: no answer from $h3 before the failure"
	t0=$(now_ms)
	silence "$leaf" "$port" on
	if ! wait_for "[ -n \"\$(pings_after $t0 $log)\" ]" "$timeout"; then
		silence "$leaf" "$port" off
		fail "h: $name: h3 unreachable for more than ${timeout}s after $leaf's $port went silent"
	fi
	read -r first seq < <(pings_after "$t0" "$log")
	wait_for "grep -qE 'icmp_seq=$((seq + 30)) |no answer yet for icmp_seq=$((seq + 30))\$' $log" 30 ||
		fail "h: $name: the ping stopped after icmp_seq $seq"
	healed=$(now_ms)
	silence "$leaf" "$port" off
	kill -INT "$pinger" 2>/dev/null || true
	wait "$pinger" 2>/dev/null || true
	lost=$(lost_after "$seq" "$healed" "$log")
	[ "$lost" -eq 0 ] || fail "h: $name: $lost pings lost after the switch to the other uplink (icmp_seq $seq on): $(grep 'no answer yet' "$log" | tail -3)"
	took=$((first - t0))
}

# back LEAF NEXTHOP: the leaf routes h3 through host3's port again.
back() {
	wait_for "router_has $1 $h3/32 'via $2'" 300 || fail "h: $h3/32 did not come back at $1 via $2 after the heal"
}

# Without BFD: the sessions' hold time (BIRD's hold time 9), then what
# each side keeps of the other's routes.
failover nobfd leaf2 swp3 host2 h2 200
back leaf2 10.0.3.3
pass "h: without BFD, leaf2's port to host3 silent: h2 reached h3 over leaf1 again after $took ms, no ping lost after that, route back via leaf2 once healed"
nobfd=$took

# bird_configure FILE: leaf2's BIRD takes FILE as its configuration (at
# once, or once a reconfiguration under way has finished).
bird_configure() {
	local out
	out=$(birdc_ns leaf2 configure "\"$1\"")
	grep -qE 'Reconfigured|Reconfiguration in progress|queueing' <<<"$out" || fail "h: leaf2 refused $1: $out"
}

# BFD on: host3's plugin (every neighbour), leaf1's bfdd for both of host3's
# sessions, leaf2's bfd protocol for them.
frr_dir=$(cat "$LAB_STATE/frr-leaf1.dir")
ip netns exec leaf1 /usr/lib/frr/bfdd -d -u frr -g frr -P 0 -N leaf1 -f "$frr_dir/empty.conf" -i "$frr_dir/bfdd.pid" \
	-z "$frr_dir/zserv.api" --vty_socket "$frr_dir" \
	--log "file:$LAB_LOGS/frr-leaf1-bfdd.log" >>"$LAB_LOGS/frr-leaf1-bfdd.out" 2>&1 || fail "h: bfdd did not start in leaf1"
vtysh_ns leaf1 'configure terminal' 'router bgp 65131' 'neighbor 10.0.3.1 bfd' 'neighbor fd00:0:3::2 bfd' >/dev/null
bird_conf=/run/lab/leaf2-bfd.bird.conf
# BIRD waits `error wait time` after a session failed, 60 s and growing
# with each failure (the scenarios before this one had some): shorter here,
# as docs/fabric.md suggests with BFD.
sed -e 's/^\(protocol bgp host3_v[46] from peer[46] {\)/\1 bfd on; error wait time 5, 30;/' "$FABRIC/leaf2.bird.conf" >"$bird_conf"
echo 'protocol bfd { interface "swp3" { min rx interval 300 ms; min tx interval 300 ms; multiplier 3; }; }' >>"$bird_conf"
bird_configure "$bird_conf"
dk host3 plugin disable -f "$PLUGIN" >/dev/null
dk host3 plugin set "$PLUGIN" BGP_BFD=true
dk host3 plugin enable "$PLUGIN" >/dev/null
wait_for "status_json host3 | jq -e '[.bgp.peers[] | select((.address == \"10.0.3.0\" or .address == \"10.0.3.2\") and .state == \"established\" and .bfd == \"up\")] | length == 2'" 300 ||
	fail "h: host3's IPv4 sessions not both up with BFD: $(status_json host3 | jq -c '[.bgp.peers[] | {address, state, bfd}]')"
vtysh_ns leaf1 'show bfd peers json' | jq -e '[.[] | select(.status == "up")] | length >= 2' >/dev/null ||
	fail "h: leaf1's BFD sessions to host3 not up: $(vtysh_ns leaf1 'show bfd peers brief')"
birdc_ns leaf2 show bfd sessions | grep -q '10.0.3.3 .* Up' || fail "h: leaf2's BFD session to host3 not up: $(birdc_ns leaf2 show bfd sessions)"
wait_for "router_has leaf2 $h3/32 'via 10.0.3.3'" 120 || fail "h: leaf2 does not route h3 over its port to host3 with BFD on: $(diag)"
pass "h: BFD up on host3's IPv4 sessions, in leaf1's bfdd and leaf2's BIRD: $(status_json host3 | jq -c '[.bgp.peers[] | {address, state, bfd}]')"

failover bfd leaf2 swp3 host2 h2 60
back leaf2 10.0.3.3
pass "h: with BFD (300 ms x 3), leaf2's port to host3 silent: h2 reached h3 over leaf1 again after $took ms (without BFD: $nobfd ms), no ping lost after that, route back via leaf2 once healed"

# Put everything back for the scenarios after this one, the leaves first:
# BIRD ends graceful restart when BFD goes down (reference.md, BGP_BFD), so
# host3's plugin restarts only once the leaves no longer run BFD with it.
vtysh_ns leaf1 'configure terminal' 'router bgp 65131' 'no neighbor 10.0.3.1 bfd' 'no neighbor fd00:0:3::2 bfd' >/dev/null
bird_configure "$FABRIC/leaf2.bird.conf"
wait_for "! birdc_ns leaf2 show bfd sessions | grep -q 10.0.3.3" 60 || fail "h: leaf2 still runs BFD with host3 after its configuration came back"
dk host3 plugin disable -f "$PLUGIN" >/dev/null
dk host3 plugin set "$PLUGIN" BGP_BFD=false
dk host3 plugin enable "$PLUGIN" >/dev/null
dk host2 rm -f h2 >/dev/null
dk host3 rm -f h3 >/dev/null
ip -n host3 route del default via 10.0.3.0 dev eth0
ip netns exec host3 iptables -D FORWARD -o ipvl-shim -j ACCEPT
ip -n host3 link del ipvl-shim
wait_sessions
