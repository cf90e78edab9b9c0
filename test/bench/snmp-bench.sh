#!/bin/bash
# test/bench/snmp-bench.sh - what an snmpwalk of the whole agent every
# second costs relaying (a benchmark, not a test).
#
#   snmp-bench.sh [--record] [-n N] [-s SESSIONS] [-l BYTES] [-r RUNS]
#
# sluiced (fsync on, its SNMP agent on 127.0.0.1:8162, relaying to
# sluice-bench's sink on 127.0.0.2) takes N messages of BYTES from
# sluice-bench over SESSIONS concurrent sessions, one message per
# connection, RUNS times without SNMP traffic and RUNS times with an
# `snmpwalk` of everything the agent serves (system, applTable, MTA-MIB,
# SLUICE-MIB) started once a second while the messages flow, alternating
# so the machine's noise hits both alike.  Per run: accept_mps and p99 from
# sluice-bench, relay_mps (N over the time until the sink has them all);
# then the medians per mode and the relay cost of walking in percent.
# Everything runs inside one private network namespace with only loopback;
# each step is bounded and everything started is stopped on exit.  With
# --record the figures and the command are appended to BENCHMARKS.md.
set -u
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
top_builddir=${top_builddir:-$top_srcdir}
SLUICED=$top_builddir/sluiced
BENCH=$top_builddir/sluice-bench
record=no N=60000 S=50 L=1024 RUNS=3 PORT=2537 SINK=2538
args=("$@")

# shellcheck disable=SC2034 # read by lib.sh
top=$top_srcdir
# shellcheck source=test/bench/lib.sh
. "$top_srcdir/test/bench/lib.sh"
bench_args "$@"
bench_netns "${args[@]}"

for b in "$SLUICED" "$BENCH"; do
	[ -x "$b" ] || { echo "snmp-bench: $b not built" >&2; exit 2; }
done
command -v snmpwalk >/dev/null || { echo "snmp-bench: snmpwalk not found (apt-get install snmp)" >&2; exit 2; }
work=$(mktemp -d /var/tmp/sluice-snmp-bench.XXXXXX)
SL_PID='' SINK_PID='' WALK_PID=''
cleanup() {
	[ -n "$WALK_PID" ] && kill "$WALK_PID" 2>/dev/null
	[ -n "$SL_PID" ] && kill -9 "$SL_PID" 2>/dev/null
	[ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null
	wait 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 3' INT TERM

conf() { # DIR
	cat <<EOF
ESMTP_Listener = ( 127.0.0.1:$PORT,1024 [ 127.0.0.0/8 = ( relay_for_sending_domains ) ] )
SNMP { Address = 127.0.0.1:8162 Community = "bench" }
Gateway = "127.0.0.2:$SINK"
SpoolBase = "$1/spool"
Pidfile = "$1/sluiced.pid"
ec_logger { mainlog = "$1/mainlog.ec" rejectlog = "$1/rejectlog.ec" paniclog = "$1/paniclog.ec" }
EOF
}

# walker DIR: walk the whole agent once a second (each walk bounded).
walker() {
	while :; do
		timeout 10 snmpwalk -v2c -c bench -On -t 2 -r 0 127.0.0.1:8162 .1.3.6.1 >"$1/walk" 2>&1
		wc -l <"$1/walk" >>"$1/walks"
		sleep 1
	done
}

"$BENCH" sink -H 127.0.0.2 -p "$SINK" -c "$work/sink.count" -T 3600 >"$work/sink.out" 2>&1 &
SINK_PID=$!
bench_wait_port 127.0.0.2 "$SINK" 30 || { echo "snmp-bench: the sink did not start" >&2; exit 1; }
sink_count() { cat "$work/sink.count" 2>/dev/null || echo 0; }

run() { # MODE RUN
	local d=$work/$1-$2 out base t0 t1 got relay
	mkdir -p "$d"
	conf "$d" >"$d/sluice.conf"
	bench_sluiced_start "$d"
	if [ "$1" = walk ]; then
		walker "$d" &
		WALK_PID=$!
	fi
	base=$(sink_count)
	t0=$(date +%s.%N)
	out=$("$BENCH" inject -H 127.0.0.1 -p "$PORT" -n "$N" -s "$S" -l "$L" -t rcpt@sink.example -T 300)
	for _ in $(seq 1200); do # relayed: until the sink has them all (at most 120 s more)
		[ $(( $(sink_count) - base )) -ge "$N" ] && break
		sleep 0.1
	done
	t1=$(date +%s.%N)
	got=$(( $(sink_count) - base ))
	relay=$(awk -v n="$got" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')
	if [ -n "$WALK_PID" ]; then
		kill "$WALK_PID" 2>/dev/null
		wait "$WALK_PID" 2>/dev/null
		WALK_PID=''
	fi
	bench_sluiced_stop
	echo "mode=$1 run=$2 walks=$(wc -l <"$d/walks" 2>/dev/null || echo 0) walk_vars=$(tail -n 1 "$d/walks" 2>/dev/null || echo 0) relayed=$got relay_mps=$relay $(bench_fields "$out" \
		accepted refused errors accept_mps lat_p99_us status)"
	rm -rf "$d/spool"
}

results=$work/results
for ((r = 1; r <= RUNS; r++)); do
	run plain "$r" | tee -a "$results"
	run walk "$r" | tee -a "$results"
done

{
	p_mps=$(bench_median "$results" plain relay_mps)
	w_mps=$(bench_median "$results" walk relay_mps)
	echo "median mode=walk runs=$RUNS relay_mps=$w_mps"
	echo "median mode=plain runs=$RUNS relay_mps=$p_mps"
	awk -v p="$p_mps" -v w="$w_mps" 'BEGIN {
		if (p > 0)
			printf "snmpwalk cost: relay throughput %.1f%% (goal: under 2%%)\n", (p - w) * 100 / p
	}'
} | tee -a "$results"

if [ "$record" = yes ]; then
	bench_record "SNMP: relaying with and without an snmpwalk of the whole agent every second" "$results" \
		"run: \`test/bench/snmp-bench.sh ${args[*]}\` (sluice-bench inject -n $N -s $S -l $L, one connection per message, fsync on, relaying to sluice-bench sink; snmpwalk -v2c .1.3.6.1 every second, inside unshare -n)" \
		"snmpwalk cost = (plain - walk) / plain of the median relay_mps; positive: walking is slower"
fi
