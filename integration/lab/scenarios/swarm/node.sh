#!/bin/sh
# On every node of the swarm, managers and workers alike, once the plugin is
# installed: the network's configuration, local to the node. The subnets are
# the same everywhere; each node allocates from its own block of them (the
# plugin's IPAM_LOCAL_RANGES), so no two tasks get the same address.
set -e
docker network create --config-only --ipam-driver ipvlan-bgp:latest \
	--subnet 10.244.0.0/16 --ipv6 --subnet fd00:244::/48 \
	-o parent=eth0 apps-config
