#!/bin/sh
# test/check-mib.sh - both MIB files sluice ships, man/SLUICE-SMI.txt (the
# root of its OIDs) and man/SLUICE-MIB.txt (its objects), pass smilint -l 3
# (smitools), and a module with a mistake does not (so the check can fail).
#
# smilint resolves the imports from man/ itself, from test/fixtures/mibs
# (stand-ins for the IETF base modules, see its README) and from net-snmp's
# /usr/share/snmp/mibs (NET-SNMP-MIB, for netSnmpPlaypen).  smilint exits
# 0 even when it reports; a clean module is one it says nothing about.
set -u
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
mibs="SLUICE-SMI SLUICE-MIB"
SMIPATH=$top_srcdir/man:$top_srcdir/test/fixtures/mibs:/usr/share/snmp/mibs
export SMIPATH
echo "1..3"
if ! command -v smilint >/dev/null 2>&1; then
	echo "not ok 1 - smilint is installed (apt-get install smitools)"
	echo "not ok 2 - # smilint missing"
	echo "not ok 3 - # smilint missing"
	exit 1
fi
n=0
clean=0
for m in $mibs; do
	n=$((n + 1))
	out=$(smilint -l 3 -s "$top_srcdir/man/$m.txt" 2>&1)
	if [ -z "$out" ]; then
		echo "ok $n - $m passes smilint -l 3"
		clean=$((clean + 1))
	else
		echo "not ok $n - $m passes smilint -l 3"
		printf '%s\n' "$out" | sed 's/^/# /'
	fi
done
tmp=$(mktemp -d "${TMPDIR:-/tmp}/check-mib.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
# SLUICE-MIB with an object's STATUS removed: smilint must complain.
sed '0,/STATUS      current/{/STATUS      current/d}' \
	"$top_srcdir/man/SLUICE-MIB.txt" >"$tmp/SLUICE-MIB.txt"
bad=$(smilint -l 3 -s "$tmp/SLUICE-MIB.txt" 2>&1)
if [ -n "$bad" ]; then
	echo "ok 3 - a broken copy is reported ($(printf '%s\n' "$bad" | head -n 1))"
else
	echo "not ok 3 - a broken copy is reported"
fi
[ "$clean" -eq 2 ] && [ -n "$bad" ]
