#!/bin/sh
# test/fuzz/run.sh - build the configuration parser fuzzer and run it.
#
# Usage: test/fuzz/run.sh [SECONDS]      (default 60; `make fuzz` passes FUZZ_SECONDS)
#
# Builds test/fuzz/fuzz_conf_parse.c with libFuzzer, ASan and UBSan straight
# from the parser's sources into ./build-fuzz (in the current directory, as
# `make fuzz` runs it from the build tree), seeds the corpus from
# test/fixtures (ref and neg), and fuzzes for SECONDS with inputs up to 64 KiB.
# Exits nonzero when the fuzzer finds a crash, leak, UB or hang; the input
# that triggered it is left in build-fuzz/artifacts/.
set -eu

secs=${1:-60}
case $secs in
'' | *[!0-9]*)
	echo "usage: $0 [SECONDS]" >&2
	exit 2
	;;
esac

top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(pwd)/build-fuzz
cc=${FUZZ_CC:-clang}

mkdir -p "$build/corpus" "$build/seed" "$build/artifacts"

# The sources include "config.h" first; this build needs only _GNU_SOURCE.
printf '/* Written by test/fuzz/run.sh. */\n#define _GNU_SOURCE 1\n' > "$build/config.h"

fflags="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
"$cc" $fflags -I"$top" -I"$build" \
	"$top/engine/alloc.c" "$top/engine/arena.c" "$top/conf/conf_err.c" \
	"$top/conf/conf_lex.c" "$top/conf/conf_parse.c" \
	"$top/test/fuzz/fuzz_conf_parse.c" -o "$build/fuzz_conf_parse"

# The schema pass: every conf/ source, the engine pieces it uses, the
# compiled-in configuration.
sh "$top/conf/embed.sh" sl_conf_default_text <"$top/conf/sluice.conf" >"$build/conf_default.c"
"$cc" $fflags -I"$top" -I"$build" $(pkg-config --cflags liburcu-memb libuv libpcre2-8) \
	"$top"/engine/alloc.c "$top"/engine/arena.c "$top"/engine/log.c "$top"/engine/rcu.c \
	"$top"/engine/counter.c $(ls "$top"/conf/conf_*.c | grep -v conf_default.c) \
	"$build/conf_default.c" \
	"$top/test/fuzz/fuzz_conf_snapshot.c" \
	$(pkg-config --libs liburcu-memb liburcu-cds libpcre2-8) -lpthread \
	-o "$build/fuzz_conf_snapshot"
mkdir -p "$build/corpus-snapshot"

# Seeds: every fixture file, flattened to unique names.
rm -f "$build/seed/"*
find "$top/test/fixtures/ref" "$top/test/fixtures/neg" -type f | while read -r f; do
	cp "$f" "$build/seed/$(printf '%s' "${f#"$top"/test/fixtures/}" | tr '/' '_')"
done

# Tokens the mutator should try whole.
cat > "$build/conf.dict" <<'EOF'
"include "
"include \"x\""
"file:///"
"eccmgr://"
" = "
"("
")"
"{"
"}"
"["
"]"
"<"
">"
"\""
"\\\""
"\\n"
"#"
"/*"
"*/"
"\x0a"
"[::1]:25"
"[2001:db8::1]:587,200~20"
"*:25"
"0.0.0.0/0"
"continue"
"personality"
"Esmtp_Listener"
"Domain"
EOF

# Half the time for the parser, half for the schema pass.
half=$(( (secs + 1) / 2 ))
rc=0
for target in conf_parse conf_snapshot; do
	corpus=$build/corpus
	[ "$target" = conf_snapshot ] && corpus=$build/corpus-snapshot
	UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
		"$build/fuzz_$target" -max_total_time="$half" -max_len=65536 -timeout=10 \
		-dict="$build/conf.dict" -artifact_prefix="$build/artifacts/$target-" \
		-print_final_stats=1 "$corpus" "$build/seed" || rc=$?
	if [ "$rc" -ne 0 ]; then
		echo "fuzz: fuzz_$target failed (exit $rc); inputs in $build/artifacts/" >&2
		break
	fi
done
exit "$rc"
