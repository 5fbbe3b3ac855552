#!/bin/bash
# `make bench`: the host-scale measurements (issue 13), in the VM for its
# ipvlan kernel. Under emulation only ratios count: each figure is printed
# beside a baseline measured in the same run.
#  1. the plugin binary alone (no Docker), from the bench test binary:
#     1,000 containers' calls from 50 callers against the baseline binary,
#     and one container's cycle step by step beside the bare kernel work;
#     and 1,000 containers' endpoints with a BIRD leaf;
#  2. containers through Docker on one host (scale.sh).
set -euo pipefail
. /lab/lib.sh
export IPVLAN_BGP_BIN=/payload/plugin/rootfs/ipvlan-bgp IPVLAN_BGP_BASELINE_BIN=/payload/baseline/ipvlan-bgp
# The plugins' state goes to the VM's disk: /tmp is tmpfs, where an fsync
# costs nothing and durability would go unmeasured.
export TMPDIR=/var/tmp/bench
mkdir -p "$TMPDIR"
cd "$TMPDIR"
lab_log "bench: 1,000 containers' calls from 50 callers, this plugin against the baseline $(cat /payload/baseline/ref)"
/payload/tests/bench.test -test.run XXX -test.bench ConcurrentCalls -test.benchtime 1x | tee /payload-out/concurrent.txt
lab_log "bench: one container's cycle through the socket beside the bare kernel work"
/payload/tests/bench.test -test.run XXX -test.bench EndpointCycle -test.benchtime 100x -test.v | tee /payload-out/cycle.txt
lab_log "bench: 1,000 containers' endpoints through the socket, with a BIRD leaf"
/payload/tests/bench.test -test.run XXX -test.bench ThousandEndpoints -test.benchtime 1x -test.v | tee /payload-out/thousand.txt
. /payload/scenarios/scale.sh
pass "bench"
