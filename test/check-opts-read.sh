#!/bin/sh
# test/check-opts-read.sh - every option the schema accepts either works or says it does not.
#
# For each row of conf/conf_options.def: an SL_OPT row must be read by code
# outside conf/ (its SL_OPT_<ID> appears in engine/, stages/, proto/ or
# spool/), or sluice.conf(5) would describe an option that does nothing; an
# SL_OPT_NOEFFECT row (accepted for compatibility, with a notice) must be
# read nowhere, and its sluice.conf(5) entry must say "No effect in sluice".
# Options that other work in progress is about to read are listed in
# `pending` below; an entry there that is read now is reported, to be
# removed.  Prints TAP; exits 1 when a check fails.  Reads only the source
# tree.
. "$(dirname "$0")/lib.sh"
cd "$top_srcdir" || exit 1

def=conf/conf_options.def
man=man/sluice.conf.5
# Being built on other branches (read soon); none now.
pending=""
# Consumed by conf/ itself: BINDING_GROUP while it builds the snapshot's
# structure; Security's options, which conf/conf_security.c resolves (users,
# groups, capability sets) for engine/priv.c.
conf_only="BINDING_GROUP CAPABILITIES CHROOT GROUP USER"

is_read() { # is_read ID: SL_OPT_ID used in a source file outside conf/
	grep -rqw --include='*.c' --include='*.h' "SL_OPT_$1" engine stages proto spool
}

rows=$(sed -n 's/^SL_OPT(\([A-Z0-9_]*\),.*/\1/p' "$def")
flagged=$(sed -n 's/^SL_OPT_NOEFFECT(\([A-Z0-9_]*\),.*/\1/p' "$def")
ok "$([ -n "$rows" ] && [ -n "$flagged" ]; echo $?)" "rows read from $def ($(echo $rows | wc -w) working, $(echo $flagged | wc -w) without effect)"

unread=""
for id in $rows; do
	case " $pending $conf_only " in *" $id "*) continue ;; esac
	is_read "$id" || unread="$unread $id"
done
is "$unread" "" "every SL_OPT option is read outside conf/ (else: implement it, or make it SL_OPT_NOEFFECT with a reason)"

read_flagged=""
for id in $flagged; do
	is_read "$id" && read_flagged="$read_flagged $id"
done
is "$read_flagged" "" "no SL_OPT_NOEFFECT option is read (else: drop the flag and its notice)"

# The man page entry of each flagged option (by its name) says so.
undoc=""
for name in $(sed -n 's/^SL_OPT_NOEFFECT([A-Z0-9_]*, *"\([^"]*\)".*/\1/p' "$def"); do
	awk -v n="$name" '
		BEGIN { n = tolower(n) }
		/^\.Sh / { in_opts = ($2 == "OPTIONS"); next }
		in_opts && /^\.It Cm / { cur = tolower($3); next }
		in_opts && cur == n && /^\.Sy \\&No effect in sluice/ { found = 1 }
		END { exit !found }
	' "$man" || undoc="$undoc $name"
done
is "$undoc" "" "sluice.conf(5) says \"No effect in sluice\" in the entry of every SL_OPT_NOEFFECT option"

stale=""
for id in $pending; do
	is_read "$id" && stale="$stale $id"
done
[ -n "$stale" ] && echo "# read now, remove from pending in $0:$stale"
done_testing
