#!/usr/bin/env bash
# Build (or reuse) the lab VM image: kernel, initramfs and ext4 root filesystem.
#
# Why a VM at all: the machines this project runs on have no ipvlan, dummy or 802.1q
# link types and no Docker engine. Debian's cloud kernel has all of them as modules, and a
# debootstrapped Debian root filesystem gives us a real dockerd, FRR and BIRD.
#
# Output: the path of the image directory on the LAST line of stdout (all progress goes to
# stderr). The directory holds vmlinuz, initrd.img, rootfs.ext4 and info.txt.
#
# Cache: <repo>/.cache/lab/images/<key>/ where <key> hashes this script, the guest init that
# is baked into the root filesystem, the kernel package version and the Debian mirror/suite.
# When any of those change the image is rebuilt; otherwise it is reused as is. A build
# happens in a temporary directory next to the cache and is renamed into place only when
# complete, so an interrupted build never leaves a half-built image behind.
#
# Environment knobs (all optional):
#   LAB_MIRROR   Debian mirror for debootstrap (default: the host's apt sources' mirror)
#   LAB_SUITE    Debian suite (default: bookworm)
#   LAB_REBUILD  set to 1 to ignore an existing cached image
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache="$repo/.cache/lab"
suite=${LAB_SUITE:-bookworm}

# Packages in the guest's root filesystem. docker.io pulls containerd, runc, tini and
# iptables, but we name them so a dependency change upstream cannot silently drop them.
guest_packages=(
	docker.io containerd runc tini iptables iproute2 kmod busybox-static
	iputils-ping iputils-tracepath traceroute procps
	frr bird2 radvd tcpdump docker-registry ca-certificates jq
)

# The virtio modules the initramfs loads, in dependency order (no modprobe in there).
initramfs_modules=(virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk)

# Files that go into the image: changing any of them changes the cache key.
baked_files=("$here/image.sh" "$here/guest/init")

log() { printf 'lab-image: %s\n' "$*" >&2; }
die() {
	printf 'lab-image: ERROR: %s\n' "$*" >&2
	exit 1
}

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot and mknod need it)"

export DEBIAN_FRONTEND=noninteractive
apt_updated=0
apt_update_once() {
	if [ "$apt_updated" = 0 ]; then
		log "apt-get update"
		apt-get update -qq >&2
		apt_updated=1
	fi
}

# Host tools. Installed only when missing so a cached run never touches apt.
ensure_host_tools() {
	local need=() pkg
	for pkg in qemu-system-x86 debootstrap busybox-static e2fsprogs cpio; do
		if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
			need+=("$pkg")
		fi
	done
	if [ "${#need[@]}" -gt 0 ]; then
		apt_update_once
		log "installing host packages: ${need[*]}"
		apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
	fi
}

# The Debian mirror the host's apt already uses: on CI machines that is often the only
# mirror reachable (a local mirror or a snapshot behind a proxy), so debootstrap must use it.
# Reads both the one-line format (*.list) and the deb822 format (*.sources).
host_mirror() {
	local f m
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -r "$f" ] || continue
		m=$(awk -v s="$suite" '
			$1 == "deb" {
				i = 2
				if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
				if ($(i + 1) == s) { print $i; exit }
			}' "$f")
		if [ -n "$m" ]; then
			echo "$m"
			return
		fi
	done
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -r "$f" ] || continue
		m=$(awk -v s="$suite" '
			BEGIN { RS = "" }
			{
				types = ""; uris = ""; suites = ""; enabled = "yes"
				n = split($0, L, "\n")
				for (j = 1; j <= n; j++) {
					line = L[j]
					if (line ~ /^#/) continue
					if (line ~ /^Types:/) types = " " substr(line, 7) " "
					else if (line ~ /^URIs:/) uris = substr(line, 6)
					else if (line ~ /^Suites:/) suites = " " substr(line, 8) " "
					else if (line ~ /^Enabled:/) enabled = substr(line, 9)
				}
				gsub(/[ \t]+/, " ", types); gsub(/[ \t]+/, " ", suites)
				gsub(/[ \t]/, "", enabled)
				if (enabled != "no" && types ~ / deb / && index(suites, " " s " ")) {
					split(uris, U, " ")
					for (k in U) if (U[k] != "") { print U[k]; exit }
				}
			}' "$f")
		if [ -n "$m" ]; then
			echo "$m"
			return
		fi
	done
}

# The kernel package linux-image-cloud-amd64 points to today, and its version.
kernel_package() {
	apt-cache depends linux-image-cloud-amd64 2>/dev/null |
		awk '/Depends: linux-image-[0-9].*-cloud-amd64/ { print $2; exit }'
}

ensure_host_tools

# apt's own HTTP proxy setting, if any, applies to debootstrap too.
if [ -z "${http_proxy:-}" ]; then
	eval "$(apt-config shell http_proxy Acquire::http::Proxy)"
	if [ -n "${http_proxy:-}" ]; then export http_proxy; fi
fi

# resolve_kernel: set kpkg, kpkg_version and kver from the apt lists (updating them on a
# fresh machine that has none).
resolve_kernel() {
	kpkg=$(kernel_package)
	if [ -z "$kpkg" ]; then
		apt_update_once
		kpkg=$(kernel_package)
	fi
	[ -n "$kpkg" ] || die "cannot resolve linux-image-cloud-amd64 with apt-cache"
	kpkg_version=$(apt-cache policy "$kpkg" | awk '/Candidate:/ { print $2; exit }')
	kver=${kpkg#linux-image-} # e.g. 6.1.0-56-cloud-amd64, the guest's uname -r
}

# fetch_kernel: make sure the kernel .deb is in .cache/lab/dl and set kdeb to it. Old apt
# lists may name a version the mirror no longer has: then update the lists once and resolve
# again (the version, and so the cache key, may change). Only the .deb is fetched; it is
# unpacked later, never installed on the host.
fetch_kernel() {
	local pattern
	pattern="${kpkg}_${kpkg_version//:/%3a}_*.deb"
	kdeb=$(find "$cache/dl" -maxdepth 1 -name "$pattern" | head -n1)
	[ -n "$kdeb" ] && return 0
	log "downloading $kpkg $kpkg_version"
	# APT::Sandbox::User=root: the _apt user cannot write into a root-owned cache dir.
	if ! (cd "$cache/dl" && apt-get download -qq -o APT::Sandbox::User=root "$kpkg=$kpkg_version" >&2); then
		[ "$apt_updated" = 0 ] || die "cannot download $kpkg $kpkg_version"
		log "download failed; refreshing the apt lists"
		apt_update_once
		resolve_kernel
		fetch_kernel
		return
	fi
	kdeb=$(find "$cache/dl" -maxdepth 1 -name "$pattern" | head -n1)
	[ -n "$kdeb" ] || die "apt-get download left no $pattern"
}

resolve_kernel

mirror=${LAB_MIRROR:-$(host_mirror)}
if [ -z "$mirror" ]; then
	mirror=http://deb.debian.org/debian
	log "warning: no '$suite' entry in the host's apt sources; using $mirror"
fi

mkdir -p "$cache/images" "$cache/dl"

# One build at a time: a second run.sh started meanwhile waits here, then reuses the result.
exec 9>"$cache/.image.lock"
flock 9

fetch_kernel

key=$(
	{
		echo "lab-image v1 $suite $mirror $kpkg $kpkg_version"
		cat "${baked_files[@]}"
	} | sha256sum | cut -c1-16
)
dest="$cache/images/$key"

if [ -f "$dest/complete" ] && [ "${LAB_REBUILD:-0}" != 1 ]; then
	log "reusing cached image $dest"
	echo "$dest"
	exit 0
fi

# Remove leftovers of interrupted builds (we hold the lock, so none of them is live).
# debootstrap mounts proc/sys (and may bind /dev) inside its target: unmount before deleting,
# and never let rm cross into another filesystem.
cleanup_dir() {
	local d=$1 mnt
	[ -d "$d" ] || return 0
	findmnt -rn -o TARGET | awk -v p="$d/" 'index($0, p) == 1' | sort -r |
		while read -r mnt; do umount -l "$mnt" 2>/dev/null || true; done
	rm -rf --one-file-system "$d"
}
for old in "$cache"/build.*; do
	[ -e "$old" ] && cleanup_dir "$old"
done

tmp=$(mktemp -d "$cache/build.XXXXXX")
trap 'cleanup_dir "$tmp"' EXIT
t0=$(date +%s)
log "building image $key: kernel $kpkg $kpkg_version, $suite from $mirror"

# 1. Kernel, unpacked from the .deb fetch_kernel put in the cache.
dpkg-deb -x "$kdeb" "$tmp/kernel"
[ -f "$tmp/kernel/boot/vmlinuz-$kver" ] || die "no vmlinuz-$kver in $kpkg"
kmods="$tmp/kernel/lib/modules/$kver"

# 2. Root filesystem. minbase: no init system, no docs beyond what packages ship.
log "debootstrap (minbase, ${#guest_packages[@]} extra packages)"
root="$tmp/root"
include=$(
	IFS=,
	echo "${guest_packages[*]}"
)
if ! debootstrap --variant=minbase --components=main --include="$include" \
	"$suite" "$root" "$mirror" >"$tmp/debootstrap.out" 2>&1; then
	tail -n 30 "$tmp/debootstrap.out" >&2
	[ -f "$root/debootstrap/debootstrap.log" ] && tail -n 30 "$root/debootstrap/debootstrap.log" >&2
	die "debootstrap failed"
fi
log "debootstrap done after $(($(date +%s) - t0)) s"

# Kernel modules inside the guest so modprobe works there (/lib -> usr/lib on bookworm).
mkdir -p "$root/lib/modules"
cp -a "$kmods" "$root/lib/modules/"
chroot "$root" depmod "$kver"

# Guest identity and our init (run by tini as PID 1, see the initramfs below).
echo lab >"$root/etc/hostname"
printf '127.0.0.1\tlocalhost lab\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
: >"$root/etc/resolv.conf"
install -D -m 0755 "$here/guest/init" "$root/opt/lab/init"

# Trim what a lab never reads, to keep the image and mkfs time small.
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/* \
	"$root"/usr/share/info/* "$root"/usr/share/locale/*

# 3. A busybox image for `docker import`: busybox-static plus its applet links, enough for
# sh, ip, ping, traceroute, nc, wget and httpd inside containers (no registry needed).
bb="$tmp/busybox-rootfs"
mkdir -p "$bb"/{bin,sbin,usr/bin,usr/sbin,etc,root,tmp,proc,sys,dev}
chmod 1777 "$bb/tmp"
cp "$root/bin/busybox" "$bb/bin/busybox"
"$bb/bin/busybox" --list-full | while read -r applet; do
	[ "$applet" = bin/busybox ] && continue
	[ -e "$bb/$applet" ] || ln -s /bin/busybox "$bb/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$bb/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$bb/etc/group"
tar -C "$bb" --numeric-owner --owner=0 --group=0 -cf "$root/opt/lab/busybox.tar" .

# 4. Initramfs: the cloud kernel has ext4 built in but virtio as modules, so a tiny busybox
# initramfs loads them, mounts /dev/vda and switches to the real root.
ird="$tmp/initramfs"
mkdir -p "$ird"/{bin,dev,proc,sys,newroot,lib/modules}
cp "$root/bin/busybox" "$ird/bin/busybox"
ln -s busybox "$ird/bin/sh"
mknod -m 600 "$ird/dev/console" c 5 1 # the kernel opens it before /init runs
for m in "${initramfs_modules[@]}"; do
	f=$(find "$kmods/kernel" -name "$m.ko" | head -n1)
	[ -n "$f" ] || die "module $m not found in $kver"
	cp "$f" "$ird/lib/modules/$m.ko"
done
cat >"$ird/init" <<EOF
#!/bin/sh
# Generated by integration/lab/image.sh: load virtio, mount the root disk, hand over.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
die() { echo "lab-initramfs: \$*" >/dev/console; poweroff -f; }
for m in ${initramfs_modules[*]}; do
	insmod /lib/modules/\$m.ko || die "insmod \$m failed"
done
i=0
while [ ! -b /dev/vda ]; do
	i=\$((i + 1)); [ \$i -gt 200 ] && die "no /dev/vda after 10 s"
	usleep 50000
done
mount -t ext4 /dev/vda /newroot || die "cannot mount /dev/vda"
umount /proc /sys
mount --move /dev /newroot/dev
# tini as PID 1 reaps the zombies that dockerd, containerd shims and scenarios leave behind.
exec switch_root /newroot /usr/bin/tini -s -- /opt/lab/init
EOF
chmod 755 "$ird/init"
mkdir -p "$tmp/out"
(cd "$ird" && find . | cpio -o -H newc -R 0:0 --quiet) >"$tmp/out/initrd.img"

# 5. The ext4 image, with room for Docker's data (the VM opens it with snapshot=on, so
# writes land in a throwaway overlay and the cached image never changes). Inode tables and
# journal are initialised now: otherwise the guest kernel's ext4lazyinit thread zeroes them
# in the background of every run, which is slow under emulation.
used_mb=$(du -sm "$root" | cut -f1)
size_mb=$((used_mb + 3072))
log "mkfs.ext4: ${used_mb} MB of files in a ${size_mb} MB sparse image"
mkfs.ext4 -q -F -L labroot -E lazy_itable_init=0,lazy_journal_init=0 -d "$root" "$tmp/out/rootfs.ext4" "${size_mb}M"

cp "$tmp/kernel/boot/vmlinuz-$kver" "$tmp/out/vmlinuz"
cat >"$tmp/out/info.txt" <<EOF
key=$key
kernel_package=$kpkg
kernel_package_version=$kpkg_version
kernel_release=$kver
suite=$suite
mirror=$mirror
built=$(date -u +%Y-%m-%dT%H:%M:%SZ)
build_seconds=$(($(date +%s) - t0))
EOF
touch "$tmp/out/complete"

# Atomic publish: rename within the same filesystem.
rm -rf "$dest"
mv "$tmp/out" "$dest"

# Old images are never reused once the key changed; drop them to save disk, except those a
# running VM still uses (run.sh holds a shared lock on images/<key>.lock while qemu runs).
for old in "$cache"/images/*/; do
	old=${old%/}
	[ "$old" = "$dest" ] && continue
	# shellcheck disable=SC2094 # the lock file goes with the image it guards
	(
		flock -n -x 8 || exit 0
		rm -rf --one-file-system "$old"
		rm -f "$old.lock"
	) 8>>"$old.lock"
done

# Kernel packages other than the one in use are not needed any more.
find "$cache/dl" -maxdepth 1 -name '*.deb' ! -path "$kdeb" -delete

log "image ready in $(($(date +%s) - t0)) s: $dest"
echo "$dest"
