# shellcheck shell=bash
# Scenario l: `docker run` with the plugin beside Docker's own ipvlan driver
# on the same host in the same run, alternating, median of 5 each, and the
# same for `docker rm -f`. Under emulation only the ratio means anything.

dk host2 network create -d ipvlan -o ipvlan_mode=l3 --subnet 10.246.0.0/24 l-docker >/dev/null

# time_ms CMD...: milliseconds CMD takes.
time_ms() {
	local start
	start=$(now_ms)
	"$@" >/dev/null
	echo $(($(now_ms) - start))
}

# median: the middle of the numbers on stdin.
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

: >/tmp/l-plugin-run
: >/tmp/l-docker-run
: >/tmp/l-plugin-rm
: >/tmp/l-docker-rm
for i in 1 2 3 4 5; do
	time_ms dk host2 run -d --name "l-p$i" --net fabric busybox sleep 86400 >>/tmp/l-plugin-run
	time_ms dk host2 run -d --name "l-d$i" --net l-docker busybox sleep 86400 >>/tmp/l-docker-run
done
for i in 1 2 3 4 5; do
	time_ms dk host2 rm -f "l-p$i" >>/tmp/l-plugin-rm
	time_ms dk host2 rm -f "l-d$i" >>/tmp/l-docker-rm
done
dk host2 network rm l-docker >/dev/null
p_run=$(median </tmp/l-plugin-run)
d_run=$(median </tmp/l-docker-run)
p_rm=$(median </tmp/l-plugin-rm)
d_rm=$(median </tmp/l-docker-rm)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
lab_log "l: docker run, median of 5: ipvlan-bgp $p_run ms, Docker's ipvlan $d_run ms ($(ratio "$p_run" "$d_run")x); docker rm -f: $p_rm ms against $d_rm ms ($(ratio "$p_rm" "$d_rm")x)"
pass "l: docker run with ipvlan-bgp took $(ratio "$p_run" "$d_run")x Docker's own ipvlan driver's time, docker rm -f $(ratio "$p_rm" "$d_rm")x (same host, same run, alternating)"
