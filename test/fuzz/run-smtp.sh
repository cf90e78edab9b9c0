#!/bin/sh
# test/fuzz/run-smtp.sh - build the SMTP server machine fuzzer and run it.
#
# Usage: test/fuzz/run-smtp.sh [SECONDS]      (default 60)
#
# Builds test/fuzz/fuzz_smtp_server.c with libFuzzer, ASan and UBSan straight
# from the machine's sources into ./build-fuzz-smtp (in the current
# directory, as test/fuzz/run.sh does), writes a few seed sessions (the
# first 6 octets of each input are the harness's configuration, verdict and
# split bits; see the harness), and fuzzes for SECONDS with inputs up to
# 16 KiB.  Exits nonzero when the fuzzer finds a crash, leak, UB, broken
# invariant or hang; the input that triggered it is left in
# build-fuzz-smtp/artifacts/.
set -eu

secs=${1:-60}
case $secs in
'' | *[!0-9]*)
	echo "usage: $0 [SECONDS]" >&2
	exit 2
	;;
esac

top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(pwd)/build-fuzz-smtp
cc=${FUZZ_CC:-clang}

mkdir -p "$build/corpus" "$build/seed" "$build/artifacts"

# The sources include "config.h" first; this build needs only _GNU_SOURCE.
printf '/* Written by test/fuzz/run-smtp.sh. */\n#define _GNU_SOURCE 1\n' > "$build/config.h"

fflags="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
# shellcheck disable=SC2086 # $fflags is a list of flags
"$cc" $fflags -I"$top" -I"$build" \
	"$top/engine/alloc.c" "$top/engine/buf.c" "$top/proto/smtp_server.c" \
	"$top/test/fuzz/fuzz_smtp_server.c" -o "$build/fuzz_smtp_server"

# Seeds: 6 header octets (conf, conf, limits, limits, verdict bits, split
# seed), then a session; both are printf formats, so \r\n and \377 work.
seed() {
	# shellcheck disable=SC2059 # the arguments are formats on purpose
	{ printf "$2"; printf "$3"; } > "$build/seed/$1"
}
rm -f "$build/seed/"*
seed plain '\377\000\000\000\377\377' 'EHLO c.example\r\nMAIL FROM:<a@b.example> SIZE=10 BODY=8BITMIME\r\nRCPT TO:<c@d.example>\r\nDATA\r\nSubject: x\r\nDate: y\r\n\r\n..body\r\n.\r\nQUIT\r\n'
seed smuggle '\377\001\000\000\377\000' 'EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\nA: 1\r\n\r\na\n.\nMAIL FROM:<e@f>\r\n\r\n.\r\r\n.\r\nb\r\n.\r\n'
seed fix '\377\005\000\000\377\001' 'HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<postmaster>\r\nDATA\r\nA: 1\nB: 2\r\n\rx\n.\n\r\n.\r\n'
seed ignore '\377\002\001\000\252\002' 'EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n\r\n\r.\r\n.\n12345678901\r\n.\r\n'
seed bdat '\377\000\000\000\377\003' 'EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nBDAT 3\r\na\r\rBDAT 4\r\n\nb\r\nBDAT 0 LAST\r\nBDAT x\r\n'
seed bdat2 '\377\004\000\000\125\004' 'EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nBDAT 5 LAST\r\nhelloBDAT 2\r\nabRSET\r\nDATA\r\n'
seed xclient '\377\000\000\000\377\005' 'EHLO c\r\nXCLIENT NAME=a.example ADDR=IPV6:::1 PORT=25 HELO=x+2By LOGIN=[UNAVAILABLE]\r\nXREMOTEIP 192.0.2.1\r\nXDUMPCONTEXT\r\nSTARTTLS\r\nEHLO c\r\nSTARTTLS\r\n'
seed syntax '\377\000\017\024\377\006' 'MAIL FROM:<@r.example,@s.example:"a b"@[IPv6:2001:db8::1]> SMTPUTF8 SIZE=1\r\nRCPT TO:<\303\274@x.example>\r\nRCPT TO:< postmaster >\r\nRCPT TO:<a@[1.2.3.4]> NOTIFY=NEVER\r\nVRFY x\r\nEXPN y\r\nHELP\r\nNOOP\r\nRSET \r\nFOO\r\n'
long=$(head -c 600 /dev/zero | tr '\0' 'x')
seed long '\377\000\000\000\377\007' "NOOP $long\r\nEHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n$long$long\r\n.\r\n"

# Tokens the mutator should try whole.
cat > "$build/smtp.dict" <<'DICT'
"\x0d\x0a"
"\x0d\x0a.\x0d\x0a"
"\x0a.\x0a"
"\x0d.\x0d"
"\x0a.\x0d\x0a"
"\x0d\x0a.\x0d"
"\x0d\x0a.\x0a"
"\x0d.\x0d\x0a"
"\x0d\x0a\x0d\x0a"
".."
"EHLO "
"HELO "
"MAIL FROM:<"
"RCPT TO:<"
"DATA\x0d\x0a"
"BDAT "
" LAST\x0d\x0a"
"RSET\x0d\x0a"
"NOOP"
"QUIT\x0d\x0a"
"VRFY "
"EXPN "
"HELP"
"STARTTLS\x0d\x0a"
"XCLIENT "
"NAME="
"ADDR="
"PORT="
"PROTO="
"HELO="
"LOGIN="
"DESTADDR="
"DESTPORT="
"[UNAVAILABLE]"
"[TEMPUNAVAIL]"
"IPV6:"
"XREMOTEIP "
"XDUMPCONTEXT\x0d\x0a"
" SIZE="
" BODY=8BITMIME"
" BODY=BINARYMIME"
" SMTPUTF8"
" NOTIFY=NEVER"
"<postmaster>"
"<>"
"@example.com"
"[IPv6:::1]"
"[192.0.2.1]"
"\"a b\""
"Date:"
"Message-ID:"
"\xc3\xbc"
DICT

UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
	"$build/fuzz_smtp_server" -max_total_time="$secs" -max_len=16384 -timeout=10 \
	-dict="$build/smtp.dict" -artifact_prefix="$build/artifacts/" \
	-print_final_stats=1 "$build/corpus" "$build/seed" || {
	rc=$?
	echo "fuzz: fuzz_smtp_server failed (exit $rc); inputs in $build/artifacts/" >&2
	exit "$rc"
}
