#!/bin/sh
# On a manager, once every node has apps-config: the swarm network and two
# services on it. Swarm gives a network of a node-local driver no virtual IP,
# so the services resolve by DNS round robin (--endpoint-mode dnsrr): the
# service's name answers with the addresses of its tasks. --init: a small
# init runs first in each task and passes on the stop signal, which httpd
# would ignore as process 1 (every stop would wait out the 10 s grace).
set -e
docker network create -d ipvlan-bgp:latest --scope swarm --config-from apps-config \
	--attachable apps
# One web server on every node; each answers with its own hostname.
docker service create --detach --name web --mode global --endpoint-mode dnsrr --init \
	--network apps busybox \
	sh -c 'mkdir -p /www && hostname >/www/index.html && exec httpd -f -p 80 -h /www'
# Two replicas wherever the scheduler puts them.
docker service create --detach --name api --replicas 2 --endpoint-mode dnsrr --init \
	--network apps busybox \
	sh -c 'mkdir -p /www && hostname >/www/index.html && exec httpd -f -p 80 -h /www'
