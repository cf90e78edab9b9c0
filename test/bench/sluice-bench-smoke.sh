#!/bin/sh
# test/bench/sluice-bench-smoke.sh - sluice-bench against itself and against
# a real sluiced, small and fast (TAP; a test of the tool, not a benchmark).
#
# Inside a private network namespace: the sink takes what inject sends
# (one session per message, PIPELINING, reused sessions, several
# recipients) and its counter file and totals agree; -j writes the same
# figures as JSON; idle holds its sessions; a closed port ends in
# status=timeout within -T; a non-loopback -H is refused.  Then sluiced
# with an ESMTP and an ECStream listener relays both protocols into the
# sink.  Every run is bounded by -T and timeout(1).
. "$(dirname "$0")/../lib.sh"
BENCH="$top_builddir/sluice-bench"
[ -x "$BENCH" ] || { echo "Bail out! $BENCH not built"; exit 1; }
sl_netns "$@"

SINK=2600 ESMTP=2631 ECS=2632
SINK_PID=
cleanup_sink() { [ -n "$SINK_PID" ] && kill -9 "$SINK_PID" 2>/dev/null; }
trap 'cleanup_sink; _sl_cleanup' EXIT
# port_open PORT [PROTO]: one session is set up there (sluice-bench idle as the probe)
port_open() { "$BENCH" idle -H 127.0.0.1 -p "$1" -P "${2:-smtp}" -s 1 -d 0 -T 1 >/dev/null 2>&1; }
# field LINE KEY -> the value of KEY=value in a figures line
field() { printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
count_at_least() { [ "$(cat "$1" 2>/dev/null || echo 0)" -ge "$2" ]; }

# --- usage
out=$("$BENCH" -h); rc=$?
is "$rc" 0 "sluice-bench -h exits 0"
for f in H p P n s l m x w f t r T j c d; do
	like "$out" "^ *-$f( |$)" "the usage documents -$f"
done
like "$out" "--any-host" "the usage documents --any-host"
"$BENCH" inject -H 192.0.2.1 -p 25 >/dev/null 2>&1
is "$?" 2 "a non-loopback -H is refused"
"$BENCH" inject -H 127.0.0.1 -p 25 -l 100 >/dev/null 2>&1
is "$?" 2 "a SIZE smaller than the header is refused"

# --- inject into the sink
"$BENCH" sink -p $SINK -c "$T/count" -T 120 -j "$T/sink.json" >"$T/sink.out" 2>"$T/sink.err" &
SINK_PID=$!
wait_for 10 port_open $SINK
ok $? "the sink listens"
total=0
for args in "-m 1" "-m 1 -x" "-m 0 -x -r 3" "-m 0" "-m 5 -x -l 10240"; do
	line=$(timeout 60 "$BENCH" inject -H 127.0.0.1 -p $SINK -n 2000 -s 20 -T 30 $args \
		-j "$T/inject.json" 2>"$T/inject.err")
	rc=$?
	is "$rc" 0 "inject $args exits 0"
	is "$(field "$line" accepted)/$(field "$line" refused)/$(field "$line" errors)/$(field "$line" status)" \
		"2000/0/0/ok" "inject $args: 2000 accepted, none refused, no errors"
	total=$((total + 2000))
done
like "$line" '^mode=inject proto=smtp n=2000 size=10240 sessions=20 accepted=2000 refused=0 errors=0 elapsed_s=[0-9.]+ accept_mps=[0-9]+ lat_p50_us=[0-9]+ lat_p99_us=[0-9]+ lat_max_us=[0-9]+ ' \
	"the figures line has the fields in order"
json=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["mode"], d["accepted"], d["status"], d["lat_p99_us"] >= d["lat_p50_us"])' "$T/inject.json" 2>&1)
is "$json" "inject 2000 ok True" "-j writes the same figures as JSON"
wait_for 5 count_at_least "$T/count" $total
ok $? "the sink's counter file reaches $total"

# --- idle
line=$(timeout 60 "$BENCH" idle -H 127.0.0.1 -p $SINK -s 500 -d 1 2>/dev/null); rc=$?
is "$rc" 0 "idle exits 0"
is "$(field "$line" established)/$(field "$line" held)" "500/500" "idle holds 500 sessions"

# --- a closed port: errors, retries, and -T ends it
line=$(timeout 20 "$BENCH" inject -H 127.0.0.1 -p 2699 -n 10 -s 2 -T 1 2>/dev/null); rc=$?
is "$rc" 1 "inject into a closed port exits 1"
is "$(field "$line" status)/$(field "$line" accepted)" "timeout/0" "and reports status=timeout"
test "$(field "$line" errors)" -gt 2
ok $? "connection refusals are counted and retried"

# --- the real daemon, both protocols, relaying into the sink
if [ -x "$SLUICED" ]; then
	cat >"$T/sluice.conf" <<EOF
ESMTP_Listener = ( 127.0.0.1:$ESMTP [ 127.0.0.0/8 = ( relay_for_sending_domains ) ] )
ECStream_Listener = ( 127.0.0.1:$ECS [ 127.0.0.0/8 = ( relay_for_sending_domains ) ] )
Relay_Domains = ( "sink.example" )
Gateway = "127.0.0.1:$SINK"
SpoolBase = "$T/spool"
Pidfile = "$T/sluiced.pid"
ec_logger { mainlog = "$T/mainlog.ec" rejectlog = "$T/rejectlog.ec" paniclog = "$T/paniclog.ec" }
EOF
	sl_start -c "$T/sluice.conf"
	wait_for 20 port_open $ECS ecstream
	ok $? "sluiced listens"
	line=$(timeout 60 "$BENCH" inject -H 127.0.0.1 -p $ESMTP -n 1000 -s 10 -m 0 -x -T 30 2>"$T/e1.err")
	is "$(field "$line" accepted)/$(field "$line" status)" "1000/ok" "SMTP into sluiced: 1000 accepted"
	line=$(timeout 60 "$BENCH" inject -P ecstream -H 127.0.0.1 -p $ECS -n 1000 -s 10 -m 0 -T 30 2>"$T/e2.err")
	is "$(field "$line" accepted)/$(field "$line" status)" "1000/ok" "ECStream into sluiced: 1000 accepted"
	line=$(timeout 60 "$BENCH" inject -P ecstream -H 127.0.0.1 -p $ECS -n 200 -s 4 -m 10 -w 4 -T 30 2>"$T/e3.err")
	is "$(field "$line" accepted)/$(field "$line" connections)" "200/20" "ECStream, 10 frames per connection"
	total=$((total + 2200))
	wait_for 30 count_at_least "$T/count" $total
	ok $? "sluiced relays all of them into the sink"
	sl_stop
fi

# --- the sink's totals on SIGTERM
kill -TERM "$SINK_PID"
wait "$SINK_PID"
is "$?" 0 "the sink exits 0 on SIGTERM"
SINK_PID=
like "$(cat "$T/sink.out")" "^mode=sink messages=$total sessions=[0-9]+ " "and prints its total"
is "$(cat "$T/count")" "$total" "the counter file holds the total"

done_testing
