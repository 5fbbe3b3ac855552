# shellcheck shell=bash
# Scenario hostfrr: the plugin beside an FRR that already runs on the host
# (docs/operations.md, "Beside an FRR on the host"). host2's FRR takes over
# the host's BGP (port 179, the sessions to leaf2, AS 65135) with
# fabric/host2.frr.conf; the plugin is set to listen nowhere and to peer
# with that FRR over the host's own addresses (iBGP). A container started
# then is announced by the plugin to FRR, by FRR to leaf2 and on through the
# fabric, is reached from host1 over IPv4 and IPv6, and is withdrawn
# everywhere on `docker rm -f`; the host's kernel gets no route to it from
# FRR. The plugin logs in JSON meanwhile (the samples in docs/operations.md).
# At the end FRR is stopped and the plugin gets its own settings back.

host2_frr_settings="LOG_FORMAT=json BGP_LISTEN_PORT=0 BGP_ROUTER_ID=10.255.2.1 BGP_NEIGHBORS=10.0.2.1:internal,fd00:0:2::2:internal"
host2_frr_dir=/run/lab/frr-host2
frr_peer_up() {
	vtysh_ns host2 "show bgp $1 unicast summary json" |
		jq -e --arg p "$2" '[.peers // {} | to_entries[] | select(.key == $p) | .value.state] == ["Established"]' >/dev/null
}

# The order of docs/operations.md: the plugin lets go of port 179 and of the
# leaf first, then FRR starts.
dk host2 plugin disable -f "$PLUGIN" >/dev/null
# shellcheck disable=SC2086
dk host2 plugin set "$PLUGIN" $host2_frr_settings
dk host2 plugin enable "$PLUGIN" >/dev/null
start_frr host2 "$host2_frr_dir" "$FABRIC/host2.frr.conf"
wait_for "frr_peer_up ipv4 10.0.2.0 && frr_peer_up ipv6 fd00:0:2::1" 90 ||
	fail "hostfrr: host2's FRR did not establish its sessions to leaf2: $(vtysh_ns host2 'show bgp summary')"
wait_for "frr_peer_up ipv4 10.0.2.1 && frr_peer_up ipv6 fd00:0:2::2" 90 ||
	fail "hostfrr: the plugin's sessions to host2's FRR did not come up: $(vtysh_ns host2 'show bgp summary'); plugin: $(status_json host2 | jq -c .bgp)"
ip netns exec host2 ss -H -ltnp 'sport = :179' | grep -q bgpd || fail "hostfrr: bgpd does not hold port 179 on host2"
if ip netns exec host2 ss -H -ltnp 'sport = :179' | grep -q ipvlan-bgp; then fail "hostfrr: the plugin still listens on 179"; fi
status_json host2 | jq -e '[.bgp.peers[] | select(.state == "established") | .address] | sort == ["10.0.2.1", "fd00:0:2::2"]' >/dev/null ||
	fail "hostfrr: the plugin's peers are not just host2's FRR: $(status_json host2 | jq -c '.bgp.peers')"
pass "hostfrr: host2's FRR holds port 179 and the sessions to leaf2; the plugin peers only with it, over 10.0.2.1 and fd00:0:2::2 (iBGP)"

run_on host1 h1
run_on host2 h2
h2=$(container_ip host2 h2)
h2v6=$(container_ip host2 h2 6)
case $h2 in 10.244.2.*) ;; *) fail "hostfrr: h2 got $h2, outside host2's block" ;; esac
wait_for "vtysh_ns host2 'show bgp ipv4 unicast $h2/32 json' | jq -e '.paths | length == 1 and (.[0].valid // false)'" 60 ||
	fail "hostfrr: host2's FRR has no valid path for $h2/32 from the plugin: $(vtysh_ns host2 "show bgp ipv4 unicast $h2/32")"
wait_for "router_has leaf2 $h2/32 'via 10\.0\.2\.1 dev swp1' && router_has leaf1 $h2/32 via" 60 ||
	fail "hostfrr: $h2/32 did not reach leaf2 through host2's FRR: $(ip -n leaf2 route show "$h2/32")"
wait_for "ip -n leaf2 -6 route show $h2v6/128 | grep -q 'dev swp1'" 60 || fail "hostfrr: $h2v6/128 did not reach leaf2"
aspath=$(birdc_ns leaf2 show route "$h2/32" all | sed -n 's/.*BGP.as_path: *//p' | head -1)
[ "$aspath" = 65135 ] || fail "hostfrr: leaf2's path to $h2/32 has AS path '$aspath', want 65135 (host2's FRR, the plugin inside its AS)"
pass "hostfrr: $h2/32 and $h2v6/128: plugin -> host2's FRR -> leaf2 (AS path $aspath, next hop host2) -> leaf1"

wait_for "dk host1 exec h1 ping -c 1 -W 1 $h2" 60 || fail "hostfrr: h1 on host1 cannot reach $h2"
dk host1 exec h1 ping -c 3 -W 2 "$h2" >/dev/null || fail "hostfrr: h1 on host1 does not steadily reach $h2"
dk host1 exec h1 ping -6 -c 3 -W 2 "$h2v6" >/dev/null || fail "hostfrr: h1 on host1 cannot reach $h2v6"
h1=$(container_ip host1 h1)
dk host2 exec h2 ping -c 3 -W 2 "$h1" >/dev/null || fail "hostfrr: h2 cannot reach $h1 through the routes host2's FRR installed"
wait_for "ip -n host2 route show $h1/32 | grep -q 'proto bgp'" 30 || fail "hostfrr: host2's route to $h1/32 is not FRR's: $(ip -n host2 route show "$h1/32")"
# FRR installs what it learns (h1's route, above) but not the plugin's own.
if [ -n "$(ip -n host2 route show "$h2/32")" ] || [ -n "$(ip -n host2 -6 route show "$h2v6/128")" ]; then
	fail "hostfrr: host2's FRR installed the container's own route in the host's kernel: $(ip -n host2 route show "$h2/32")"
fi
pass "hostfrr: h1 (host1) and h2 (host2) reach each other over IPv4 and IPv6; host2's way out is FRR's kernel routes (proto bgp), and h2's own routes stay out of host2's kernel (table-map)"

dk host2 rm -f h2 >/dev/null
wait_for "! router_has leaf2 $h2/32 via && ! router_has leaf1 $h2/32 via" 60 || fail "hostfrr: $h2/32 stayed on the leaves after docker rm -f"
vtysh_ns host2 "show bgp ipv4 unicast $h2/32 json" | jq -e '(.paths // []) | length == 0' >/dev/null ||
	fail "hostfrr: host2's FRR still holds $h2/32"
pass "hostfrr: docker rm -f h2 withdrew $h2/32 from host2's FRR, leaf2 and leaf1"
dk host1 rm -f h1 >/dev/null
cp "$LAB_LOGS/dockerd-host2.log" /payload-out/hostfrr-dockerd-host2.log

# Back to the plugin's own sessions: FRR stops, the plugin gets host2's
# settings again.
for pid in "$host2_frr_dir"/*.pid; do kill "$(cat "$pid")" 2>/dev/null || true; done
wait_for "! ip netns exec host2 ss -H -ltn 'sport = :179' | grep -q ." 30 || fail "hostfrr: FRR did not let go of port 179"
dk host2 plugin disable -f "$PLUGIN" >/dev/null
# shellcheck disable=SC2046
dk host2 plugin set "$PLUGIN" LOG_FORMAT=text BGP_LISTEN_PORT= $(host2_settings)
dk host2 plugin enable "$PLUGIN" >/dev/null
wait_for "birdc_ns leaf2 show protocols host2_v4 | grep -q Established && birdc_ns leaf2 show protocols host2_v6 | grep -q Established" 120 ||
	fail "hostfrr: the plugin's own sessions to leaf2 did not come back"
pass "hostfrr: FRR stopped, host2's plugin peers with leaf2 itself again"
