#!/bin/sh
# publish.sh REF PLUGIN_DIR: publish the plugin built in PLUGIN_DIR (what
# `make plugin` makes: config.json and rootfs/) to a registry as REF
# (registry.example.com:5000/ipvlan-bgp:1.2.0), so that every Docker host can
# `docker plugin install` it. `make publish` and the lab's registry step run
# it; DOCKER names the docker command (default: docker).
set -eu
ref=${1:?usage: publish.sh REGISTRY/NAME:TAG PLUGIN_DIR}
dir=${2:?usage: publish.sh REGISTRY/NAME:TAG PLUGIN_DIR}
docker=${DOCKER:-docker}
[ -f "$dir/config.json" ] && [ -d "$dir/rootfs" ] || { echo "publish: $dir is not a plugin directory (run make plugin)" >&2; exit 1; }
case $ref in
*/*:*) ;;
*) echo "publish: $ref: want REGISTRY/NAME:TAG, e.g. registry.example.com:5000/ipvlan-bgp:1.0" >&2; exit 1 ;;
esac
# A local plugin of the same reference is what an earlier publish from this
# host left, or an install of it: say so, and refuse to replace a running one.
if $docker plugin inspect "$ref" >/dev/null 2>&1; then
	if [ "$($docker plugin inspect -f '{{.Enabled}}' "$ref")" = true ]; then
		echo "publish: $ref is installed and enabled on this host; publish under another tag, or disable it first" >&2
		exit 1
	fi
	echo "publish: removing this host's disabled copy of $ref to create it again"
	$docker plugin rm "$ref" >/dev/null
fi
$docker plugin create "$ref" "$dir" >/dev/null
if ! $docker plugin push "$ref"; then
	$docker plugin rm "$ref" >/dev/null
	echo "publish: push to ${ref%%/*} failed (is the registry reachable? a plain-HTTP one must be in dockerd's insecure-registries)" >&2
	exit 1
fi
# Pushing needs a local copy; installing wants none in the way.
$docker plugin rm "$ref" >/dev/null
echo "published $ref: install it on each host with"
echo "  docker plugin install --grant-all-permissions --alias ipvlan-bgp $ref SETTING=VALUE..."
