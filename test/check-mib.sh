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
echo "1..5"
if ! command -v smilint >/dev/null 2>&1; then
	echo "not ok 1 - smilint is installed (apt-get install smitools)"
	echo "not ok 2 - # smilint missing"
	echo "not ok 3 - # smilint missing"
	echo "not ok 4 - # smilint missing"
	echo "not ok 5 - # smilint missing"
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
# The OIDs the agent serves are those of the MIB text: net-snmp's own
# parser (snmptranslate, from the same stand-ins) resolves sluiceMIB to the
# root stages/snmp_int.h serves, and the SNMP tests use that root too.
served=$(sed -n 's/^#define SL_SNMP_SLUICE_ROOT "\(.*\)"$/\1/p' "$top_srcdir/stages/snmp_int.h")
mibroot=$(MIBDIRS=$SMIPATH snmptranslate -m SLUICE-MIB -On SLUICE-MIB::sluiceMIB 2>&1)
if [ -n "$served" ] && [ "$mibroot" = ".$served" ]; then
	echo "ok 4 - SLUICE-MIB's sluiceMIB is the root the agent serves ($served)"
	tied=1
else
	echo "not ok 4 - SLUICE-MIB's sluiceMIB ($mibroot) is the root the agent serves ($served)"
	tied=0
fi
untied=$(grep -L "^ROOT = '$served'\$" "$top_srcdir/test/integration/s0001-snmp.py" \
	"$top_srcdir/test/integration/s0002-agentx.py")
if [ -n "$served" ] && [ -z "$untied" ]; then
	echo "ok 5 - s0001 and s0002 walk that root"
else
	echo "not ok 5 - s0001 and s0002 walk that root (not: $untied)"
	tied=0
fi
[ "$clean" -eq 2 ] && [ -n "$bad" ] && [ "$tied" -eq 1 ]
