#!/usr/bin/env bash
# Run one scenario inside the lab VM (real ipvlan kernel, real dockerd) and collect results.
#
#   integration/lab/run.sh [--timeout SECS] [--mem MB] [--cpus N] PAYLOAD_DIR SCENARIO_CMD...
#
# PAYLOAD_DIR is copied into the guest as /payload (for instance the scenarios plus the
# plugin binary); SCENARIO_CMD is run there, e.g. /payload/selftest.sh. The guest helpers in
# integration/lab/guest/ are shipped along as /lab (source /lab/lib.sh from a scenario), so
# changing them never forces an image rebuild. Anything the scenario writes into
# /payload-out/ comes back in the output directory.
#
# Output directory: $LAB_OUT, default <repo>/.cache/lab/out/<timestamp>/, holding
#   status, scenario.log, timings.txt, dmesg.txt, payload-out/ (from the guest) and
#   console.log (serial console), qemu.log (qemu's own messages).
#
# Exit status: the scenario's own status (124 when the in-guest timeout stopped it), or 125
# when the lab itself failed (no image, guest crashed or hung before writing a status).
#
# A guest kernel that panics before the scenario wrote its status is booted again, up to
# LAB_PANIC_RETRIES times (default 1), with a line saying so: under TCG the guest kernel
# rarely oopses on its own (an int3 in sched_clock_cpu while live-patching its code, seen
# once in 47 runs), which says nothing of the scenario. A scenario that fails is never rerun.
set -euo pipefail
args=("$@")

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache="$repo/.cache/lab"

usage() {
	sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}
die() {
	printf 'lab: ERROR: %s\n' "$*" >&2
	exit 125
}

timeout_s=600
mem_mb=3072
cpus=2
while [ $# -gt 0 ]; do
	case $1 in
	--timeout) timeout_s=${2:?}; shift 2 ;;
	--mem) mem_mb=${2:?}; shift 2 ;;
	--cpus) cpus=${2:?}; shift 2 ;;
	-h | --help) usage ;;
	--) shift; break ;;
	-*) usage ;;
	*) break ;;
	esac
done
[ $# -ge 2 ] || usage
payload=$1
shift
[ -d "$payload" ] || die "payload directory '$payload' does not exist"
case $timeout_s in '' | *[!0-9]*) die "--timeout wants seconds" ;; esac

t0=$(date +%s)

# 1. The image of $LAB_SUITE (built on first use, then cached; see image.sh), or the image
# directory LAB_IMAGE names (to boot an image by hand, e.g. while changing image.sh).
if [ -n "${LAB_IMAGE:-}" ]; then
	img=$(cd "$LAB_IMAGE" && pwd) || die "LAB_IMAGE=$LAB_IMAGE is no directory"
else
	img=$("$here/image.sh" | tail -n1) || die "image build failed"
fi
# Keep the image from being pruned by a concurrent rebuild while this VM uses it.
exec 8>>"$img.lock"
flock -s 8
[ -f "$img/complete" ] || die "image.sh returned no image ($img)"
t_image=$(date +%s)

out=${LAB_OUT:-$cache/out/$(date +%Y%m%d-%H%M%S)}
if [ -z "${LAB_OUT:-}" ] && [ -e "$out" ]; then out="$out-$$"; fi
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d "$cache/run.XXXXXX")
qpid=
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	if [ -n "$qpid" ] && kill -0 "$qpid" 2>/dev/null; then kill "$qpid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 2. Payload disk: one tar, payload/ -> /payload and lab/ -> /lab in the guest.
mkdir -p "$work/stage/lab"
cp -a "$here/guest/." "$work/stage/lab/"
printf '%s\0' "$@" >"$work/stage/lab/run.args"
printf 'TIMEOUT=%s\n' "$timeout_s" >"$work/stage/lab/run.conf"
# Rename ./x to payload/x; 'S' keeps symlink targets inside the payload untouched.
tar -cf "$work/payload.tar" -C "$payload" --transform 's,^\.,payload,S' .
tar -rf "$work/payload.tar" -C "$work/stage" lab

# 3. Output disk: sparse, the guest writes a single tar from its first byte.
truncate -s "${LAB_OUT_MB:-1024}M" "$work/out.img"
: >"$work/live.log"

# 4. Boot. No KVM here (it hangs or fails on these machines): TCG with all host CPU features
# the emulator knows, one host thread per vCPU. -no-reboot + panic=-1 make any guest end
# (poweroff, panic, tini exiting) end qemu. The host-side timeout covers a guest that hangs
# before its own timeout can fire (boot trouble): scenario timeout plus a boot margin.
host_timeout=$((timeout_s + ${LAB_BOOT_MARGIN:-300}))
echo "lab: image $img" >&2
echo "lab: output $out" >&2
echo "lab: booting (timeout ${timeout_s}s in guest, ${host_timeout}s for qemu): $*" >&2
timeout -k 10 "$host_timeout" qemu-system-x86_64 \
	-name lab -nodefaults -display none -no-reboot \
	-accel tcg,thread=multi -cpu max -smp "$cpus" -m "$mem_mb" \
	-kernel "$img/vmlinuz" -initrd "$img/initrd.img" \
	-append "console=ttyS0 panic=-1 loglevel=4" \
	-drive "file=$img/rootfs.ext4,format=raw,if=virtio,snapshot=on" \
	-drive "file=$work/payload.tar,format=raw,if=virtio,readonly=on" \
	-drive "file=$work/out.img,format=raw,if=virtio" \
	-serial "file:$out/console.log" -serial "file:$work/live.log" \
	-nic none >"$out/qemu.log" 2>&1 &
qpid=$!

# Stream the scenario's log while the VM runs; tail ends when qemu does.
tail -n +1 -F --pid="$qpid" "$work/live.log" 2>/dev/null || true
qrc=0
wait "$qpid" || qrc=$?
qpid=
t_end=$(date +%s)

# 5. Results.
tar -xf "$work/out.img" -C "$out" 2>/dev/null || true
if [ ! -f "$out/status" ]; then
	cp "$work/live.log" "$out/scenario.partial.log"
	if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
		echo "lab: ERROR: qemu killed after ${host_timeout}s: the guest hung" >&2
	else
		echo "lab: ERROR: the guest wrote no status (crashed?), qemu exit $qrc" >&2
	fi
	grep -m1 -E 'Kernel panic|BUG:|Oops|lab-initramfs:' "$out/console.log" >&2 || true
	echo "lab: --- last lines of $out/console.log ---" >&2
	tail -n 40 "$out/console.log" >&2 || true
	[ -s "$out/qemu.log" ] && { echo "lab: --- qemu.log ---" >&2; tail -n 20 "$out/qemu.log" >&2; }
	retries=${LAB_PANIC_RETRIES:-1}
	if [ "$retries" -gt 0 ] && grep -q 'Kernel panic' "$out/console.log"; then
		echo "lab: the guest kernel panicked before the scenario ended (results kept in $out); booting again, $retries retry left" >&2
		cleanup
		trap - EXIT
		LAB_PANIC_RETRIES=$((retries - 1)) LAB_OUT='' exec "$0" "${args[@]}"
	fi
	exit 125
fi
status=$(cat "$out/status")
[ -f "$out/versions.txt" ] && echo "lab: guest ran $(tr '\n' ' ' <"$out/versions.txt")" >&2

# shellcheck disable=SC1091
. "$out/timings.txt" 2>/dev/null || true
echo "lab: image $((t_image - t0))s, boot to init ${init_start:-?}s, scenario" \
	"$(awk -v a="${scenario_start:-0}" -v b="${scenario_end:-0}" 'BEGIN { printf "%.1f", b - a }')s," \
	"total $((t_end - t0))s" >&2
[ "$status" = 124 ] && echo "lab: scenario TIMED OUT after ${timeout_s}s" >&2
echo "lab: scenario exit status $status; results in $out" >&2
exit "$status"
