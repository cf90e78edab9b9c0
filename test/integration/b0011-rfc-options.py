#!/usr/bin/env python3
"""b0011-rfc-options: the RFC compliance options against the real daemon:
Require_EHLO, allow_null_envelope_sender (global and personality), the
RFC2822 block's Lone_LF_in_Body and Lone_LF_in_Headers (pedantic, fix,
ignore), Trace_Headers, MessageID_Header and Date_Header.

Nothing is delivered yet, so what sluice stores is seen through the size
on the mainlog R line; Trace_Headers is off where exact sizes matter."""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, like, status  # noqa: E402

t.netns()

ACL = '[ 0.0.0.0/0 = ( ENHANCEDSTATUSCODES [ extension = ENHANCEDSTATUSCODES ] %s ) ]'


def daemon(name, port, extra, port2=None, pers2=''):
    conf = 'Relay_Domains = ( "local.test" )\n%s\nESMTP_Listener = (\n  127.0.0.1:%d %s\n' % (
        extra, port, ACL % '')
    if port2:
        conf += '  127.0.0.1:%d %s\n' % (port2, ACL % ('personality [ %s ]' % pers2))
    return t.Sluiced(conf + ')\n', name=name).start()


# defaults, but without Received: so that sizes are exact
PA = 2550
A = daemon('defaults', PA, 'RFC2822 { Trace_Headers = false }')
# the strict/fixing variant
PB, PB2 = 2551, 2552
B = daemon('strict', PB, 'Require_EHLO = true\nallow_null_envelope_sender = false\n'
           'RFC2822 { Trace_Headers = false Lone_LF_in_Body = fix Lone_LF_in_Headers = fix\n'
           '          Date_Header = pedantic MessageID_Header = ignore }',
           PB2, 'allow_null_envelope_sender = true')
# the permissive variant
PC, PC2 = 2553, 2554
C = daemon('permissive', PC, 'RFC2822 { Trace_Headers = false Lone_LF_in_Body = ignore '
           'Date_Header = ignore }', PC2, 'allow_null_envelope_sender = false')
# trace headers on (the default)
PD = 2555
D = daemon('trace', PD, '')

HEAD = (b'From: <a@local.test>\r\nTo: <b@local.test>\r\nSubject: rfc\r\n'
        b'Date: Thu, 26 Nov 2026 12:00:00 +0000\r\nMessage-ID: <rfc@client.test>\r\n')


def transact(port, data, sender='a@local.test', helo=True):
    """One message with a raw client; returns (final reply, [R lines])."""
    with t.Client(port) as c:
        rs = t.send_message(c, sender, ['b@local.test'], data, ehlo=helo)
        r = rs[-1]
    qid = t.queue_id(r.text) if r is not None and r.code == 250 else None
    d = {PA: A, PB: B, PB2: B, PC: C, PC2: C, PD: D}[port]
    return r, (d.wait_r_lines(qid) if qid else [])


def size_of(lines):
    return int(lines[0][10]) if lines else None


# ---------------------------------------------------------------- Require_EHLO
with t.Client(PA) as c:
    status(c.cmd('MAIL FROM:<a@local.test>'), '250 2.1.0',
           'Require_EHLO false (default): MAIL without HELO is accepted')
with t.Client(PB) as c:
    status(c.cmd('MAIL FROM:<a@local.test>'), '503 5.5.1',
           'Require_EHLO = true: MAIL before HELO/EHLO gets 503 5.5.1 (bad sequence)')
    status(c.cmd('HELO client.test'), '250', 'Require_EHLO: HELO')
    status(c.cmd('MAIL FROM:<a@local.test>'), '250 2.1.0', 'Require_EHLO: MAIL after HELO is fine')

# ---------------------------------------------------------------- allow_null_envelope_sender
with t.Client(PA) as c:
    c.ehlo()
    status(c.cmd('MAIL FROM:<>'), '250 2.1.0', 'allow_null_envelope_sender default true: MAIL FROM:<> 250')
r, lines = transact(PA, HEAD + b'\r\nbounce\r\n.\r\n', sender='')
status(r, '250 2.0.0', 'a message from the null sender is accepted')
ok(lines and lines[0][7:9] == ['', ''], 'its R line has empty sender fields', 'R: %s' % lines)
with t.Client(PB) as c:
    c.ehlo()
    status(c.cmd('MAIL FROM:<>'), '553 5.1.7', 'allow_null_envelope_sender = false: 553 5.1.7')
with t.Client(PB2) as c:
    c.ehlo()
    status(c.cmd('MAIL FROM:<>'), '250 2.1.0',
           'allow_null_envelope_sender = true in a personality overrides the global false')
with t.Client(PC2) as c:
    c.ehlo()
    status(c.cmd('MAIL FROM:<>'), '553 5.1.7',
           'allow_null_envelope_sender = false in a personality refuses MAIL FROM:<>')
with t.Client(PC) as c:
    c.ehlo()
    status(c.cmd('MAIL FROM:<>'), '250 2.1.0', 'and only for that ACL entry\'s clients')

# ---------------------------------------------------------------- Lone_LF_in_Body / Headers
body_lf = HEAD + b'\r\nline one\nline two\r\n.\r\n'
body_cr = HEAD + b'\r\nline one\rline two\r\n.\r\n'
head_lf = HEAD + b'X-Bare: yes\nX-Next: no\r\n\r\nbody\r\n.\r\n'
good = HEAD + b'\r\nline one\r\nline two\r\n.\r\n'
stored_good = len(good) - 3   # the stored message ends before ".\r\n"

r, lines = transact(PA, good)
is_(size_of(lines), stored_good, 'a clean message is stored as sent (Trace_Headers off)')
for what, data in (('bare LF', body_lf), ('bare CR', body_cr)):
    r, _ = transact(PA, data)
    status(r, '550 5.6.0', 'Lone_LF_in_Body pedantic (default): a %s in the body gets 550 5.6.0' % what)
    like(r and r.text, 'bare CR or LF', 'and the reply names the reason')
r, _ = transact(PA, head_lf)
status(r, '550 5.6.0', 'Lone_LF_in_Headers pedantic (default): a bare LF in the header gets 550 5.6.0')

r, lines = transact(PB, body_lf)
status(r, '250 2.0.0', 'Lone_LF_in_Body = fix: a bare LF in the body is accepted')
is_(size_of(lines), len(body_lf) - 3 + 1, 'Lone_LF_in_Body = fix: the LF became CRLF (one octet more)')
r, lines = transact(PB, body_cr)
status(r, '250 2.0.0', 'Lone_LF_in_Body = fix: a bare CR in the body is accepted')
is_(size_of(lines), len(body_cr) - 3 + 1, 'Lone_LF_in_Body = fix: the CR became CRLF (one octet more)')
r, lines = transact(PB, head_lf)
status(r, '250 2.0.0', 'Lone_LF_in_Headers = fix: a bare LF in the header is accepted')
is_(size_of(lines), len(head_lf) - 3 + 1, 'Lone_LF_in_Headers = fix: the LF became CRLF')

r, lines = transact(PC, body_lf)
status(r, '250 2.0.0', 'Lone_LF_in_Body = ignore: a bare LF in the body is accepted')
is_(size_of(lines), len(body_lf) - 3, 'Lone_LF_in_Body = ignore: the message is stored unchanged')
r, lines = transact(PC, body_cr)
status(r, '250 2.0.0', 'Lone_LF_in_Body = ignore: a bare CR in the body is accepted')
is_(size_of(lines), len(body_cr) - 3, 'Lone_LF_in_Body = ignore: stored unchanged')
r, _ = transact(PC, head_lf)
status(r, '550 5.6.0', 'Lone_LF_in_Body = ignore leaves Lone_LF_in_Headers pedantic: 550 5.6.0')

# ---------------------------------------------------------------- Date_Header, MessageID_Header
no_date = HEAD.replace(b'Date: Thu, 26 Nov 2026 12:00:00 +0000\r\n', b'') + b'\r\nx\r\n.\r\n'
no_msgid = HEAD.replace(b'Message-ID: <rfc@client.test>\r\n', b'') + b'\r\nx\r\n.\r\n'
r, lines = transact(PA, no_date)
status(r, '250 2.0.0', 'Date_Header ifneeded (default): a message without Date: is accepted')
grew = size_of(lines) - (len(no_date) - 3) if lines else None
ok(grew is not None and len('Date: \r\n') + 29 <= grew <= len('Date: \r\n') + 31,
   'Date_Header ifneeded: a Date: header was added (size grew by %s)' % grew)
r, lines = transact(PA, no_msgid)
status(r, '250 2.0.0', 'MessageID_Header ifneeded (default): a message without Message-ID: is accepted')
grew = size_of(lines) - (len(no_msgid) - 3) if lines else None
ok(grew is not None and grew > len('Message-ID: <@>\r\n'),
   'MessageID_Header ifneeded: a Message-ID: header was added (size grew by %s)' % grew)
r, lines = transact(PB, no_date)
status(r, '550 5.6.0', 'Date_Header = pedantic: a message without Date: gets 550 5.6.0')
like(r and r.text, 'Date', 'and the reply says why')
r, lines = transact(PB, HEAD.replace(b'Date:', b'date  :') + b'\r\nx\r\n.\r\n')
status(r, '250 2.0.0', 'Date_Header = pedantic: "date  :" (any case, obsolete space) counts')
r, lines = transact(PB, no_msgid)
status(r, '250 2.0.0', 'MessageID_Header = ignore: accepted without Message-ID:')
is_(size_of(lines), len(no_msgid) - 3, 'MessageID_Header = ignore: nothing added')
r, lines = transact(PC, no_date)
status(r, '250 2.0.0', 'Date_Header = ignore: accepted without Date:')
is_(size_of(lines), len(no_date) - 3, 'Date_Header = ignore: nothing added')

# ---------------------------------------------------------------- Trace_Headers
r, lines = transact(PD, good)
grew = size_of(lines) - stored_good if lines else None
ok(grew is not None and grew > len('Received: from client.test ([127.0.0.1])') + len(t.HOSTNAME),
   'Trace_Headers true (default): a Received: header is added (size grew by %s)' % grew)
# No Return-Path: is added (RFC 5321 4.4: that is for the final delivery):
# a message with one and a message without grow by the same Received: line.
rp = b'Return-Path: <a@local.test>\r\n'
r1, l1 = transact(PD, rp + good)
r2, l2 = transact(PD, good)
g_with = size_of(l1) - (len(rp + good) - 3) if l1 else None
g_without = size_of(l2) - stored_good if l2 else None
ok(g_with is not None and g_without is not None and abs(g_without - g_with) <= 2,
   'Trace_Headers: no Return-Path: is added by a relay '
   '(growth %s without it, %s with it)' % (g_without, g_with))

for d in (A, B, C, D):
    d.stop()
t.done()
