#!/bin/sh
# test/bench/spool-bench.sh - build and run the spool group-commit benchmark
# (not a test).
#
# Builds test/bench/spool_commit.c against the spool and engine sources with
# -O2 and jemalloc in a temporary directory, runs it on a real disk (a fresh
# directory under $SPOOL_BENCH_DIR, default /var/tmp; not tmpfs) and prints
# its figures.  With --record it also appends a dated section (kernel, CPU,
# file system, commit, the exact commands, the figures) to BENCHMARKS.md at
# the top of the source tree.  Leaves nothing else behind.
# Usage: test/bench/spool-bench.sh [--record]   (env: SPOOL_BENCH_DIR, SPOOL_BENCH_SECONDS)
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
record=no
case "${1:-}" in
--record) record=yes ;;
"") ;;
*) echo "usage: $0 [--record]" >&2; exit 2 ;;
esac
dir=${SPOOL_BENCH_DIR:-/var/tmp}
secs=${SPOOL_BENCH_SECONDS:-2}
fstype=$(findmnt -n -o FSTYPE -T "$dir" 2>/dev/null || stat -f -c %T "$dir" 2>/dev/null || echo unknown)
if [ "$fstype" = tmpfs ]; then
	echo "$0: $dir is tmpfs; the spool benchmark wants a real disk (set SPOOL_BENCH_DIR)" >&2
	exit 2
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sluice-spool-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

. "$top/test/bench/lib.sh"
bench_config_h "$tmp"

cd "$top"
src="engine/alloc.c engine/buf.c engine/log.c engine/counter.c spool/msg.c spool/crc32c.c spool/spool.c spool/spool_segment.c spool/spool_ram.c"
pkgcflags=$(pkg-config --cflags liburcu-memb libuv)
cflags="-std=gnu11 -O2 -g -I. -I$cfgdir $pkgcflags"
libs="$(pkg-config --libs liburcu-memb liburcu-cds libuv) -ljemalloc -lpthread"
build="${CC:-cc} -std=gnu11 -O2 -g -I. -I$cfgshow $pkgcflags $src test/bench/spool_commit.c $libs -o spool_commit"
run="./spool_commit --dir $dir --seconds $secs"

# shellcheck disable=SC2086
${CC:-cc} $cflags $src test/bench/spool_commit.c $libs -o "$tmp/spool_commit"
echo "build: $build"
echo "run:   $run ($dir is $fstype)"
# fdatasync waits for every other writer's flushes on the device: note who else is busy
load=$(cut -d' ' -f1-3 /proc/loadavg)
busy=$(ps -eo pcpu=,comm= --sort=-pcpu 2>/dev/null | awk '$1 >= 20 { printf "%s%s (%s%%)", sep, $2, $1; sep = ", " }')
if [ -n "$busy" ]; then
	echo "warning: other busy processes: $busy; fsync figures will be noisy" >&2
fi
(cd "$tmp" && $run) | tee "$tmp/results"

[ "$record" = yes ] || exit 0

bench_record "spool group commit" "$tmp/results" \
	"disk: $dir ($fstype)" \
	"load at start: $load; other busy processes: ${busy:-none}" \
	"build: \`$build\`" \
	"run: \`$run\`" \
	"what: one writer thread; append N messages (1 recipient), one sl_spool_commit; each message finished 1000 messages later (segments rotate and are removed); 64 MiB segments, zero-filled at creation when fsync is on"
