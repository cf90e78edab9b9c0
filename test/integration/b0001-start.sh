#!/bin/sh
# b0001-start: sluiced's command line, the shipped configuration, the
# pidfile, detaching, SIGHUP reload (good and bad files), SIGUSR1 log
# reopening and a clean SIGTERM stop, all against the real daemon.
. "$(dirname "$0")/../lib.sh"
[ -x "$SLUICED" ] || { echo "Bail out! $SLUICED not built"; exit 1; }
# The built-in configuration listens on 127.0.0.1:2525: use a private loopback.
sl_netns "$@"

# --- command line and manual
out=$("$SLUICED" -h); rc=$?
is "$rc" 0 "sluiced -h exits 0"
for f in c D F t T p d V h; do
	like "$out" "^ *-$f( |$)" "sluiced -h documents -$f"
	grep -q "^\.It Fl $f" "$top_srcdir/man/sluiced.8"
	ok $? "sluiced(8) documents -$f"
done
like "$("$SLUICED" -V)" '^sluiced [0-9]+\.[0-9]+' "sluiced -V prints the version"
"$SLUICED" -x >/dev/null 2>&1; is "$?" 2 "an unknown flag exits 2"
"$SLUICED" -d loud -t >/dev/null 2>&1; is "$?" 2 "an unknown -d level exits 2"

# --- the built-in configuration
out=$(cd "$T" && "$SLUICED" -t 2>&1); rc=$?
is "$rc" 0 "the built-in configuration is valid"
dump=$(cd "$T" && "$SLUICED" -T 2>&1)
like "$dump" "127\.0\.0\.1:2525" "the built-in configuration listens on 127.0.0.1:2525"
like "$dump" "$T/sluice-state/spool" "relative paths resolve against the state directory"
# Everything the daemon writes lives under the state directory.
outside=$(echo "$dump" | grep -iE '^[[:space:]]*(mainlog|rejectlog|paniclog|acctlog|bouncelog|importlog|spoolbase|pidfile) = "' |
	grep -v "= \"$T/sluice-state/")
is "$outside" "" "every log, the spool and the pidfile are under ./sluice-state"
"$SLUICED" -T -c "$top_srcdir/conf/sluice.conf" -D "$T" >"$T/file.dump" 2>&1
echo "$dump" | sed 1d >"$T/builtin.dump"
sed 1d "$T/file.dump" | cmp -s - "$T/builtin.dump"
ok $? "the compiled-in configuration is conf/sluice.conf"

# --- foreground start on the built-in configuration
sl_start
wait_for 10 test -s "$T/sluice-state/sluiced.pid"
ok $? "the pidfile appears"
is "$(cat "$T/sluice-state/sluiced.pid" 2>/dev/null)" "$SL_PID" "the pidfile holds the daemon's pid"
wait_for 10 grep -q "started" "$T/sluice-state/log/paniclog.ec"
ok $? "the paniclog records the start"
like "$(cat "$T/stderr")" '^\[[A-Z][a-z]{2} [0-9]{2} [A-Z][a-z]{2} [0-9]{4} [0-9:]{8}\] \[notice\] sluiced .* started' \
	"-F copies diagnostics to stderr with a UTC timestamp and level"
wait_for 10 grep -Eq '^[0-9]+@@@@M$' "$T/sluice-state/log/mainlog.ec"
ok $? "the mainlog gets a heartbeat line"
unlike "$(cat "$T/stderr")" '\[(err|crit|alert|emerg)\]' "no error at start on the built-in configuration"
# A closed relay: mail for a domain it neither relays for nor accepts is refused.
out=$(swaks --server 127.0.0.1:2525 --from a@client.example --to you@example.com \
	--quit-after RCPT --timeout 10 2>&1)
like "$out" '<\*\* 550 Relaying denied' "the built-in configuration refuses to relay (550)"
comms=$(cat /proc/"$SL_PID"/task/*/comm 2>/dev/null | tr '\n' ' ')
like "$comms" "log" "the logger thread is named"

# a second instance on the same pidfile refuses to start
out=$(cd "$T" && "$SLUICED" -F 2>&1); rc=$?
is "$rc" 1 "a second instance exits 1"
like "$out" "another sluiced \(pid $SL_PID\) is running" "and names the running pid"

# SIGUSR1 reopens the logs
mv "$T/sluice-state/log/paniclog.ec" "$T/paniclog.old"
kill -USR1 "$SL_PID"
wait_for 10 grep -q "logs reopened" "$T/sluice-state/log/paniclog.ec"
ok $? "SIGUSR1 reopens the paniclog under its name"

sl_stop TERM
is "$SL_RC" 0 "SIGTERM stops it with status 0"
test ! -e "$T/sluice-state/sluiced.pid"; ok $? "the pidfile is removed on stop"
grep -q "sluiced stopped" "$T/sluice-state/log/paniclog.ec"
ok $? "the paniclog records the stop"

# --- reload with a configuration file: good, then broken
mkdir -p "$T/etc"
cat >"$T/etc/sluice.conf" <<'CONF'
SpoolBase = "spool"
Pidfile = "run/sluiced.pid"
ec_logger { paniclog = "log/panic.ec" mainlog = "log/main.ec" heartbeat = 1 }
CONF
sl_start -c "$T/etc/sluice.conf" -D "$T"
wait_for 10 grep -q started "$T/log/panic.ec"
ok $? "started with -c and -D"
kill -HUP "$SL_PID"
wait_for 10 grep -q "generation 2" "$T/log/panic.ec"
ok $? "SIGHUP reloads: generation 2"
cat >>"$T/etc/sluice.conf" <<'CONF'
Max_Outbound_Connections = lots
CONF
kill -HUP "$SL_PID"
wait_for 10 grep -q "reload failed" "$T/log/panic.ec"
ok $? "a broken file is refused on SIGHUP"
like "$(cat "$T/log/panic.ec")" "sluice.conf:4:[0-9]+: bad value for 'Max_Outbound_Connections'" \
	"the reload error names file:line:col"
like "$(cat "$T/log/panic.ec")" "still running generation 2" "and the old configuration stays"
kill -0 "$SL_PID"; ok $? "sluiced is still running"
n1=$(grep -c '@@M' "$T/log/main.ec")
sleep 2.2
n2=$(grep -c '@@M' "$T/log/main.ec")
ok $([ "$n2" -gt "$n1" ] && echo 0 || echo 1) "heartbeat = 1 keeps writing heartbeats ($n1 -> $n2)"
sl_stop INT
is "$SL_RC" 0 "SIGINT stops it with status 0"

# --- detached (no -F): the parent returns once the child is ready
sed -i '$d' "$T/etc/sluice.conf"
"$SLUICED" -c "$T/etc/sluice.conf" -D "$T" >"$T/daemon.out" 2>&1
is "$?" 0 "without -F the parent exits 0 after start-up"
wait_for 10 test -s "$T/run/sluiced.pid"
SL_PID=$(cat "$T/run/sluiced.pid")
kill -0 "$SL_PID" 2>/dev/null; ok $? "the detached daemon runs (pid $SL_PID)"
[ "$(ps -o sid= -p "$SL_PID" | tr -d ' ')" != "$(ps -o sid= -p $$ | tr -d ' ')" ]
ok $? "it runs in a session of its own (detached)"
kill -TERM "$SL_PID"
wait_for 20 sh -c "! kill -0 $SL_PID 2>/dev/null"
ok $? "the detached daemon stops on SIGTERM"
SL_PID=
test ! -e "$T/run/sluiced.pid"; ok $? "and removes its pidfile"

# start-up failure is reported by the parent
printf 'SpoolBase = "/proc/sluice-cannot-exist/spool"\n' >"$T/etc/bad-dir.conf"
out=$("$SLUICED" -c "$T/etc/bad-dir.conf" -D "$T" 2>&1); rc=$?
is "$rc" 1 "a start-up failure exits 1"
like "$out" "cannot create SpoolBase /proc/sluice-cannot-exist/spool" "and says why"

done_testing
