#!/usr/bin/env bash
# Build (or reuse) the lab VM image of one Debian suite: kernel, initramfs and ext4 root
# filesystem.
#
# Why a VM at all: the machines this project runs on have no ipvlan, dummy or 802.1q
# link types and no Docker engine. Debian's cloud kernel has all of them as modules, and a
# Debian root filesystem made with mmdebstrap gives us a real dockerd, FRR and BIRD.
#
# Suites (LAB_SUITE): bookworm (Docker 20.10, FRR 8.4, BIRD 2.0, kernel 6.1), trixie
# (Docker 26.1, FRR 10.3, BIRD 2.17, kernel 6.12) and forky, Debian testing (Docker 28.5,
# containerd 2.1, FRR 10.7, BIRD 2.20, docker-compose, kernel 7.2 when this was written).
# Each image has THAT suite's packages and its own linux-image-cloud-amd64.
#
# Output: the path of the image directory on the LAST line of stdout (all progress goes to
# stderr). The directory holds vmlinuz, initrd.img, rootfs.ext4 and info.txt.
#
# Cache: <repo>/.cache/lab/images/<suite>/<key>/ where <key> hashes this script, the guest
# init that is baked into the root filesystem, the kernel package version, the date of the
# suite's Release file and the mirror/suite. When any of those change the image is rebuilt;
# otherwise it is reused as is. A build happens in a temporary directory next to the cache
# and is renamed into place only when complete, so an interrupted build never leaves a
# half-built image behind. A build prunes older images of its own suite only.
#
# The suite's package lists are kept apart from the host's, in .cache/lab/apt/<suite>/, and
# fetched only when missing (or when a download fails): a cached run never touches the
# network.
#
# Environment knobs (all optional):
#   LAB_SUITE    Debian suite: bookworm, trixie (default) or forky
#   LAB_MIRROR   Debian mirror (default: the mirror of the host's apt sources)
#   LAB_REBUILD  set to 1 to ignore an existing cached image
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache="$repo/.cache/lab"
suite=${LAB_SUITE:-trixie}

# Packages in the guest's root filesystem. docker.io pulls containerd, runc, tini and
# iptables, but we name them so a dependency change upstream cannot silently drop them.
guest_packages=(
	docker.io containerd runc tini iptables iproute2 kmod busybox-static
	iputils-ping iputils-tracepath traceroute procps
	frr bird2 radvd tcpdump docker-registry ca-certificates jq
)
case $suite in
bookworm) ;;                                        # docker.io 20.10 still holds the CLI
trixie) guest_packages+=(docker-cli docker-compose) ;; # docker.io 26 split the CLI out
*) guest_packages+=(docker-cli docker-compose) ;;      # forky, testing, sid: the newest engine
esac

# The virtio modules the initramfs loads, in dependency order (no modprobe in there).
initramfs_modules=(virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk)

# Files that go into the image: changing any of them changes the cache key.
baked_files=("$here/image.sh" "$here/guest/init")

log() { printf 'lab-image: %s\n' "$*" >&2; }
die() {
	printf 'lab-image: ERROR: %s\n' "$*" >&2
	exit 1
}

[ "$(id -u)" = 0 ] || die "must run as root (mmdebstrap, chroot and mknod need it)"

export DEBIAN_FRONTEND=noninteractive
# Host tools. Installed only when missing so a cached run never touches apt. mmdebstrap,
# not debootstrap: Debian 12's debootstrap cannot install trixie or testing (dpkg stops on
# systemd's pre-dependency), mmdebstrap lets apt order the installation.
ensure_host_tools() {
	local need=() pkg
	for pkg in qemu-system-x86 mmdebstrap debian-archive-keyring busybox-static e2fsprogs cpio xz-utils; do
		if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
			need+=("$pkg")
		fi
	done
	if [ "${#need[@]}" -gt 0 ]; then
		log "apt-get update"
		apt-get update -qq >&2
		log "installing host packages: ${need[*]}"
		apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
	fi
}

# host_mirror SUITE: the mirror of the host's apt source for SUITE. On CI machines that is
# often the only mirror reachable (a local mirror or a snapshot behind a proxy), so the
# image is built from it. Reads both the one-line format (*.list) and the deb822 format
# (*.sources).
host_mirror() {
	local s=$1 f m
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -r "$f" ] || continue
		m=$(awk -v s="$s" '
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
		m=$(awk -v s="$s" '
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

ensure_host_tools

# apt's own HTTP proxy setting, if any, applies to mmdebstrap too (it does not read the
# host's apt configuration, but apt inside it honours http_proxy).
if [ -z "${http_proxy:-}" ]; then
	eval "$(apt-config shell http_proxy Acquire::http::Proxy)"
	if [ -n "${http_proxy:-}" ]; then export http_proxy; fi
fi

# The mirror: LAB_MIRROR, else the host's source for this suite, else the one the host uses
# for its own release (a Debian 12 host lists bookworm only; the same mirror carries trixie
# and forky).
host_codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
mirror=${LAB_MIRROR:-$(host_mirror "$suite")}
[ -n "$mirror" ] || [ -z "$host_codename" ] || mirror=$(host_mirror "$host_codename")
if [ -z "$mirror" ]; then
	mirror=http://deb.debian.org/debian
	log "warning: no Debian mirror in the host's apt sources; using $mirror"
fi

mkdir -p "$cache/images/$suite" "$cache/dl/$suite" "$cache/apt/$suite"

# One build per suite at a time: a second run.sh of the same suite started meanwhile waits
# here, then reuses the result. Builds of different suites do not wait for each other.
exec 9>"$cache/images/$suite.lock"
flock 9

# The suite's own package lists, apart from the host's: its kernel is resolved and fetched
# with them. Testing's Release file on a snapshot mirror is past its Valid-Until, hence
# Check-Valid-Until false (here, in mmdebstrap and inside the guest).
aptdir="$cache/apt/$suite"
mkdir -p "$aptdir/lists/partial" "$aptdir/cache/archives/partial"
printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s %s main\n' "$mirror" "$suite" >"$aptdir/sources.list"
suite_apt_opts=(
	-o "Dir::Etc::SourceList=$aptdir/sources.list" -o Dir::Etc::SourceParts=/dev/null
	-o "Dir::State::Lists=$aptdir/lists" -o "Dir::Cache=$aptdir/cache"
	-o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null
	-o Acquire::Check-Valid-Until=false -o APT::Sandbox::User=root
)
suite_apt_updated=0
suite_apt_update() {
	log "apt-get update ($suite lists, $mirror)"
	apt-get "${suite_apt_opts[@]}" update -qq >&2 || die "cannot fetch the package lists of $suite from $mirror"
	suite_apt_updated=1
}
# The lists are reused only when they came from the same mirror.
if [ "$(cat "$aptdir/mirror" 2>/dev/null)" != "$mirror" ] || ! compgen -G "$aptdir/lists/*_Packages*" >/dev/null; then
	rm -f "$aptdir"/lists/*_* "$aptdir"/cache/*.bin
	suite_apt_update
	echo "$mirror" >"$aptdir/mirror"
fi

# resolve_kernel: set kpkg (what linux-image-cloud-amd64 depends on today), kpkg_version,
# kver (the guest's uname -r), kdebs_wanted (the packages holding vmlinuz and the modules:
# the image package itself up to trixie; forky splits it into linux-binary-*,
# linux-modules-* and linux-base-*) and release_date (of the suite's Release file).
resolve_kernel() {
	kpkg=$(apt-cache "${suite_apt_opts[@]}" depends linux-image-cloud-amd64 2>/dev/null |
		awk '/Depends: linux-image-[0-9].*-cloud-amd64/ { print $2; exit }')
	[ -n "$kpkg" ] || die "cannot resolve linux-image-cloud-amd64 in $suite"
	kpkg_version=$(apt-cache "${suite_apt_opts[@]}" policy "$kpkg" | awk '/Candidate:/ { print $2; exit }')
	kver=${kpkg#linux-image-}
	mapfile -t kdebs_wanted < <(
		echo "$kpkg"
		apt-cache "${suite_apt_opts[@]}" depends "$kpkg" 2>/dev/null |
			awk -v v="$kver" '$1 == "Depends:" && ($2 == "linux-binary-" v || $2 == "linux-modules-" v || $2 == "linux-base-" v) { print $2 }'
	)
	release_date=$(sed -n 's/^Date: //p' "$aptdir"/lists/*_dists_"${suite}"_InRelease 2>/dev/null | head -n1)
}

# fetch_kernel: make sure the kernel's .debs are in .cache/lab/dl/<suite> and set kdebs.
# Old lists may name a version the mirror no longer has: then update the lists once and
# resolve again (the version, and so the cache key, may change). The .debs are unpacked
# later, never installed on the host.
fetch_kernel() {
	local p f missing=()
	kdebs=()
	for p in "${kdebs_wanted[@]}"; do
		f=$(find "$cache/dl/$suite" -maxdepth 1 -name "${p}_${kpkg_version//:/%3a}_*.deb" | head -n1)
		if [ -n "$f" ]; then kdebs+=("$f"); else missing+=("$p=$kpkg_version"); fi
	done
	[ "${#missing[@]}" = 0 ] && return 0
	log "downloading ${missing[*]}"
	# APT::Sandbox::User=root: the _apt user cannot write into a root-owned cache dir.
	if ! (cd "$cache/dl/$suite" && apt-get "${suite_apt_opts[@]}" download -qq "${missing[@]}" >&2); then
		[ "$suite_apt_updated" = 0 ] || die "cannot download ${missing[*]}"
		log "download failed; refreshing the $suite lists"
		suite_apt_update
		resolve_kernel
	fi
	fetch_kernel
}

resolve_kernel
fetch_kernel

key=$(
	{
		echo "lab-image v2 $suite $mirror $kpkg $kpkg_version $release_date"
		cat "${baked_files[@]}"
	} | sha256sum | cut -c1-16
)
dest="$cache/images/$suite/$key"

if [ -f "$dest/complete" ] && [ "${LAB_REBUILD:-0}" != 1 ]; then
	log "reusing cached $suite image $dest"
	echo "$dest"
	exit 0
fi

# Remove leftovers of this suite's interrupted builds (we hold its lock, so none of them is
# live). mmdebstrap mounts proc/sys/dev inside its target: unmount before deleting, and
# never let rm cross into another filesystem.
cleanup_dir() {
	local d=$1 mnt
	[ -d "$d" ] || return 0
	findmnt -rn -o TARGET | awk -v p="$d/" 'index($0, p) == 1' | sort -r |
		while read -r mnt; do umount -l "$mnt" 2>/dev/null || true; done
	rm -rf --one-file-system "$d"
}
for old in "$cache/build-$suite".*; do
	[ -e "$old" ] && cleanup_dir "$old"
done

tmp=$(mktemp -d "$cache/build-$suite.XXXXXX")
trap 'cleanup_dir "$tmp"' EXIT
t0=$(date +%s)
log "building $suite image $key: kernel $kpkg $kpkg_version, $suite of $release_date from $mirror"

# 1. Kernel, unpacked from the .debs fetch_kernel put in the cache. vmlinuz is in /boot up
# to trixie and beside the modules in forky; modules under lib/ or usr/lib/.
for f in "${kdebs[@]}"; do dpkg-deb -x "$f" "$tmp/kernel"; done
kmods=$(find "$tmp/kernel" -maxdepth 4 -type d -path "*/lib/modules/$kver" | head -n1)
[ -n "$kmods" ] || die "no modules for $kver in ${kdebs[*]}"
vmlinuz=$tmp/kernel/boot/vmlinuz-$kver
[ -f "$vmlinuz" ] || vmlinuz=$kmods/vmlinuz
[ -f "$vmlinuz" ] || die "no vmlinuz for $kver in ${kdebs[*]}"

# 2. Root filesystem. minbase: no init system, no docs beyond what packages ship.
log "mmdebstrap $suite (minbase, ${#guest_packages[@]} extra packages)"
root="$tmp/root"
include=$(
	IFS=,
	echo "${guest_packages[*]}"
)
t1=$(date +%s)
if ! mmdebstrap --mode=root --variant=minbase --components=main \
	--aptopt='Acquire::Check-Valid-Until "false"' \
	--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
	--dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
	--include="$include" "$suite" "$root" "$mirror" >"$tmp/mmdebstrap.out" 2>&1; then
	tail -n 40 "$tmp/mmdebstrap.out" >&2
	die "mmdebstrap failed"
fi
log "mmdebstrap done after $(($(date +%s) - t1)) s"

# Kernel modules inside the guest so modprobe works there (/lib -> usr/lib since bookworm).
mkdir -p "$root/usr/lib/modules"
cp -a "$kmods" "$root/usr/lib/modules/"
chroot "$root" depmod "$kver"

# Guest identity and our init (run by tini as PID 1, see the initramfs below).
echo lab >"$root/etc/hostname"
printf '127.0.0.1\tlocalhost lab\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
: >"$root/etc/resolv.conf"
install -D -m 0755 "$here/guest/init" "$root/opt/lab/init"
# What the guest runs, for info.txt and the scenarios' logs.
# shellcheck disable=SC2016 # dpkg-query's format, not the shell's
chroot "$root" dpkg-query -W -f='${Package} ${Version}\n' docker.io containerd runc frr bird2 \
	radvd docker-registry iptables systemd docker-compose 2>/dev/null >"$root/opt/lab/versions.txt" || true

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
# Newer kernels build some of them in (modules.builtin) and ship the rest compressed
# (.ko.xz since trixie): busybox's insmod wants them plain.
ird_modules=()
for m in "${initramfs_modules[@]}"; do
	if grep -q "/$m\.ko\$" "$kmods/modules.builtin" 2>/dev/null; then continue; fi
	f=$(find "$kmods/kernel" -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" | head -n1)
	[ -n "$f" ] || die "module $m not found in $kver"
	case $f in
	*.xz) xz -dc "$f" >"$ird/lib/modules/$m.ko" ;;
	*.zst) zstd -qdc "$f" >"$ird/lib/modules/$m.ko" ;;
	*) cp "$f" "$ird/lib/modules/$m.ko" ;;
	esac
	ird_modules+=("$m")
done
cat >"$ird/init" <<EOF
#!/bin/sh
# Generated by integration/lab/image.sh: load virtio, mount the root disk, hand over.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
die() { echo "lab-initramfs: \$*" >/dev/console; poweroff -f; }
for m in ${ird_modules[*]}; do
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
mkfs.ext4 -q -F -L labroot -E lazy_itable_init=0,lazy_journal_init=0 -d "$root" "$tmp/out/rootfs.ext4" "${size_mb}M" >&2

cp "$vmlinuz" "$tmp/out/vmlinuz"
{
	cat <<EOF
key=$key
kernel_package=$kpkg
kernel_package_version=$kpkg_version
kernel_release=$kver
suite=$suite
suite_release_date=$release_date
mirror=$mirror
built=$(date -u +%Y-%m-%dT%H:%M:%SZ)
build_seconds=$(($(date +%s) - t0))
EOF
	# package=version of the guest's main packages
	sed 's/ /=/' "$root/opt/lab/versions.txt"
} >"$tmp/out/info.txt"
touch "$tmp/out/complete"

# Atomic publish: rename within the same filesystem.
rm -rf "$dest"
mv "$tmp/out" "$dest"

# prune DIR: delete an image that no running VM uses (run.sh holds a shared lock on
# DIR.lock while qemu runs).
prune() {
	# shellcheck disable=SC2094 # the lock file goes with the image it guards
	(
		flock -n -x 8 || exit 0
		rm -rf --one-file-system "$1"
		rm -f "$1.lock"
	) 8>>"$1.lock"
}
# Old images of this suite are never reused once the key changed: drop them to save disk.
# Other suites' images are not this build's business. Images of the layout before
# per-suite folders (images/<key>/, with kernels in dl/) are never used either.
for old in "$cache/images/$suite"/*/ "$cache"/images/*/; do
	old=${old%/}
	[ "$old" = "$dest" ] || [ ! -f "$old/complete" ] || prune "$old"
done
rm -f "$cache"/dl/*.deb

# Kernel packages other than the ones in use are not needed any more.
for f in "$cache/dl/$suite"/*.deb; do
	[[ " ${kdebs[*]} " == *" $f "* ]] || rm -f "$f"
done

log "image ready in $(($(date +%s) - t0)) s: $dest"
echo "$dest"
