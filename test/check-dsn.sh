#!/bin/sh
# test/check-dsn.sh - DSNs of proto/dsn.c read by an independent MIME parser.
#
# Prints DSNs with test/dsn_print (headers, all, none, utf8, multi) and has
# Python's email package (policy=default) parse each: multipart/report with
# the right report-type, exactly the expected parts and types, no parser
# defects, the delivery-status fields of every recipient, and the original
# returned as headers only or whole.  Uses $top_builddir/test/dsn_print when
# the build made it, else compiles it into a temporary directory.  Prints
# TAP; skips when python3 (or a compiler for the fallback) is missing.
. "$(dirname "$0")/lib.sh"

command -v python3 >/dev/null 2>&1 || skip_all "python3 not found"

prog="$top_builddir/test/dsn_print"
if [ ! -x "$prog" ]; then
	prog="$T/dsn_print"
	cc=${CC:-cc}
	command -v "$cc" >/dev/null 2>&1 || skip_all "no dsn_print and no C compiler"
	[ -f "$top_builddir/config.h" ] || skip_all "no config.h in $top_builddir (run configure)"
	urcu_cflags=$(pkg-config --cflags liburcu-memb 2>/dev/null)
	urcu_libs=$(pkg-config --libs liburcu-memb liburcu-cds 2>/dev/null || echo "-lurcu-memb -lurcu-cds")
	# shellcheck disable=SC2086
	"$cc" -std=gnu11 -O1 -I"$top_builddir" -I"$top_srcdir" $urcu_cflags \
		"$top_srcdir/test/dsn_print.c" "$top_srcdir/proto/dsn.c" "$top_srcdir/engine/alloc.c" \
		"$top_srcdir/engine/buf.c" "$top_srcdir/engine/log.c" $urcu_libs -lpthread \
		-o "$prog" 2>"$T/cc.log" || {
		sed 's/^/# /' "$T/cc.log"
		skip_all "cannot build dsn_print"
	}
fi

cat >"$T/check.py" <<'EOF'
import sys
from email import message_from_bytes, policy

path, scenario = sys.argv[1], sys.argv[2]
raw = open(path, "rb").read()
problems = []

def need(cond, what):
    if not cond:
        problems.append(what)

for n, line in enumerate(raw.split(b"\r\n")[:-1]):
    need(len(line) <= 998, "line %d has %d octets" % (n + 1, len(line)))
    need(b"\n" not in line and b"\r" not in line, "bare CR or LF in line %d" % (n + 1))
need(raw.endswith(b"\r\n"), "no final CRLF")

msg = message_from_bytes(raw, policy=policy.default)
is_global = scenario == "utf8"
report = "global-delivery-status" if is_global else "delivery-status"
need(msg.get_content_type() == "multipart/report", "top type " + msg.get_content_type())
need(msg.get_param("report-type") == report, "report-type %s" % msg.get_param("report-type"))
need(msg["Auto-Submitted"] == "auto-replied", "Auto-Submitted")
need(msg["MIME-Version"] == "1.0", "MIME-Version")
need(msg["To"].addresses[0].addr_spec == "alice@example.org", "To")
need(msg["From"].addresses[0].addr_spec == "mailer-daemon@mta.example.com", "From")
need(msg["Date"].datetime is not None, "Date")
need(msg["Message-ID"] == "<6926A1B2-0000000000000F1B@mta.example.com>", "Message-ID")
need(not msg.defects, "message defects %r" % msg.defects)

parts = list(msg.iter_parts())
want = {
    "headers": ["text/plain", "message/delivery-status", "text/rfc822-headers"],
    "all": ["text/plain", "message/delivery-status", "message/rfc822"],
    "none": ["text/plain", "message/delivery-status"],
    "multi": ["text/plain", "message/delivery-status", "text/rfc822-headers"],
    "utf8": ["text/plain", "message/global-delivery-status", "message/global"],
}[scenario]
need([p.get_content_type() for p in parts] == want,
     "parts %r" % [p.get_content_type() for p in parts])
for p in parts:
    need(not p.defects, "part defects %r" % p.defects)

if len(parts) >= 2:
    text = parts[0].get_content()
    need("delivery failed" in text, "text part explains nothing")
    if is_global:
        # email parses every message/* body as a message: the per-message
        # block becomes its header, the recipient blocks its body.
        block = parts[1].get_payload(0)
        need(block["Reporting-MTA"] == "dns; mta.example.com", "global Reporting-MTA")
        body = raw.decode("utf-8", "replace")
        need("Final-Recipient: utf-8; \u7528\u6237@example.net\r\n" in body, "utf-8 address")
        need("Action: failed\r\nStatus: 5.1.1\r\n" in body, "global fields")
    else:
        blocks = parts[1].get_payload()
        rcpts = 3 if scenario == "multi" else 1
        need(len(blocks) == rcpts + 1, "%d delivery-status blocks" % len(blocks))
        need(blocks[0]["Reporting-MTA"] == "dns; mta.example.com", "Reporting-MTA")
        need(blocks[0]["Arrival-Date"] is not None, "Arrival-Date")
        for b in blocks[1:]:
            need(b["Final-Recipient"].startswith("rfc822; "), "Final-Recipient")
            need(b["Action"] in ("failed", "delayed"), "Action %s" % b["Action"])
            st = b["Status"].split(".")
            need(len(st) == 3 and st[0] in ("4", "5") and all(x.isdigit() for x in st),
                 "Status %s" % b["Status"])
        need(blocks[1]["Remote-MTA"] == "dns; mx1.example.net", "Remote-MTA")
        diag = " ".join(str(blocks[1]["Diagnostic-Code"]).split())
        need(diag.startswith("smtp; 550-5.1.1 The email account") and
             diag.endswith("NoSuchUser - gsmtp"), "Diagnostic-Code %s" % diag)
        if scenario == "multi":
            need(blocks[2]["Original-Recipient"] == "rfc822; Carol@example.net", "ORCPT")
            need(blocks[2]["Will-Retry-Until"] is not None, "Will-Retry-Until")
            need(blocks[3]["Diagnostic-Code"].startswith("X-Sluice; "), "local diagnostic")

if len(parts) == 3:
    if want[2] == "text/rfc822-headers":
        h = parts[2].get_content()
        need("Subject: hello" in h, "returned headers")
        need("Hi Bob" not in h, "body in a headers-only return")
    elif want[2] == "message/rfc822":
        inner = parts[2].get_payload(0)
        need(inner["Subject"] == "hello", "returned Subject")
        need("Gr\u00fc\u00dfe" in inner.get_content(), "returned 8-bit body")
        need(parts[2]["Content-Transfer-Encoding"] == "8bit", "8bit marked")
    else:
        inner = parts[2].get_payload(0)
        need(inner["Subject"] == "Gr\u00fc\u00dfe", "returned global Subject")
        need("Hallo" in inner.get_content(), "returned global body")

print("ok" if not problems else "; ".join(problems))
EOF

for s in headers all none multi utf8; do
	if "$prog" "$s" >"$T/$s.eml"; then
		out=$(python3 "$T/check.py" "$T/$s.eml" "$s" 2>&1)
	else
		out="dsn_print $s failed"
	fi
	is "$out" "ok" "$s: Python's email parser reads the DSN as intended"
done

done_testing
