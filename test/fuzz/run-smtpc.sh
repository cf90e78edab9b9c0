#!/bin/sh
# test/fuzz/run-smtpc.sh - build the SMTP/LMTP client machine fuzzer and run it.
#
# Usage: test/fuzz/run-smtpc.sh [SECONDS]      (default 60)
#
# Builds test/fuzz/fuzz_smtp_client.c with libFuzzer, ASan and UBSan straight
# from the machine's sources into ./build-fuzz-smtpc (in the current
# directory, as test/fuzz/run.sh does), writes a few seed sessions (the
# first 4 octets of each input are the harness's configuration bits and
# the seed of its choices; see the harness; the rest is what the server
# says), and fuzzes for SECONDS with inputs up to 16 KiB.  Exits nonzero
# when the fuzzer finds a crash, leak, UB, broken invariant or hang; the
# input that triggered it is left in build-fuzz-smtpc/artifacts/.
set -eu

secs=${1:-60}
case $secs in
'' | *[!0-9]*)
	echo "usage: $0 [SECONDS]" >&2
	exit 2
	;;
esac

top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(pwd)/build-fuzz-smtpc
cc=${FUZZ_CC:-clang}

mkdir -p "$build/corpus" "$build/seed" "$build/artifacts"

# The sources include "config.h" first; this build needs only _GNU_SOURCE.
printf '/* Written by test/fuzz/run-smtpc.sh. */\n#define _GNU_SOURCE 1\n' > "$build/config.h"

fflags="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
# shellcheck disable=SC2086 # $fflags is a list of flags
"$cc" $fflags -I"$top" -I"$build" \
	"$top/engine/alloc.c" "$top/engine/buf.c" "$top/proto/smtp_client.c" \
	"$top/test/fuzz/fuzz_smtp_client.c" -o "$build/fuzz_smtp_client"

# Seeds: 4 header octets (conf bits: 1 LMTP, 2 BDAT, 4 no pipelining; then
# the seed of the harness's choices), then the server's side of a session;
# both are printf formats, so \r\n and \377 work.
seed() {
	# shellcheck disable=SC2059 # the arguments are formats on purpose
	{ printf "$2"; printf "$3"; } > "$build/seed/$1"
}
rm -f "$build/seed/"*
ok='250 2.1.5 Ok\r\n'
ok4="$ok$ok$ok$ok"
txn="250 2.1.0 Ok\r\n$ok4$ok4\r\n354 go ahead\r\n250 2.0.0 queued as A\r\n"
seed pipe '\000\021\042\063' "220 mx.example ESMTP\r\n250-mx.example\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 ENHANCEDSTATUSCODES\r\n$txn$txn$txn${txn}221 2.0.0 bye\r\n"
seed plain '\004\001\002\003' "220 mx.example\r\n502 5.5.1 no EHLO\r\n250 mx.example\r\n250 ok\r\n250 ok\r\n354 go\r\n250 ok\r\n250 ok\r\n250 ok\r\n550 5.1.1 no\r\n250 ok\r\n354 go\r\n250 ok\r\n221 bye\r\n"
seed bdat '\002\177\001\200' "220 mx.example ESMTP\r\n250-mx.example\r\n250-PIPELINING\r\n250 CHUNKING\r\n250 ok\r\n250 ok\r\n250 2.0.0 queued\r\n250 ok\r\n$ok4$ok4\r\n250 queued\r\n"
seed bdat1 '\006\012\034\056' "220 mx.example ESMTP\r\n250-mx.example\r\n250 CHUNKING\r\n250 ok\r\n250 ok\r\n250 2.0.0 queued\r\n250 ok\r\n550 no\r\n$ok4\r\n554 5.6.0 no\r\n"
seed lmtp '\001\111\222\063' "220 lmtp.example LMTP\r\n250-lmtp.example\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go\r\n250 2.0.0 a\r\n250 2.1.0 ok\r\n$ok4\r\n354 go\r\n250 2.0.0 a\r\n452 4.2.2 full\r\n250 2.0.0 c\r\n"
seed refuse '\000\377\376\375' "220-mx.example\r\n220 ESMTP\r\n250-mx.example\r\n250 PIPELINING\r\n550 5.7.1 no\r\n503 5.5.1 no\r\n503 5.5.1 no\r\n250 ok\r\n550 5.1.1 no\r\n554 5.5.1 no valid recipients\r\n250 2.0.0 reset\r\n250 ok\r\n450-4.2.0 busy\r\n450 4.2.0 later\r\n354 go\r\n421 4.4.2 closing\r\n"
seed texts '\000\003\005\007' "220 mx\r\n250-mx\r\n250-PIPELINING\r\n250 SIZE 99999999999999999999999\r\n250 2.1.0\r\n550-5.1.1 \001\177x\r\n550-5.1.1 y\r\n550 5.1.1 z\r\n503 no\r\n"
seed greet '\000\000\000\001' '554 5.7.1 go away\r\n'
long=$(head -c 2100 /dev/zero | tr '\0' 'x')
seed long '\000\000\001\000' "220 mx\r\n250-mx\r\n250 PIPELINING\r\n250 $long\r\n"

# Tokens the mutator should try whole.
cat > "$build/smtpc.dict" <<'DICT'
"\x0d\x0a"
"220 "
"220-"
"250 "
"250-"
"354 "
"221 "
"421 "
"450 "
"451 "
"452 "
"500 "
"501 "
"502 "
"503 "
"550 "
"552 "
"554 "
"2.0.0 "
"2.1.5 "
"4.2.0 "
"5.1.1 "
"5.7.1 "
"PIPELINING"
"CHUNKING"
"SIZE "
"8BITMIME"
"SMTPUTF8"
"STARTTLS"
"ENHANCEDSTATUSCODES"
"\xc3\xa9"
DICT

UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
	"$build/fuzz_smtp_client" -max_total_time="$secs" -max_len=16384 -timeout=10 \
	-dict="$build/smtpc.dict" -artifact_prefix="$build/artifacts/" \
	-print_final_stats=1 "$build/corpus" "$build/seed" || {
	rc=$?
	echo "fuzz: fuzz_smtp_client failed (exit $rc); inputs in $build/artifacts/" >&2
	exit "$rc"
}
