#!/bin/bash
# test/bench/accept-bench.sh - acceptance rate into sluice (fsync on, fsync off)
# and into Postfix, in one run, on loopback (a benchmark, not a test).
#
#   accept-bench.sh [--record] [-n N] [-s SESSIONS] [-l BYTES] [-r RUNS]
#
# Postfix's smtp-source injects N messages of BYTES over SESSIONS parallel
# sessions (one SMTP session per message, as ../shared/bench does) into:
#   sluice-fsync    sluiced, Force_Fsync = true (the default: 250 = on disk)
#   sluice-nofsync  sluiced, Force_Fsync = false
#   postfix         a private Postfix started by ../shared/bench/peers.sh
# accept_mps = N / the time smtp-source needed.  Every system runs inside one
# private network namespace with only loopback, so nothing leaves the host.
# Each run is bounded (timeout per injection) and everything started is
# stopped on exit.  With --record the figures and the exact command are
# appended to BENCHMARKS.md.  Figures from one run compare; across runs the
# machine's noise dominates (../shared/bench/README.md).
set -u
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
top_builddir=${top_builddir:-$top_srcdir}
shared=$(cd "$top_srcdir/../shared/bench" 2>/dev/null && pwd) || shared=
SLUICED=$top_builddir/sluiced
record=no N=20000 S=50 L=1024 RUNS=1 PORT=2531
args=("$@")

top=$top_srcdir
. "$top_srcdir/test/bench/lib.sh"
bench_args "$@"
bench_netns "${args[@]}"

SMTP_SOURCE=$(command -v smtp-source || echo /usr/sbin/smtp-source)
[ -x "$SMTP_SOURCE" ] || { echo "accept-bench: smtp-source not found (apt-get install postfix)" >&2; exit 2; }
[ -x "$SLUICED" ] || { echo "accept-bench: $SLUICED not built" >&2; exit 2; }
work=$(mktemp -d /var/tmp/sluice-accept-bench.XXXXXX)
SL_PID=
cleanup() {
	[ -n "$SL_PID" ] && kill -9 "$SL_PID" 2>/dev/null
	[ -n "$shared" ] && "$shared/peers.sh" stop postfix >/dev/null 2>&1
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 3' INT TERM

now() { date +%s.%N; }

# inject LABEL PORT -> prints accept_mps
inject() {
	local t0 t1 out=$work/$1.src rc
	t0=$(now)
	timeout 600 "$SMTP_SOURCE" -s "$S" -m "$N" -l "$L" -f sender@bench.example \
		-t rcpt@sink.example -M bench.localdomain "127.0.0.1:$2" >"$out" 2>&1
	rc=$?
	t1=$(now)
	if [ $rc -ne 0 ] || grep -qi 'error\|fatal' "$out"; then
		echo "failed($(head -c 200 "$out" | tr '\n' ' '))"
		return
	fi
	awk -v n="$N" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }'
}

sluice_run() { # LABEL FSYNC
	local d=$work/$1 mps
	mkdir -p "$d"
	cat >"$d/sluice.conf" <<EOF
ESMTP_Listener = ( 127.0.0.1:$PORT,1024 [ 127.0.0.0/8 = ( relay_for_sending_domains ) ] )
SpoolBase = "$d/spool"
Pidfile = "$d/sluiced.pid"
Force_Fsync = $2
ec_logger { mainlog = "$d/mainlog.ec" rejectlog = "$d/rejectlog.ec" paniclog = "$d/paniclog.ec" }
EOF
	bench_sluiced_start "$d"
	mps=$(inject "$1" "$PORT")
	bench_sluiced_stop
	recv=$(grep -c '@R@' "$d/mainlog.ec" 2>/dev/null || echo 0)
	echo "accept_mps=$mps system=$1 n=$N size=$L sessions=$S logged_receptions=$recv"
}

postfix_run() {
	local mps
	if [ -z "$shared" ] || ! "$shared/peers.sh" start postfix >"$work/postfix.start" 2>&1; then
		echo "accept_mps=skipped system=postfix reason=$(tail -n 1 "$work/postfix.start" 2>/dev/null || echo 'no ../shared/bench')"
		return
	fi
	bench_wait_port 127.0.0.1 2525 30 || { echo "accept_mps=skipped system=postfix reason=not-listening"; return; }
	mps=$(inject postfix 2525)
	"$shared/peers.sh" stop postfix >/dev/null 2>&1
	echo "accept_mps=$mps system=postfix n=$N size=$L sessions=$S"
}

results=$work/results
for ((r = 1; r <= RUNS; r++)); do
	sluice_run sluice-fsync true | tee -a "$results"
	sluice_run sluice-nofsync false | tee -a "$results"
	postfix_run | tee -a "$results"
done

if [ "$record" = yes ]; then
	bench_record "SMTP acceptance rate (sluice fsync on/off, Postfix)" "$results" \
		"run: \`test/bench/accept-bench.sh ${args[*]}\` (smtp-source -s $S -m $N -l $L, one session per message, inside unshare -n)"
fi
