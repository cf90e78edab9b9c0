#!/bin/bash
# test/bench/reload-bench.sh - what a configuration reload per second costs
# the acceptance rate and the DATA-to-250 latency (a benchmark, not a test).
#
#   reload-bench.sh [--record] [-n N] [-s SESSIONS] [-l BYTES] [-r RUNS]
#
# sluiced (fsync on, relaying to sluice-bench's sink on 127.0.0.2) takes N
# messages of BYTES from sluice-bench over SESSIONS concurrent sessions, one
# message per connection, RUNS times without reloads and RUNS times with
# `sluicectl config reload` once a second while the messages flow,
# alternating (plain, reload, plain, ...) so the machine's noise hits both
# alike.  The reloads alternate two valid files that differ in the banner
# and a limit.  Per run: accept_mps and p99 latency from sluice-bench;
# then the medians per mode, the throughput cost of reloading in percent
# and the p99 ratio.  Everything runs inside one private network namespace
# with only loopback; each injection is bounded (-T) and everything started
# is stopped on exit.  With --record the figures and the command are
# appended to BENCHMARKS.md.
set -u
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
top_builddir=${top_builddir:-$top_srcdir}
SLUICED=$top_builddir/sluiced
CTL=$top_builddir/sluicectl
BENCH=$top_builddir/sluice-bench
record=no N=100000 S=50 L=1024 RUNS=3 PORT=2533 SINK=2534
args=("$@")

# shellcheck disable=SC2034 # read by lib.sh
top=$top_srcdir
# shellcheck source=test/bench/lib.sh
. "$top_srcdir/test/bench/lib.sh"
bench_args "$@"
bench_netns "${args[@]}"

for b in "$SLUICED" "$CTL" "$BENCH"; do
	[ -x "$b" ] || { echo "reload-bench: $b not built" >&2; exit 2; }
done
work=$(mktemp -d /var/tmp/sluice-reload-bench.XXXXXX)
SL_PID='' SINK_PID='' RL_PID=''
cleanup() {
	[ -n "$RL_PID" ] && kill "$RL_PID" 2>/dev/null
	[ -n "$SL_PID" ] && kill -9 "$SL_PID" 2>/dev/null
	[ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null
	wait 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 3' INT TERM

conf() { # DIR BANNER LIMIT
	cat <<EOF
ESMTP_Listener = ( 127.0.0.1:$PORT,1024 [ 127.0.0.0/8 = ( relay_for_sending_domains
  personality [ banner_hostname = "$2" max_recipients_per_message = $3 ] ) ] )
Control_Listener = ( "$1/control.sock" [ 0.0.0.0/0 = ( ALWAYS-ALLOW ) ] )
Gateway = "127.0.0.2:$SINK"
SpoolBase = "$1/spool"
Pidfile = "$1/sluiced.pid"
ec_logger { mainlog = "$1/mainlog.ec" rejectlog = "$1/rejectlog.ec" paniclog = "$1/paniclog.ec" }
EOF
}

# reloader DIR: rewrite the file and reload through the console once a second.
reloader() {
	local d=$1 i=0
	while :; do
		sleep 1
		i=$((i + 1))
		if [ $((i % 2)) -eq 1 ]; then conf "$d" two.bench 60; else conf "$d" one.bench 50; fi >"$d/sluice.conf.new"
		mv "$d/sluice.conf.new" "$d/sluice.conf"
		"$CTL" -s "$d/control.sock" config reload >>"$d/reloads" 2>&1 || echo FAILED >>"$d/reloads"
	done
}

"$BENCH" sink -H 127.0.0.2 -p "$SINK" -T 3600 >"$work/sink.out" 2>&1 &
SINK_PID=$!
bench_wait_port 127.0.0.2 "$SINK" 30 || { echo "reload-bench: the sink did not start" >&2; exit 1; }

run() { # MODE RUN
	local d=$work/$1-$2 out reloads
	mkdir -p "$d"
	conf "$d" one.bench 50 >"$d/sluice.conf"
	bench_sluiced_start "$d"
	if [ "$1" = reload ]; then
		reloader "$d" &
		RL_PID=$!
	fi
	out=$("$BENCH" inject -H 127.0.0.1 -p "$PORT" -n "$N" -s "$S" -l "$L" -t rcpt@sink.example -T 300)
	if [ -n "$RL_PID" ]; then
		kill "$RL_PID" 2>/dev/null
		wait "$RL_PID" 2>/dev/null
		RL_PID=
	fi
	bench_sluiced_stop
	reloads=$(grep -c 'generation' "$d/reloads" 2>/dev/null)
	[ -f "$d/reloads" ] && grep -q FAILED "$d/reloads" && reloads="$reloads(some FAILED)"
	echo "mode=$1 run=$2 reloads=${reloads:-0} $(bench_fields "$out" accepted refused errors \
		elapsed_s accept_mps lat_p50_us lat_p99_us status)"
	rm -rf "$d/spool"
}

results=$work/results
for ((r = 1; r <= RUNS; r++)); do
	run plain "$r" | tee -a "$results"
	run reload "$r" | tee -a "$results"
done

# Medians per mode, the cost of reloading, the p99 ratio.
{
	p_mps=$(bench_median "$results" plain accept_mps)
	r_mps=$(bench_median "$results" reload accept_mps)
	p_p99=$(bench_median "$results" plain lat_p99_us)
	r_p99=$(bench_median "$results" reload lat_p99_us)
	echo "median mode=reload runs=$RUNS accept_mps=$r_mps lat_p99_us=$r_p99"
	echo "median mode=plain runs=$RUNS accept_mps=$p_mps lat_p99_us=$p_p99"
	awk -v p="$p_mps" -v r="$r_mps" -v pl="$p_p99" -v rl="$r_p99" 'BEGIN {
		if (p > 0 && pl > 0)
			printf "reload cost: throughput %.1f%%, p99 x%.2f (goal: under 5%% and under x2)\n",
				(p - r) * 100 / p, rl / pl
	}'
} | tee -a "$results"

if [ "$record" = yes ]; then
	bench_record "Configuration reload under load (one reload per second)" "$results" \
		"run: \`test/bench/reload-bench.sh ${args[*]}\` (sluice-bench inject -n $N -s $S -l $L, one connection per message, fsync on, relaying to sluice-bench sink; reloads through sluicectl config reload, inside unshare -n)" \
		"reload cost = (plain - reload) / plain of the median accept_mps; positive: reloading is slower"
fi
