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

# config.h comes from the build tree when configured, else a minimal one.
builddir=${top_builddir:-$top}
if [ -f "$builddir/config.h" ]; then
	cfgdir=$builddir
	cfgshow=$builddir
else
	cfgdir=$tmp
	cfgshow='<dir of a config.h: #define _GNU_SOURCE 1>'
	printf '#define _GNU_SOURCE 1\n' >"$tmp/config.h"
fi

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

out="$top/BENCHMARKS.md"
if [ ! -f "$out" ]; then
	cat >"$out" <<'EOF'
# sluice benchmarks

Measurements, not tests: each section below was appended by
`test/bench/run.sh --record` (or another harness under `test/bench/`) and
records when and where it ran (date, kernel, CPU, commit) and the exact
commands, so a figure can be reproduced and compared with a later run on
the same machine.  Figures from different machines are not comparable;
sections are never edited after the fact.
EOF
fi
commit=$(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo "none (no commit yet)")
dirty=$(git -C "$top" status --porcelain -- spool test/bench 2>/dev/null | head -n 1)
[ -n "$dirty" ] && commit="$commit + uncommitted spool/ changes"
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
{
	echo
	echo "## $(date -u '+%Y-%m-%d %H:%M UTC'): spool group commit"
	echo
	echo "- kernel: $(uname -r)"
	echo "- CPU: $cpu ($(nproc) online)"
	echo "- disk: $dir ($fstype)"
	echo "- load at start: $load; other busy processes: ${busy:-none}"
	echo "- commit: $commit"
	echo "- build: \`$build\`"
	echo "- run: \`$run\`"
	echo "- what: one writer thread; append N messages (1 recipient), one sl_spool_commit;"
	echo "  each message finished 1000 messages later (segments rotate and are removed);"
	echo "  64 MiB segments, zero-filled at creation when fsync is on"
	echo
	echo '```'
	cat "$tmp/results"
	echo '```'
} >>"$out"
echo "recorded in $out"
