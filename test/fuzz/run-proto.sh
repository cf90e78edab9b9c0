#!/bin/sh
# test/fuzz/run-proto.sh - build one protocol machine fuzzer and run it.
#
# Usage: test/fuzz/run-proto.sh NAME [SECONDS]      (default 60)
#
#   smtp      fuzz_smtp_server.c: the SMTP server machine (proto/smtp_server.c)
#   smtpc     fuzz_smtp_client.c: the SMTP/LMTP client machine (proto/smtp_client.c)
#   ecstream  fuzz_ecstream.c:    the ECStream codec (proto/ecstream.c)
#
# Builds the harness with libFuzzer, ASan and UBSan straight from its sources
# into ./build-fuzz-NAME (in the current directory, as `make fuzz` runs it
# from the build tree), writes the seeds of test/fuzz/NAME.seeds, and fuzzes
# for SECONDS with the dictionary test/fuzz/NAME.dict.  Exits nonzero when
# the fuzzer finds a crash, leak, UB, broken invariant or hang; the input
# that triggered it is left in build-fuzz-NAME/artifacts/.
set -eu

usage() {
	echo "usage: $0 smtp|smtpc|ecstream [SECONDS]" >&2
	exit 2
}

[ $# -ge 1 ] || usage
name=$1
secs=${2:-60}
case $secs in
'' | *[!0-9]*) usage ;;
esac
case $name in
smtp) harness=smtp_server source=proto/smtp_server.c max_len=16384 ;;
smtpc) harness=smtp_client source=proto/smtp_client.c max_len=16384 ;;
ecstream) harness=ecstream source=proto/ecstream.c max_len=65536 ;;
*) usage ;;
esac

top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(pwd)/build-fuzz-$name
cc=${FUZZ_CC:-clang}

mkdir -p "$build/corpus" "$build/seed" "$build/artifacts"

# The sources include "config.h" first; this build needs only _GNU_SOURCE.
printf '/* Written by test/fuzz/run-proto.sh. */\n#define _GNU_SOURCE 1\n' > "$build/config.h"

fflags="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
# shellcheck disable=SC2086 # $fflags is a list of flags
"$cc" $fflags -I"$top" -I"$build" \
	"$top/engine/alloc.c" "$top/engine/buf.c" "$top/$source" \
	"$top/test/fuzz/fuzz_$harness.c" -o "$build/fuzz_$harness"

# seed NAME FORMAT...: the printf formats, one after another, into seed/NAME.
seed() {
	file=$build/seed/$1
	shift
	: > "$file"
	for fmt in "$@"; do
		# shellcheck disable=SC2059 # the arguments are formats on purpose
		printf "$fmt" >> "$file"
	done
}
rm -f "$build/seed/"*
# shellcheck source=/dev/null
. "$top/test/fuzz/$name.seeds"

UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
	"$build/fuzz_$harness" -max_total_time="$secs" -max_len="$max_len" -timeout=10 \
	-dict="$top/test/fuzz/$name.dict" -artifact_prefix="$build/artifacts/" \
	-print_final_stats=1 "$build/corpus" "$build/seed" || {
	rc=$?
	echo "fuzz: fuzz_$harness failed (exit $rc); inputs in $build/artifacts/" >&2
	exit "$rc"
}
