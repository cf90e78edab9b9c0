#!/bin/sh
# test/fuzz/run-ecstream.sh - build the ECStream codec fuzzer and run it.
#
# Usage: test/fuzz/run-ecstream.sh [SECONDS]      (default 60)
#
# Builds test/fuzz/fuzz_ecstream.c with libFuzzer, ASan and UBSan straight
# from the codec's sources into ./build-fuzz-ecstream (in the current
# directory, as test/fuzz/run.sh does), writes a few seeds (frames, bare
# envelopes, reply lines, content; the harness gives every input to every
# decoder, see the harness), and fuzzes for SECONDS with inputs up to
# 64 KiB.  Exits nonzero when the fuzzer finds a crash, leak, UB, broken
# invariant or hang; the input that triggered it is left in
# build-fuzz-ecstream/artifacts/.
set -eu

secs=${1:-60}
case $secs in
'' | *[!0-9]*)
	echo "usage: $0 [SECONDS]" >&2
	exit 2
	;;
esac

top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(pwd)/build-fuzz-ecstream
cc=${FUZZ_CC:-clang}

mkdir -p "$build/corpus" "$build/seed" "$build/artifacts"

# The sources include "config.h" first; this build needs only _GNU_SOURCE.
printf '/* Written by test/fuzz/run-ecstream.sh. */\n#define _GNU_SOURCE 1\n' > "$build/config.h"

fflags="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
# shellcheck disable=SC2086 # $fflags is a list of flags
"$cc" $fflags -I"$top" -I"$build" \
	"$top/engine/alloc.c" "$top/engine/buf.c" "$top/proto/ecstream.c" \
	"$top/test/fuzz/fuzz_ecstream.c" -o "$build/fuzz_ecstream"

# Seeds: printf formats, so \r\n and \377 work.
seed() {
	# shellcheck disable=SC2059 # the argument is a format on purpose
	printf "$2" > "$build/seed/$1"
}
rm -f "$build/seed/"*
env='F\000\013a@x.exampleR\000\013b@y.exampleB\000\002b1K\000\001kV\000\001v'
seed frame "ECSM\000\000\000\051\000\000\000\000\000\000\000\014${env}Subject: x\r\n"
seed envelope "$env"
seed null-sender 'F\000\000R\000\013b@y.exampleR\000\013c@y.exampleR\000\000'
seed context 'K\000\006clientV\000\011ACME Inc.F\000\001aR\000\001bK\000\000V\000\000'
seed quit 'ECSQ\000\000\000\000\000\000\000\000\000\000\000\000'
seed bad-env 'F\000\001aR\000\001bK\000\001kR\000\001cX\000\000V\000\377'
seed replies '250 6926A1B2-000000000F1A\r\n554 5.6.0 bare CR or LF\r\n452 4.5.3 too many recipients\n421 4.3.2\r\n554\r\n451 no code\r\n221 2.0.0 bye\r\n'
seed content 'Subject: x\r\n\r\na\r\n.\r\nb\r\rc\nd\r'
long=$(head -c 1100 /dev/zero | tr '\0' 'x')
seed long "554 5.0.0 $long\r\n"

# Tokens the mutator should try whole.
cat > "$build/ecstream.dict" <<'DICT'
"ECSM"
"ECSQ"
"\x00\x10\x00\x00"
"\x00\x00\x00\x00"
"F\x00\x00"
"F\x00\x01"
"R\x00\x01"
"B\x00\x01"
"K\x00\x01"
"V\x00\x01"
"\xff\xff"
"\x0d\x0a"
"\x0d"
"\x0a"
"250 "
"221 2.0.0 "
"421 4.3.2 "
"451 4.3.0 "
"452 4.5.3 "
"501 5.1.3 "
"552 5.3.4 "
"553 5.1.7 "
"554 5.5.2 "
"554 5.6.0 "
"5.123.456"
"ECS1 "
DICT

UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
	"$build/fuzz_ecstream" -max_total_time="$secs" -max_len=65536 -timeout=10 \
	-dict="$build/ecstream.dict" -artifact_prefix="$build/artifacts/" \
	-print_final_stats=1 "$build/corpus" "$build/seed" || {
	rc=$?
	echo "fuzz: fuzz_ecstream failed (exit $rc); inputs in $build/artifacts/" >&2
	exit "$rc"
}
