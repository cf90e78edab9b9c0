#!/bin/sh
# check-momentum-examples.sh - every configuration example taken from
# Momentum's option pages (test/fixtures/momentum, made by extract.py there
# from conf.ref.*.md) passes `sluiced -t`.  The examples sluice does not
# take, and why, are listed in test/fixtures/momentum/README.
. "$(dirname "$0")/lib.sh"
[ -x "$SLUICED" ] || { echo "Bail out! $SLUICED not built"; exit 1; }

n=0
for f in "$top_srcdir"/test/fixtures/momentum/*.conf; do
	name=$(basename "$f")
	out=$("$SLUICED" -t -c "$f" 2>&1)
	rc=$?
	is "$rc" 0 "momentum/$name passes sluiced -t"
	[ "$rc" -eq 0 ] || printf '%s\n' "$out" | sed 's/^/# /' | head -n 10
	n=$((n + 1))
done
# The listener/ACL, relay and personality pages must be among them.
for page in relay_hosts relay_domains xclient idle_timeout; do
	set -- "$top_srcdir"/test/fixtures/momentum/"$page"-*.conf
	[ -e "$1" ]
	is $? 0 "the examples of conf.ref.$page.md are checked"
done
[ "$n" -ge 100 ]
is $? 0 "at least 100 examples are checked ($n)"
done_testing
