#!/bin/bash
# Every plugin scenario (`make integration`), on one fabric in one boot so the
# suite stays within CI's time: leaf2 runs BIRD here (the demo runs FRR
# there), host1 peers with leaf1 unnumbered over its ipvlan parent (the
# seed's failure), host3 and host4 are dual-homed to both leaves.
#
# Each scenario is a file beside this one; they run in an order where none
# depends on another's leftovers, and the restarts, the fault injection and
# the reboot (which cuts host2's power) come last.
set -euo pipefail
. /lab/lib.sh
. /payload/scenarios/fabric.sh
. /payload/scenarios/checks.sh

fabric_up bird
hosts_up host1 host2 host3 host4
plugin_publish host1
installs=()
for h in host1 host2 host3 host4; do
	installs+=("plugin_install $h $("${h}_settings") && net_create $h fabric")
done
in_parallel "${installs[@]}"
wait_sessions

# `make integration SCENARIOS="ecmp restarts"` runs a subset.
selected="routes path unnumbered ecmp bfd dualhomed hostfrr decommission egress engines speed badinput swarm compose upgrade restarts faults reboot"
[ -f /payload/scenarios/selected ] && selected=$(cat /payload/scenarios/selected)
for s in $selected; do
	lab_log "---- scenario $s ----"
	. "/payload/scenarios/scenario-$s.sh"
done
pass "all scenarios"
