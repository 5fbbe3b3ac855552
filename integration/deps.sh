#!/usr/bin/env bash
# Installs what the tests and the lab need from Debian packages, only when
# something is missing, so repeated runs cost nothing.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "$1" ]; }
have qemu-system-x86_64 || need+=(qemu-system-x86)
have mmdebstrap || need+=(mmdebstrap)
have /usr/lib/frr/bgpd || need+=(frr)
have bird || need+=(bird2)
have busybox || need+=(busybox-static)
have mkfs.ext4 || need+=(e2fsprogs)
have ip || need+=(iproute2)
have ping || need+=(iputils-ping)
have tcpdump || need+=(tcpdump)
have nft || need+=(nftables)

if [ ${#need[@]} -gt 0 ]; then
	echo "deps: installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
