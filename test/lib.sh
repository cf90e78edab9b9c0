# test/lib.sh - shared helpers for the TAP shell tests (sourced, not run).
#
# Provides: ok/is/like/unlike assertions that print TAP lines, done_testing
# (prints the plan, exits 1 if anything failed), a temporary directory
# $T removed on exit, sl_netns (re-run the calling script inside a private
# network namespace with only loopback), and sl_start/sl_stop for a real
# sluiced.  Every wait is bounded.
set -u

: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
case "$top_srcdir" in */test) top_srcdir=$(cd "$top_srcdir/.." && pwd) ;; esac
: "${top_builddir:=$top_srcdir}"
export top_srcdir top_builddir
SLUICED="$top_builddir/sluiced"

_tap_n=0
_tap_fail=0

ok() { # ok CONDITION-STATUS DESCRIPTION  (status 0 = pass)
	_tap_n=$((_tap_n + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $_tap_n - $2"
	else
		echo "not ok $_tap_n - $2"
		_tap_fail=$((_tap_fail + 1))
	fi
}

is() { # is GOT EXPECTED DESCRIPTION
	if [ "$1" = "$2" ]; then
		ok 0 "$3"
	else
		ok 1 "$3"
		printf '# got:      %s\n# expected: %s\n' "$1" "$2"
	fi
}

like() { # like TEXT EXTENDED-REGEX DESCRIPTION
	if printf '%s\n' "$1" | grep -Eq -- "$2"; then
		ok 0 "$3"
	else
		ok 1 "$3"
		printf '%s\n' "$1" | sed 's/^/# got: /' | head -n 20
		printf '# expected to match: %s\n' "$2"
	fi
}

unlike() { # unlike TEXT EXTENDED-REGEX DESCRIPTION
	if printf '%s\n' "$1" | grep -Eq -- "$2"; then
		ok 1 "$3"
		printf '%s\n' "$1" | sed 's/^/# got: /' | head -n 20
	else
		ok 0 "$3"
	fi
}

skip_all() { # skip_all REASON
	echo "1..0 # SKIP $1"
	exit 0
}

done_testing() {
	echo "1..$_tap_n"
	[ "$_tap_fail" -eq 0 ]
	exit $?
}

T=$(mktemp -d "${TMPDIR:-/tmp}/sluice-test.XXXXXX")
_sl_cleanup() {
	[ -n "${SL_PID:-}" ] && kill -9 "$SL_PID" 2>/dev/null
	rm -rf "$T"
}
trap _sl_cleanup EXIT

# Re-run the calling script in a private network namespace with only `lo`
# up, so nothing a test does can leave the machine (a stray DNS lookup
# fails at once).  Skips the whole script when namespaces are unavailable.
sl_netns() {
	[ "${SL_IN_NETNS:-}" = 1 ] && return 0
	if ! unshare -n true 2>/dev/null; then
		skip_all "cannot create a network namespace (need root or user namespaces)"
	fi
	SL_IN_NETNS=1 exec unshare -n sh -c 'ip link set lo up 2>/dev/null || ifconfig lo up; exec "$0" "$@"' "$0" "$@"
}

# wait_for SECONDS COMMAND...: poll every 0.05 s until COMMAND succeeds.
wait_for() {
	_w_end=$(( $(date +%s) + $1 ))
	shift
	while ! "$@" >/dev/null 2>&1; do
		[ "$(date +%s)" -ge "$_w_end" ] && return 1
		sleep 0.05
	done
	return 0
}

# sl_start ARGS...: start sluiced -F in $T (the state directory) in the
# background; its stderr goes to $T/stderr.  Sets SL_PID.
sl_start() {
	( cd "$T" && exec "$SLUICED" -F "$@" ) 2>"$T/stderr" >"$T/stdout" &
	SL_PID=$!
}

# sl_stop [SIGNAL]: stop it (default TERM) and wait up to 20 s; sets SL_RC.
sl_stop() {
	kill -"${1:-TERM}" "$SL_PID" 2>/dev/null
	_s_end=$(( $(date +%s) + 20 ))
	while kill -0 "$SL_PID" 2>/dev/null; do
		if [ "$(date +%s)" -ge "$_s_end" ]; then
			kill -9 "$SL_PID" 2>/dev/null
			break
		fi
		sleep 0.05
	done
	wait "$SL_PID" 2>/dev/null
	SL_RC=$?
	SL_PID=
}
