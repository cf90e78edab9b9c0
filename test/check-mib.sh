#!/bin/sh
# test/check-mib.sh - mib/SLUICE-MIB.txt passes smilint -l 3 (smitools),
# and a MIB with a mistake does not (so the check can fail).
#
# smilint resolves SLUICE-MIB's imports from test/fixtures/mibs (stand-ins
# for the IETF base modules, see its README) and from net-snmp's
# /usr/share/snmp/mibs (NET-SNMP-MIB, for netSnmpPlaypen).  smilint exits
# 0 even when it reports; a clean module is one it says nothing about.
set -u
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
mib=$top_srcdir/mib/SLUICE-MIB.txt
SMIPATH=$top_srcdir/test/fixtures/mibs:/usr/share/snmp/mibs
export SMIPATH
echo "1..2"
if ! command -v smilint >/dev/null 2>&1; then
	echo "not ok 1 - smilint is installed (apt-get install smitools)"
	echo "not ok 2 - # smilint missing"
	exit 1
fi
out=$(smilint -l 3 -s "$mib" 2>&1)
if [ -z "$out" ]; then
	echo "ok 1 - SLUICE-MIB passes smilint -l 3"
else
	echo "not ok 1 - SLUICE-MIB passes smilint -l 3"
	printf '%s\n' "$out" | sed 's/^/# /'
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/check-mib.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
# The same module with an object's STATUS removed: smilint must complain.
sed '0,/STATUS      current/{/STATUS      current/d}' "$mib" >"$tmp/SLUICE-MIB.txt"
bad=$(smilint -l 3 -s "$tmp/SLUICE-MIB.txt" 2>&1)
if [ -n "$bad" ]; then
	echo "ok 2 - a broken copy is reported ($(printf '%s\n' "$bad" | head -n 1))"
else
	echo "not ok 2 - a broken copy is reported"
fi
[ -z "$out" ] && [ -n "$bad" ]
