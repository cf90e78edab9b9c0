#!/bin/sh
# summary.sh LOG... - add up automake test-suite.log headers of the plain,
# ASan and TSan builds and print one final line "N passed, N failed".
# A log that is missing counts as one failure (that build did not finish).
# Exit status: 0 when nothing failed.
pass=0
fail=0
skip=0
for log in "$@"; do
	if [ ! -f "$log" ]; then
		echo "summary: $log is missing (build or test run did not finish)"
		fail=$((fail + 1))
		continue
	fi
	get() { sed -n "s/^# $1: *\([0-9][0-9]*\).*/\1/p" "$log" | head -n 1; }
	p=$(get PASS); f=$(get FAIL); e=$(get ERROR); x=$(get XPASS); s=$(get SKIP)
	echo "summary: $log: pass=${p:-0} fail=${f:-0} error=${e:-0} xpass=${x:-0} skip=${s:-0}"
	pass=$((pass + ${p:-0}))
	fail=$((fail + ${f:-0} + ${e:-0} + ${x:-0}))
	skip=$((skip + ${s:-0}))
done
[ "$skip" -gt 0 ] && echo "summary: $skip skipped"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
