# test/bench/lib.sh - shared parts of the benchmark scripts (sourced, not run).
#
#   bench_config_h DIR     sets cfgdir (a directory holding config.h for the
#                          compiler) and cfgshow (how to show it in a recorded
#                          command): the build tree's config.h when configured,
#                          else a minimal one written into DIR
#   bench_args ARGS...     the options every benchmark takes: --record
#                          (record=yes), -n N, -s S, -l L, -r RUNS, and sizes
#                          as bare numbers (SIZES, a space-separated list);
#                          anything else prints the
#                          script's header comment and exits 2
#   bench_netns ARGS...    re-run the calling script ($0) inside a private
#                          network namespace with only loopback, once
#   bench_sluiced_start DIR
#                          $SLUICED on DIR/sluice.conf in the foreground (SL_PID),
#                          until it listens on 127.0.0.1:$PORT (else exit 1)
#   bench_sluiced_stop     SIGTERM to $SL_PID, wait for it, SL_PID empty
#   bench_fields TEXT KEY...
#                          the KEY=value words of TEXT, in TEXT's order
#   bench_wait_port ADDR PORT SECONDS
#                          until something listens there (1: it did not)
#   bench_median RESULTS MODE KEY
#                          the median of KEY=value over the lines of RESULTS
#                          that say mode=MODE (0 when none)
#   bench_record TITLE RESULTS [LINE...]
#                          append a dated section to BENCHMARKS.md: kernel, CPU,
#                          commit, each LINE as a "- " item, then RESULTS (a file)
# Needs $top (the source tree).

bench_config_h() {
	builddir=${top_builddir:-$top}
	if [ -f "$builddir/config.h" ]; then
		cfgdir=$builddir
		cfgshow=$builddir
	else
		cfgdir=$1
		cfgshow='<dir of a config.h: #define _GNU_SOURCE 1>'
		printf '#define _GNU_SOURCE 1\n' >"$1/config.h"
	fi
}

bench_args() {
	while [ $# -gt 0 ]; do
		case $1 in
		--record) record=yes ;;
		-n) N=$2; shift ;;
		-s) S=$2; shift ;;
		-l) L=$2; shift ;;
		-r) RUNS=$2; shift ;;
		[0-9]*) SIZES="${SIZES:+$SIZES }$1" ;;
		*) awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0"; exit 2 ;;
		esac
		shift
	done
}

bench_sluiced_start() {
	"$SLUICED" -F -c "$1/sluice.conf" -d notice 2>"$1/stderr" &
	SL_PID=$!
	bench_wait_port 127.0.0.1 "$PORT" 30 || { echo "sluiced did not start: $(cat "$1/stderr")" >&2; exit 1; }
}

bench_sluiced_stop() {
	kill -TERM "$SL_PID"
	wait "$SL_PID" 2>/dev/null
	SL_PID=
}

bench_fields() {
	_text=$1
	shift
	echo "$_text" | tr ' ' '\n' | grep -E "^($(echo "$*" | tr ' ' '|'))=" | tr '\n' ' '
}

bench_netns() {
	if [ "${SL_BENCH_NETNS:-}" != 1 ]; then
		exec env SL_BENCH_NETNS=1 unshare -n -- bash -c 'ip link set lo up && exec "$0" "$@"' "$0" "$@"
	fi
}

bench_wait_port() {
	_end=$(($(date +%s) + $3))
	until (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; do
		[ "$(date +%s)" -ge "$_end" ] && return 1
		sleep 0.05
	done
}

bench_median() {
	awk -v mode="$2" -v key="$3" '
	{
		m = ""; v = ""
		for (i = 1; i <= NF; i++) {
			split($i, kv, "=")
			if (kv[1] == "mode") m = kv[2]
			if (kv[1] == key) v = kv[2]
		}
		if (m == mode && v != "") a[++n] = v + 0
	}
	END {
		for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
		print n == 0 ? 0 : n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}' "$1"
}

bench_record() {
	_title=$1
	_results=$2
	shift 2
	_out="$top/BENCHMARKS.md"
	if [ ! -f "$_out" ]; then
		cat >"$_out" <<'EOF2'
# sluice benchmarks

Measurements, not tests: each section below was appended by `make bench`
(test/bench/*.sh --record) and records when and where it ran (date, kernel,
CPU, commit) and the exact commands, so a figure can be reproduced and
compared with a later run on the same machine.  Figures from different
machines are not comparable; sections are never edited after the fact.
EOF2
	fi
	_commit=$(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo "none (no commit yet)")
	[ -n "$(git -C "$top" status --porcelain -- engine conf proto spool stages test/bench 2>/dev/null | head -n 1)" ] &&
		_commit="$_commit + uncommitted changes"
	{
		echo
		echo "## $(date -u '+%Y-%m-%d %H:%M UTC'): $_title"
		echo
		echo "- kernel: $(uname -r)"
		echo "- CPU: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1) ($(nproc) online)"
		echo "- commit: $_commit"
		for _line in "$@"; do
			echo "- $_line"
		done
		echo
		echo '```'
		cat "$_results"
		echo '```'
	} >>"$_out"
	echo "recorded in $_out"
}
