#!/bin/sh
# test/bench/harness-smoke.sh - the benchmark harness runs (tiny N): `make check`
# keeps harness.py, sluice-bench and the daemon's ECStream and SMTP paths
# working together.  Figures are not judged here (BENCHMARKS.md is for that).
. "$(dirname "$0")/../lib.sh"
out=$(timeout 600 python3 "$top_srcdir/test/bench/harness.py" --smoke 2>&1)
rc=$?
is "$rc" 0 "harness.py --smoke exits 0 (every run completed)"
num='[0-9]+(\.[0-9]+)?'
for proto in smtp ecstream; do
	like "$out" "^\| sluice-fsync \| $proto \| 1024 \| $num \| $num \| $num \| $num \| $num \| $num \| ok \|$" \
		"a $proto relay row with every figure, status ok"
done
like "$out" '^idle: 200/200 sessions, [0-9]+ bytes each \(ok\)$' "200 idle sessions held, with their RSS"
like "$out" '^\{"runs": ' "the figures as JSON"
[ "$rc" = 0 ] || printf '%s\n' "$out" | sed 's/^/# /' | tail -n 30
done_testing
