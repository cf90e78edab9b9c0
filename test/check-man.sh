#!/bin/sh
# test/check-man.sh - sluice.conf(5) documents exactly the options of the schema.
#
# Reads the option names from conf/conf_options.def (the second argument of
# each SL_OPT row) and the ".It Cm Name" entries of the OPTIONS section of
# man/sluice.conf.5, and compares them case-insensitively in both directions,
# counting repeats: a name used by two rows (State in SNMP and in SNMP_TRAPS)
# needs two entries.  Then lints the page with mandoc when it is installed.
# Prints TAP; exits 1 when any check fails.  Reads only the source tree
# ($top_srcdir, by default the directory above this script's).
set -u

: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
def="$top_srcdir/conf/conf_options.def"
man="$top_srcdir/man/sluice.conf.5"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/check-man.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM

n=0
failed=0
result() { # result STATUS DESCRIPTION [DETAIL]  (status 0 = pass)
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $n - $2"
	else
		echo "not ok $n - $2"
		[ -n "${3:-}" ] && printf '%s\n' "$3" | sed 's/^/# /'
		failed=$((failed + 1))
	fi
}

echo "1..4"

if [ ! -r "$def" ] || [ ! -r "$man" ]; then
	for what in "OPTIONS section found" "options documented" "entries known" "mandoc lint"; do
		result 1 "$what" "cannot read $def or $man"
	done
	exit 1
fi

# Names, lower-cased, one per line, sorted (repeats kept).
sed -n 's/^SL_OPT\(_NOEFFECT\)\{0,1\}([A-Za-z0-9_]*, *"\([^"]*\)".*/\2/p' "$def" |
	tr '[:upper:]' '[:lower:]' | LC_ALL=C sort >"$tmp/def"
awk '
	/^\.Sh / { in_opts = ($2 == "OPTIONS"); next }
	in_opts && /^\.It Cm / { print $3 }
' "$man" | tr '[:upper:]' '[:lower:]' | LC_ALL=C sort >"$tmp/man"

def_cnt=$(wc -l <"$tmp/def")
man_cnt=$(wc -l <"$tmp/man")
if [ "$def_cnt" -gt 0 ] && [ "$man_cnt" -gt 0 ]; then
	result 0 "OPTIONS section found ($def_cnt options in the schema, $man_cnt entries)"
else
	result 1 "OPTIONS section found" "schema rows: $def_cnt, .It Cm entries under .Sh OPTIONS: $man_cnt"
fi

# comm on sorted lists with repeats: a name twice in one file and once in the
# other leaves one copy in the difference.
missing=$(LC_ALL=C comm -23 "$tmp/def" "$tmp/man" | tr '\n' ' ')
unknown=$(LC_ALL=C comm -13 "$tmp/def" "$tmp/man" | tr '\n' ' ')
if [ -z "$missing" ]; then
	result 0 "every option of conf_options.def has an .It Cm entry in sluice.conf.5"
else
	result 1 "every option of conf_options.def has an .It Cm entry in sluice.conf.5" \
		"undocumented (or documented fewer times than the schema has rows): $missing"
fi
if [ -z "$unknown" ]; then
	result 0 "every .It Cm entry of sluice.conf.5 OPTIONS is an option of conf_options.def"
else
	result 1 "every .It Cm entry of sluice.conf.5 OPTIONS is an option of conf_options.def" \
		"unknown to the schema (or documented more times than it has rows): $unknown"
fi

if command -v mandoc >/dev/null 2>&1; then
	if out=$(mandoc -T lint -W warning "$man" 2>&1); then
		result 0 "mandoc -T lint -W warning sluice.conf.5"
	else
		result 1 "mandoc -T lint -W warning sluice.conf.5" "$out"
	fi
else
	n=$((n + 1))
	echo "ok $n # SKIP mandoc is not installed"
fi

[ "$failed" -eq 0 ] || exit 1
exit 0
