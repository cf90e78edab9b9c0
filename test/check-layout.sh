#!/bin/sh
# check-layout.sh - the include rules of the source tree (STYLE.md section 1):
#  1. no stage includes another stage;
#  2. engine/ includes nothing of SMTP, delivery or the spool (proto/, spool/,
#     stages/), and no engine file but engine/main.c (the daemon's assembly
#     point) includes conf/;
#  3. proto/ does no I/O and knows no stage: it includes neither stages/ nor spool/;
#  4. conf/ includes only conf/ and engine/.
. "$(dirname "$0")/lib.sh"
cd "$top_srcdir" || exit 1

incs() { grep -HnE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$@" 2>/dev/null; }

# 1 (events.h, eclog.h, stats.h and stages.h are shared declarations, not stages)
shared="events eclog stats stages"
bad=""
for f in $(ls stages/*.c stages/*.h stages/*/*.c stages/*/*.h 2>/dev/null); do
	own=$(basename "$f" | sed -e 's/\.[ch]$//' -e 's/_int$//' -e 's/_.*$//')
	case "$f" in stages/*/*) own=$(echo "$f" | cut -d/ -f2) ;; esac
	for inc in $(incs "$f" | sed -n 's/.*"\(stages\/[^"]*\)".*/\1/p'); do
		other=$(basename "$inc" | sed -e 's/\.h$//' -e 's/_int$//' -e 's/_.*$//')
		case "$inc" in stages/*/*) other=$(echo "$inc" | cut -d/ -f2) ;; esac
		case " $shared " in *" $other "*) continue ;; esac
		[ "$other" != "$own" ] && bad="$bad $f->$inc"
	done
done
is "$bad" "" "no stage includes another stage"

# 2
# (engine/*_main.c are the command-line tools' entry points: clients may speak a protocol)
bad=$(incs engine/*.c engine/*.h | grep -v '^engine/main.c:' | grep -v '^engine/[a-z]*_main.c:' |
	grep -E '"(proto|spool|stages)/' | cut -d: -f1,2 | tr '\n' ' ')
is "$bad" "" "engine/ (but main.c and the tools' *_main.c) includes nothing of proto/, spool/ or stages/ (no SMTP)"
bad=$(incs engine/main.c | grep -E '"(proto|spool)/' | cut -d: -f1,2 | tr '\n' ' ')
is "$bad" "" "engine/main.c includes nothing of SMTP (proto/) or the spool"
bad=$(incs engine/*.c engine/*.h | grep -v '^engine/main.c:' | grep -E '"(conf|stages)/' | cut -d: -f1,2 | tr '\n' ' ')
is "$bad" "" "only engine/main.c (the assembly point) includes conf/ or stages/"
bad=$(incs engine/main.c | grep -E '"stages/' | grep -vE '"stages/(stages|eclog)\.h"' | cut -d: -f1,2 | tr '\n' ' ')
is "$bad" "" "engine/main.c knows the stages only through stages/stages.h and eclog.h"
bad=$(grep -HniE 'smtp|ehlo|rcpt|mail from' engine/*.h 2>/dev/null | grep -v '^engine/main' | cut -d: -f1,2 | tr '\n' ' ')
is "$bad" "" "engine/ headers do not mention SMTP"

# 3
bad=$(incs proto/*.c proto/*.h | grep -E '"(stages|spool)/' | cut -d: -f1,2 | tr '\n' ' ')
is "$bad" "" "proto/ includes no stage or spool code"

# 4
bad=$(incs conf/*.c conf/*.h | grep -vE '"(conf|engine)/|"config.h"' | cut -d: -f1,2 | tr '\n' ' ')
is "$bad" "" "conf/ includes only conf/ and engine/"

done_testing
