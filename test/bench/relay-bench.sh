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
record=no N=20000 S=50 RUNS=1 PORT=2532 SIZES=()
args=("$@")
while [ $# -gt 0 ]; do
	case $1 in
	--record) record=yes ;;
	-n) N=$2; shift ;;
	-s) S=$2; shift ;;
	-r) RUNS=$2; shift ;;
	[0-9]*) SIZES+=("$1") ;;
	*) sed -n '2,21p' "$0"; exit 2 ;;
	esac
	shift
done
[ ${#SIZES[@]} -gt 0 ] || SIZES=(1024 51200)

if [ "${SL_BENCH_NETNS:-}" != 1 ]; then
	exec env SL_BENCH_NETNS=1 unshare -n -- bash -c 'ip link set lo up && exec "$0" "$@"' "$0" "${args[@]}"
fi

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

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { # PORT SECONDS
	local end=$(($(date +%s) + $2))
	until port_open "$1"; do
		[ "$(date +%s)" -ge "$end" ] && return 1
		sleep 0.05
	done
}
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
	"$SLUICED" -F -c "$d/sluice.conf" -d notice 2>"$d/stderr" &
	SL_PID=$!
	wait_port "$PORT" 30 || { echo "sluiced did not start: $(cat "$d/stderr")" >&2; exit 1; }
	(cd "$shared" && ./mta-bench.sh -p "$PORT" -N sluice -P "$SL_PID" -n "$N" -l "$1" \
		-s "$S" -r 1 -T 600) >"$d/out" 2>&1
	kill -TERM "$SL_PID"; wait "$SL_PID" 2>/dev/null; SL_PID=
	echo "$(summary <"$d/out") system=sluice-fsync delivered_logged=$(grep -c '@D@' "$d/mainlog.ec" 2>/dev/null)"
}

postfix_run() { # SIZE
	local d=$work/postfix-$1
	mkdir -p "$d"
	if ! "$shared/peers.sh" start postfix >"$d/start" 2>&1 || ! wait_port 2525 30; then
		echo "relay_mps=skipped system=postfix size=$1 reason=$(tail -n 1 "$d/start")"
		return
	fi
	(cd "$shared" && ./mta-bench.sh -p 2525 -N postfix -n "$N" -l "$1" -s "$S" -r 1 -T 600) \
		>"$d/out" 2>&1
	"$shared/peers.sh" stop postfix >/dev/null 2>&1
	echo "$(summary <"$d/out") system=postfix"
}

ceiling_run() { # SIZE
	(cd "$shared" && ./ceiling.sh -n "$N" -l "$1" -s "$S" -r 1) 2>&1 | summary
}

results=$work/results
for ((r = 1; r <= RUNS; r++)); do
	for size in "${SIZES[@]}"; do
		ceiling_run "$size" | tee -a "$results"
		sluice_run "$size" | tee -a "$results"
		postfix_run "$size" | tee -a "$results"
	done
done

if [ "$record" = yes ]; then
	top=$top_srcdir
	. "$top_srcdir/test/bench/lib.sh"
	bench_record "SMTP relay rate (sluice fsync on, Postfix, loopback ceiling)" "$results" \
		"run: \`test/bench/relay-bench.sh ${args[*]}\` (../shared/bench/mta-bench.sh -n $N -s $S, one session per message, sizes ${SIZES[*]}, inside unshare -n)"
fi
