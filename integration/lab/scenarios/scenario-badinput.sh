# shellcheck shell=bash
# Scenario e: bad input through the real CLI. Each gets a clear error at the
# docker CLI and leaves nothing behind: no link, network, allocation or route.

snapshot() {
	{
		ip -n host1 -o link show | awk -F': ' '{print $2}' | sort
		dk host1 network ls -q --filter driver="$PLUGIN" | sort
		ip -n leaf1 route show proto bgp | sort
	} 2>&1
	# Allocations, read as an operator does; a failure to read them fails
	# the scenario rather than comparing two error messages.
	status_json host1 | jq -c '[.pools[] | {pool, allocated}]' || fail "e: cannot read the plugin's status"
}

# refused DESCRIPTION EXPECTED-TEXT docker-args...: the command must fail with
# EXPECTED-TEXT in its error, and change nothing.
refused() {
	local what=$1 want=$2 out before
	shift 2
	before=$(snapshot)
	if out=$(dk host1 "$@" 2>&1); then
		fail "e: $what was accepted: docker $*"
	fi
	echo "$out" | grep -qiF -- "$want" || fail "e: $what: error '$out' does not say '$want'"
	sleep 1
	[ "$(snapshot)" = "$before" ] || fail "e: $what left something behind: $(diff <(echo "$before") <(snapshot))"
	# The line that says it: newer CLIs add "Run 'docker run --help'..." after it.
	pass "e: $what -> $(echo "$out" | grep -iF -m1 -- "$want")"
}

netargs=(network create -d "$PLUGIN" --ipam-driver "$PLUGIN" --subnet 10.250.0.0/24)
refused "unknown option" 'frobnicate' "${netargs[@]}" -o parent=eth0 -o frobnicate=1 bad
refused "bad ipvlan_mode" 'ipvlan_mode' "${netargs[@]}" -o parent=eth0 -o ipvlan_mode=l4 bad
refused "bad ipvlan_flag" 'ipvlan_flag' "${netargs[@]}" -o parent=eth0 -o ipvlan_flag=loud bad
refused "MTU above the parent's" 'mtu' "${netargs[@]}" -o parent=eth0 -o mtu=9999 bad
refused "bad announce" 'announce' "${netargs[@]}" -o parent=eth0 -o announce=everything bad
refused "bad community" 'communities' "${netargs[@]}" -o parent=eth0 -o communities=65536:1 bad
refused "missing parent" 'eth9' "${netargs[@]}" -o parent=eth9 bad
refused "lo as parent" 'lo' "${netargs[@]}" -o parent=lo bad
refused "VLAN ID out of range" '4095' "${netargs[@]}" -o parent=eth0.4095 bad
refused "overlapping subnet" 'overlap' network create -d "$PLUGIN" --ipam-driver "$PLUGIN" --subnet 10.244.128.0/24 -o parent=eth0 bad

dk host1 network create -d "$PLUGIN" --ipam-driver "$PLUGIN" --subnet 10.251.0.0/29 --ip-range 10.251.0.4/30 -o parent=eth0 tiny >/dev/null
refused "--ip outside this host's range" "outside this host's allocation range" run -d --net tiny --ip 10.251.0.2 --name e-out busybox sleep 60
dk host1 rm -f e-out >/dev/null 2>&1 || true
dk host1 run -d --net tiny --name e1 busybox sleep 86400 >/dev/null
dk host1 run -d --net tiny --name e2 busybox sleep 86400 >/dev/null
# The range 10.251.0.4/30 holds .4, .5 and .6 (.7 is the /29's broadcast).
dk host1 run -d --net tiny --name e3 busybox sleep 86400 >/dev/null
refused "exhausted pool" 'is full' run -d --net tiny --name e4 busybox sleep 60
dk host1 rm -f e4 >/dev/null 2>&1 || true
dk host1 rm -f e1 e2 e3 >/dev/null
dk host1 network rm tiny >/dev/null
[ -z "$(ipvlan_links host1)" ] || fail "e: ipvlan links left in host1: $(ipvlan_links host1)"
pass "e: every bad input refused with a clear error and nothing left behind"
