#!/bin/sh
# check-ref-examples.sh - every configuration example of the reference
# (test/fixtures/ref) passes `sluiced -t`, and every negative fixture
# (test/fixtures/neg: the parser's errors, also checked by test_conf_parse;
# test/fixtures/neg-values: files that parse but that the schema, the stage
# owning an option or the files an option names make sluiced -t refuse)
# fails with the file:line:col and message its first line announces:
#   # expect: LINE:COL: text of the error
. "$(dirname "$0")/lib.sh"
[ -x "$SLUICED" ] || { echo "Bail out! $SLUICED not built"; exit 1; }

for f in "$top_srcdir"/test/fixtures/ref/*.conf; do
	name=$(basename "$f")
	out=$("$SLUICED" -t -c "$f" 2>&1)
	rc=$?
	is "$rc" 0 "ref/$name passes sluiced -t"
	[ "$rc" -eq 0 ] || printf '%s\n' "$out" | sed 's/^/# /' | head -n 10
done

for f in "$top_srcdir"/test/fixtures/neg/*.conf "$top_srcdir"/test/fixtures/neg-values/*.conf; do
	name=$(basename "$f")
	kind=$(basename "$(dirname "$f")")
	expect=$(sed -n '1s/^# expect: //p' "$f")
	if [ -z "$expect" ]; then
		ok 1 "$kind/$name has an '# expect: LINE:COL: text' first line"
		continue
	fi
	pos=${expect%%: *}
	text=${expect#*: }
	out=$("$SLUICED" -t -c "$f" 2>&1)
	rc=$?
	is "$rc" 1 "$kind/$name fails sluiced -t"
	if printf '%s\n' "$out" | grep -F -- "$name:$pos: " | grep -qiF -- "$text"; then
		ok 0 "$kind/$name reports $name:$pos: $text"
	else
		ok 1 "$kind/$name reports $name:$pos: $text"
		printf '%s\n' "$out" | sed 's/^/# got: /' | head -n 10
	fi
done
done_testing
