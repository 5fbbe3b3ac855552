#!/bin/bash
# The kernel-dependent unit tests (ipvlan, dummy and 802.1q links), which
# skip on the build machines, run here where the kernel has them. With
# IPVLAN_BGP_REQUIRE_KERNEL=1 a missing link type fails instead of skipping.
set -euo pipefail
. /lab/lib.sh

status=0
for t in /payload/tests/*.test; do
	name=$(basename "$t" .test)
	lab_log "go test ./$name inside the VM"
	if (cd /tmp && IPVLAN_BGP_REQUIRE_KERNEL=1 "$t" -test.count=1 -test.v 2>&1 | tee "/payload-out/$name-test.log" | grep -E '^(--- |FAIL|PASS|ok)'); then
		if grep -q -- '--- SKIP' "/payload-out/$name-test.log"; then
			grep -- '--- SKIP' "/payload-out/$name-test.log"
			fail "$name: tests skipped inside the VM, where every kernel feature exists"
		fi
		pass "$name tests pass on a kernel with ipvlan, dummy and vlan links"
	else
		status=1
		lab_log "FAIL: $name tests"
	fi
done
exit $status
