#!/bin/bash
# test/bench/relay-bench.sh - end-to-end relay rate: smtp-source -> MTA ->
# smtp-sink, for sluice and Postfix in one run, beside the direct
# smtp-source -> smtp-sink ceiling (a benchmark, not a test).
#
#   relay-bench.sh [--record] [-n N] [-s SESSIONS] [-r RUNS] [SIZE...]
#
# For each SIZE (default: 1024 51200 octets) ../shared/bench/mta-bench.sh
# injects N messages (default 20000) over SESSIONS (50) parallel sessions,
# one session per message, and the MTA relays them to the smtp-sink that
# mta-bench.sh runs on 127.0.0.1:2600:
#   sluice    sluiced, Force_Fsync = true (a 250 means on disk), Gateway
#             "127.0.0.1:2600"; its CPU is measured as a process tree
#   postfix   a private Postfix (../shared/bench/peers.sh), relayhost the sink
#   ceiling   ../shared/bench/ceiling.sh: smtp-source straight into the sink
# relay_mps = N / (time from the first injection to the N-th message at the
# sink).  Everything runs inside one private network namespace with only
# loopback; every step is bounded and everything started is stopped on exit.
# With --record the summary lines and the exact command are appended to
# BENCHMARKS.md.
set -u
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
top_builddir=${top_builddir:-$top_srcdir}
shared=$(cd "$top_srcdir/../shared/bench" 2>/dev/null && pwd) || shared=
SLUICED=$top_builddir/sluiced
record=no N=20000 S=50 RUNS=1 PORT=2532 SIZES=
args=("$@")
top=$top_srcdir
. "$top_srcdir/test/bench/lib.sh"
bench_args "$@"
: "${SIZES:=1024 51200}"
bench_netns "${args[@]}"

[ -n "$shared" ] || { echo "relay-bench: ../shared/bench not found" >&2; exit 2; }
[ -x "$SLUICED" ] || { echo "relay-bench: $SLUICED not built" >&2; exit 2; }
command -v smtp-source >/dev/null || [ -x /usr/sbin/smtp-source ] ||
	{ echo "relay-bench: smtp-source not found (apt-get install postfix)" >&2; exit 2; }
work=$(mktemp -d /var/tmp/sluice-relay-bench.XXXXXX)
SL_PID=
cleanup() {
	[ -n "$SL_PID" ] && kill -9 "$SL_PID" 2>/dev/null
	"$shared/peers.sh" stop postfix >/dev/null 2>&1
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 3' INT TERM

summary() { grep -E '^(accept_mps|ceiling_mps)=' | tail -n 1; }

sluice_run() { # SIZE
	local d=$work/sluice-$1
	mkdir -p "$d"
	cat >"$d/sluice.conf" <<EOF
ESMTP_Listener = ( 127.0.0.1:$PORT,1024 [ 127.0.0.0/8 = ( relay_for_sending_domains ) ] )
Relay_Domains = ( "sink.example" )
Gateway = "127.0.0.1:2600"
SpoolBase = "$d/spool"
Pidfile = "$d/sluiced.pid"
Force_Fsync = true
ec_logger { mainlog = "$d/mainlog.ec" rejectlog = "$d/rejectlog.ec" paniclog = "$d/paniclog.ec" }
EOF
	bench_sluiced_start "$d"
	(cd "$shared" && ./mta-bench.sh -p "$PORT" -N sluice -P "$SL_PID" -n "$N" -l "$1" \
		-s "$S" -r 1 -T 600) >"$d/out" 2>&1
	bench_sluiced_stop
	echo "$(summary <"$d/out") mode=sluice-$1 system=sluice-fsync delivered_logged=$(grep -c '@D@' "$d/mainlog.ec" 2>/dev/null)"
}

postfix_run() { # SIZE
	local d=$work/postfix-$1
	mkdir -p "$d"
	if ! "$shared/peers.sh" start postfix >"$d/start" 2>&1 || ! bench_wait_port 127.0.0.1 2525 30; then
		echo "relay_mps=skipped system=postfix size=$1 reason=$(tail -n 1 "$d/start")"
		return
	fi
	(cd "$shared" && ./mta-bench.sh -p 2525 -N postfix -n "$N" -l "$1" -s "$S" -r 1 -T 600) \
		>"$d/out" 2>&1
	"$shared/peers.sh" stop postfix >/dev/null 2>&1
	echo "$(summary <"$d/out") mode=postfix-$1 system=postfix"
}

ceiling_run() { # SIZE
	echo "$( (cd "$shared" && ./ceiling.sh -n "$N" -l "$1" -s "$S" -r 1) 2>&1 | summary) mode=ceiling-$1"
}

results=$work/results
for ((r = 1; r <= RUNS; r++)); do
	for size in $SIZES; do
		ceiling_run "$size" | tee -a "$results"
		sluice_run "$size" | tee -a "$results"
		postfix_run "$size" | tee -a "$results"
	done
done

# The goal (issue 4): sluice relays at least 3x Postfix and at least half
# the ceiling.  Medians over the runs, per size.
for size in $SIZES; do
	sl=$(bench_median "$results" "sluice-$size" relay_mps)
	pf=$(bench_median "$results" "postfix-$size" relay_mps)
	ce=$(bench_median "$results" "ceiling-$size" ceiling_mps)
	awk -v z="$size" -v s="$sl" -v p="$pf" -v c="$ce" -v r="$RUNS" 'BEGIN {
		printf "size=%s runs=%s median relay_mps: sluice=%.0f postfix=%.0f ceiling=%.0f", z, r, s, p, c
		printf " sluice/postfix=%s sluice/ceiling=%s\n", (p > 0 ? sprintf("%.1fx", s / p) : "n/a"),
			(c > 0 ? sprintf("%.0f%%", 100 * s / c) : "n/a")
	}' | tee -a "$results"
done

if [ "$record" = yes ]; then
	bench_record "SMTP relay rate (sluice fsync on, Postfix, loopback ceiling)" "$results" \
		"run: \`test/bench/relay-bench.sh ${args[*]}\` (../shared/bench/mta-bench.sh -n $N -s $S, one session per message, sizes $SIZES, inside unshare -n)"
fi
