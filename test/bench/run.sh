#!/bin/sh
# test/bench/run.sh - build and run the queue hop benchmark (not a test).
#
# Builds test/bench/queue_hop.c against the engine sources with -O2 and
# jemalloc in a temporary directory, runs it and prints its figures.  With
# --record it also appends a dated section (kernel, CPU, commit, the exact
# commands, the figures) to BENCHMARKS.md at the top of the source tree.
# Leaves nothing else behind.  Usage: test/bench/run.sh [--record]
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
record=no
case "${1:-}" in
--record) record=yes ;;
"") ;;
*) echo "usage: $0 [--record]" >&2; exit 2 ;;
esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

. "$top/test/bench/lib.sh"
bench_config_h "$tmp"

cd "$top"
src="engine/alloc.c engine/arena.c engine/log.c engine/rcu.c engine/counter.c engine/stage.c"
pkgcflags=$(pkg-config --cflags liburcu-memb libuv)
cflags="-std=gnu11 -O2 -g -I. -I$cfgdir $pkgcflags"
libs="$(pkg-config --libs liburcu-memb liburcu-cds libuv) -ljemalloc -lpthread"
build="${CC:-cc} -std=gnu11 -O2 -g -I. -I$cfgshow $pkgcflags $src test/bench/queue_hop.c $libs -o queue_hop"
run="./queue_hop --events 1000000 --pings 100000"

# shellcheck disable=SC2086
${CC:-cc} $cflags $src test/bench/queue_hop.c $libs -o "$tmp/queue_hop"
echo "build: $build"
echo "run:   $run"
(cd "$tmp" && $run) | tee "$tmp/results"

[ "$record" = yes ] || exit 0

bench_record "queue hop" "$tmp/results" "build: \`$build\`" "run: \`$run\`"
