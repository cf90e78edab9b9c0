#!/bin/sh
# c0001-check-config: `sluiced -t` and `sluiced -T` on good and bad files:
# every error with file:line:col and a reason, all errors of a file in one
# run, case-insensitive names, and -T output that parses back to itself for
# every reference example.
. "$(dirname "$0")/../lib.sh"
[ -x "$SLUICED" ] || { echo "Bail out! $SLUICED not built"; exit 1; }

check() { # check FILE -> sets out, rc
	out=$("$SLUICED" -t -c "$1" 2>&1)
	rc=$?
}

cat >"$T/multi.conf" <<'EOF2'
# three independent mistakes: all must be reported
No_Such_Option = 1
Domain "example.com" {
  Pidfile = "/tmp/x.pid"
}
Max_Outbound_Connections = many
EOF2
check "$T/multi.conf"
is "$rc" 1 "an invalid file exits 1"
like "$out" "multi.conf:2:1: unknown option 'No_Such_Option'" "unknown option at 2:1"
like "$out" "multi.conf:4:3: option '[Pp]idfile' is not valid in domain scope \(valid in: global\)" \
	"wrong scope at 4:3 names the valid scopes"
like "$out" "multi.conf:6:28: bad value for 'Max_Outbound_Connections': 'many' is not a (whole )?number" \
	"bad value at 6:28"
like "$out" "is not valid$" "the last line says the file is not valid"

cat >"$T/syntax.conf" <<'EOF2'
ESMTP_Listener = (
  *:25 [ 10.0.0.0/8 = ( personality [ idle_time = 30 ] )
)
EOF2
check "$T/syntax.conf"
is "$rc" 1 "a syntax error exits 1"
like "$out" "syntax.conf:3:1: " "the syntax error points at 3:1"

cat >"$T/case-a.conf" <<'EOF2'
ESMTP_LISTENER = ( 127.0.0.1:2525 [ 127.0.0.0/8 = ( PERSONALITY [ IDLE_TIME = 30 ] CONTINUE ) ] )
MAX_OUTBOUND_CONNECTIONS = 7
BINDING "b1" { DOMAIN "Example.COM" { MESSAGE_EXPIRATION = 60 } }
EOF2
cat >"$T/case-b.conf" <<'EOF2'
esmtp_listener = ( 127.0.0.1:2525 [ 127.0.0.0/8 = ( personality [ idle_time = 30 ] continue ) ] )
max_outbound_connections = 7
binding "b1" { domain "example.com" { message_expiration = 60 } }
EOF2
"$SLUICED" -T -c "$T/case-a.conf" | sed 1d >"$T/a.dump"
"$SLUICED" -T -c "$T/case-b.conf" | sed 1d >"$T/b.dump"
cmp -s "$T/a.dump" "$T/b.dump"
ok $? "option and block names are case-insensitive"
like "$(cat "$T/a.dump")" 'Max_Outbound_Connections = 7' "-T prints canonical names with the set value"
like "$(cat "$T/a.dump")" 'Domain "example.com"' "-T lower-cases exact domain names"

# -T fills in defaults: an empty file still prints every global option
: >"$T/empty.conf"
"$SLUICED" -T -c "$T/empty.conf" >"$T/empty.dump"
n=$(grep -Ec '^(# )?[A-Za-z_]+ = ' "$T/empty.dump")
ok $([ "$n" -gt 50 ] && echo 0 || echo 1) "-T on an empty file prints the defaults ($n options)"
grep -q '^# Use_MMAP = false$' "$T/empty.dump"
ok $? "-T prints the default of an option without effect as a comment"
"$SLUICED" -t -c "$T/empty.dump" >/dev/null 2>"$T/empty.err"
is "$(grep -c 'no effect' "$T/empty.err")" 0 "so its output loads without a notice for options nobody set"

# -T is a fixed point for every reference example
fails=""
for f in "$top_srcdir"/test/fixtures/ref/*.conf; do
	"$SLUICED" -T -c "$f" -D "$T" >"$T/one.conf" 2>"$T/one.err" || { fails="$fails $(basename "$f"):-T"; continue; }
	"$SLUICED" -T -c "$T/one.conf" -D "$T" >"$T/two.conf" 2>"$T/two.err" || { fails="$fails $(basename "$f"):reparse"; sed 's/^/# /' "$T/two.err" | head -5; continue; }
	sed 1d "$T/one.conf" >"$T/one.body"; sed 1d "$T/two.conf" >"$T/two.body"
	cmp -s "$T/one.body" "$T/two.body" || fails="$fails $(basename "$f"):differs"
done
is "$fails" "" "sluiced -T output re-parses to the same output for every reference example"

# include errors carry the location of the include statement
printf 'include "missing.conf"\n' >"$T/inc.conf"
check "$T/inc.conf"
is "$rc" 1 "a missing include exits 1"
like "$out" "inc.conf:1:[0-9]+: .*missing.conf" "and points at the include"

# bounce_classifier rules files are part of the configuration: checked by -t
printf ',10,no such user\nexample.com,abc,mailbox unavailable\n' >"$T/bad.ovr"
printf ',10,no such user\n' >"$T/good.ovr"
printf '10,no such user\n' >"$T/mdn.ovr"
# (the system_* options are paths: a relative one is taken from the state directory)
cat >"$T/rules.conf" <<EOF2
bounce_classifier {
  user_smtp_classification_overide = "good.ovr"
  user_mdn_classification_overide = "missing.ovr"
  system_smtp_classification_override = "$T/bad.ovr"
}
EOF2
check "$T/rules.conf"
is "$rc" 1 "a missing rules file exits 1"
like "$out" "rules.conf:3:3: bounce_classifier: user_mdn_classification_overide: cannot read .*/missing.ovr: No such file" \
	"the missing file is reported at its setting, with its path and the reason"
unlike "$out" "bad.ovr" "system files are not read without enable_system_updates"
sed -i -e 's/missing.ovr/mdn.ovr/' -e '1a\
  enable_system_updates = 1' "$T/rules.conf"
check "$T/rules.conf"
is "$rc" 1 "a rules file with a bad line exits 1"
like "$out" "rules.conf:5:3: bounce_classifier: system_smtp_classification_override: .*/bad.ovr:2: bounce code \"abc\" is not a number" \
	"with enable_system_updates the system file is read: its bad line is reported as file:line"
printf ',10,no such user\n' >"$T/bad.ovr"
check "$T/rules.conf"
is "$rc" 0 "good rules files pass"
sed -i 's/"mdn.ovr"/":datasource:sqlite:SELECT 1"/' "$T/rules.conf"
check "$T/rules.conf"
is "$rc" 0 "a datasource query passes"
like "$out" "rules.conf:[0-9]+:3: warning: bounce_classifier: .*datasource queries are not supported" \
	"... with a warning that it is ignored"

# an option accepted only for compatibility: valid, with one notice naming its place
printf 'Retry_Interval = 60\n  Use_MMAP = true\nDomain "a.test" { TLS = required }\n' >"$T/noeffect.conf"
"$SLUICED" -t -c "$T/noeffect.conf" >"$T/ne.out" 2>"$T/ne.err"
is "$?" 0 "options without effect in sluice do not make a configuration invalid"
is "$(grep -c 'is accepted for compatibility' "$T/ne.err")" 2 "sluiced -t prints one notice per such setting"
like "$(cat "$T/ne.err")" '^.*noeffect.conf:2:3: Use_MMAP is accepted for compatibility and has no effect in sluice \(sluice does not map spool files into memory\)$' "the notice gives file:line:col, the name and why"
like "$(cat "$T/ne.err")" 'noeffect.conf:3:19: TLS is accepted for compatibility' "a setting inside a Domain stanza gets its own notice"
printf 'Retry_Interval = 60\ncontrol_listener_timeout = 30\n' >"$T/effect.conf"
"$SLUICED" -t -c "$T/effect.conf" >"$T/e.out" 2>"$T/e.err"
is "$(cat "$T/e.err")" "" "options sluice reads give no notice"

done_testing
