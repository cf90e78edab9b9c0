#!/usr/bin/env python3
"""b0003-personality: every personality option of an ESMTP_Listener ACL entry
against the real daemon: idle_time, banner_hostname, static_banner,
received_hostname, max_receptions_per_connection,
max_recipients_per_connection, max_recipients_per_message, message_size,
Allow_Trailing_Whitespace_In_Commands, listener_sessions, service_sessions."""
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, like, status  # noqa: E402

t.netns()

ESC = 'ENHANCEDSTATUSCODES [ extension = ENHANCEDSTATUSCODES ]'
PORTS = {
    'idle': (2530, 'idle_time = 1'),
    'banner': (2531, 'banner_hostname = "banner.example"'),
    'static': (2532, 'banner_hostname = "banner.example" static_banner = "220 my.mail.server ESMTP"'),
    'rcvd_short': (2533, 'received_hostname = "r.example"'),
    'rcvd_long': (2534, 'received_hostname = "a-much-longer-received-hostname.example"'),
    'rcvd_default': (2535, ''),
    'receptions': (2536, 'max_receptions_per_connection = 2'),
    'rcpt_conn': (2537, 'max_recipients_per_connection = 3'),
    'rcpt_msg': (2538, 'max_recipients_per_message = 2'),
    'size': (2539, 'message_size = 1000'),
    'ws': (2540, 'Allow_Trailing_Whitespace_In_Commands = true'),
    'size_k': (2545, 'message_size = 2k'),
}
conf = 'Relay_Domains = ( "local.test" )\nESMTP_Listener = (\n'
for name, (port, pers) in PORTS.items():
    conf += '  127.0.0.1:%d [ 127.0.0.0/8 = ( %s personality [ %s ] ) ]\n' % (port, ESC, pers)
conf += ')\n'
d = t.Sluiced(conf).start()


def port(name):
    return PORTS[name][0]


def send(c, sender, rcpts, body=None):
    return t.send_message(c, sender, rcpts, body or (t.message('p') + b'.\r\n'), ehlo=False)


# ---------------------------------------------------------------- idle_time
other = t.Client(port('banner'))  # a listener without idle_time, idle meanwhile
other.ehlo()
c = t.Client(port('idle'))
status(c.ehlo(), '250', 'idle_time = 1: EHLO answered')
t0 = time.monotonic()
r = c.reply(timeout=t.DEADLINE)
waited = time.monotonic() - t0
status(r, '421 4.4.2', 'idle_time = 1: an idle session gets 421 4.4.2')
like(r and r.last, r'^421 4\.4\.2 %s ' % t.HOSTNAME, 'idle_time: the 421 names the host')
ok(0.5 <= waited < 10, 'idle_time = 1: after about one second', 'waited %.2f s' % waited)
ok(c.closed(), 'idle_time: the connection is closed after the 421')
c.close()
c = t.Client(port('idle'))
c.ehlo()
status(c.cmd('MAIL FROM:<a@local.test>'), '250 2.1.0', 'idle_time: MAIL')
t0 = time.monotonic()
r = c.reply(timeout=t.DEADLINE)
waited = time.monotonic() - t0
status(r, '421 4.4.2', 'idle_time = 1 applies inside a transaction too')
ok(0.5 <= waited < 10, 'idle_time inside a transaction: after about one second',
   'waited %.2f s' % waited)
ok(c.closed(), 'and the connection is closed')
c.close()
status(other.cmd('NOOP'), '250 2.0.0',
       'idle_time only applies where the ACL sets it: a session idle as long elsewhere lives')
other.close()

# ---------------------------------------------------------------- banner_hostname, static_banner
c = t.Client(port('banner'))
is_(c.banner.last, '220 banner.example ESMTP sluice', 'banner_hostname: in the 220 greeting')
r = c.ehlo()
is_(r.raw[0], '250-banner.example', 'banner_hostname: in the EHLO reply')
r = c.cmd('QUIT')
like(r.last, r'^221 2\.0\.0 banner\.example ', 'banner_hostname: in the 221 reply')
c.close()
c = t.Client(port('static'))
is_(c.banner.raw, ['220 my.mail.server ESMTP'], 'static_banner: the whole greeting line, as set')
status(c.ehlo(), '250', 'static_banner: EHLO still works')
c.close()
c = t.Client(port('rcvd_default'))
is_(c.banner.last, '220 %s ESMTP sluice' % t.HOSTNAME, 'without banner_hostname: Hostname')
c.close()

# ---------------------------------------------------------------- received_hostname
# Nothing is delivered yet, so the Received: header shows through the stored
# size: the same message through listeners that differ only in
# received_hostname differs in size by exactly the difference of the names.
msg = t.message('received')
sizes = {}
for name in ('rcvd_short', 'rcvd_long', 'rcvd_default'):
    s = t.smtp(port(name))
    s.ehlo()
    s.mail('a@local.test')
    s.rcpt('b@local.test')
    code, resp = s.data(msg)
    s.quit()
    lines = d.wait_r_lines(t.queue_id(resp))
    sizes[name] = int(lines[0][10]) if lines else -1
is_(sizes['rcvd_long'] - sizes['rcvd_short'],
    len('a-much-longer-received-hostname.example') - len('r.example'),
    'received_hostname: the Received: header grows with the name (size difference)')
is_(sizes['rcvd_default'] - sizes['rcvd_short'], len(t.HOSTNAME) - len('r.example'),
    'without received_hostname: the Received: header names Hostname (size difference)')

# ---------------------------------------------------------------- max_receptions_per_connection
c = t.Client(port('receptions'))
c.ehlo()
for i in (1, 2):
    rs = send(c, 'a@local.test', ['b@local.test'])
    status(rs[-1], '250 2.0.0', 'max_receptions_per_connection = 2: message %d accepted' % i)
r = c.cmd('MAIL FROM:<a@local.test>')
status(r, '421 4.7.0', 'max_receptions_per_connection = 2: a third MAIL gets 421 4.7.0')
ok(c.closed(), 'max_receptions_per_connection: and the session is closed')
c.close()
c = t.Client(port('receptions'))
c.ehlo()
rs = send(c, 'a@local.test', ['b@local.test'])
status(rs[-1], '250 2.0.0', 'max_receptions_per_connection counts per connection')
c.close()

# ---------------------------------------------------------------- max_recipients_per_connection
c = t.Client(port('rcpt_conn'))
c.ehlo()
rs = send(c, 'a@local.test', ['r1@local.test', 'r2@local.test'])
ok([r.status for r in rs[1:3]] == ['250 2.1.5'] * 2 and rs[-1].status == '250 2.0.0',
   'max_recipients_per_connection = 3: a message with 2 recipients', 'replies: %s' % rs)
status(c.cmd('MAIL FROM:<a@local.test>'), '250 2.1.0', 'second message: MAIL')
status(c.cmd('RCPT TO:<r3@local.test>'), '250 2.1.5', 'second message: the 3rd recipient')
r = c.cmd('RCPT TO:<r4@local.test>')
status(r, '421 4.7.0', 'max_recipients_per_connection = 3: the 4th RCPT gets 421 4.7.0')
ok(c.closed(), 'max_recipients_per_connection: and the session is closed')
c.close()

# ---------------------------------------------------------------- max_recipients_per_message
c = t.Client(port('rcpt_msg'))
c.ehlo()
status(c.cmd('MAIL FROM:<a@local.test>'), '250 2.1.0', 'max_recipients_per_message: MAIL')
status(c.cmd('RCPT TO:<m1@local.test>'), '250 2.1.5', 'max_recipients_per_message = 2: RCPT 1')
status(c.cmd('RCPT TO:<m2@local.test>'), '250 2.1.5', 'max_recipients_per_message = 2: RCPT 2')
status(c.cmd('RCPT TO:<m3@local.test>'), '452 4.5.3',
       'max_recipients_per_message = 2: RCPT 3 gets 452 4.5.3 (RFC 5321 4.5.3.1.10)')
status(c.cmd('RCPT TO:<m4@local.test>'), '452 4.5.3', 'and so does RCPT 4')
status(c.cmd('DATA'), '354', 'the session goes on: DATA 354')
c.send(t.message('rcpt per message') + b'.\r\n')
r = c.reply()
status(r, '250 2.0.0', 'the message is accepted for the first two recipients')
lines = d.wait_r_lines(t.queue_id(r.text), 2)
is_(sorted(f[5] for f in lines), ['m1', 'm2'], 'its R lines name the two accepted recipients')
rs = send(c, 'a@local.test', ['m5@local.test', 'm6@local.test'])
ok([x.status for x in rs[1:]] == ['250 2.1.5', '250 2.1.5', '354', '250 2.0.0'],
   'max_recipients_per_message counts per message: the next one takes 2 again',
   'replies: %s' % rs)
c.close()

# ---------------------------------------------------------------- message_size
c = t.Client(port('size'))
r = c.ehlo()
ok('SIZE 1000' in r.lines, 'message_size = 1000: EHLO advertises SIZE 1000', 'EHLO: %s' % r)
status(c.cmd('MAIL FROM:<a@local.test> SIZE=1001'), '552 5.3.4',
       'message_size: MAIL SIZE=1001 gets 552 5.3.4')
status(c.cmd('MAIL FROM:<a@local.test> SIZE=1000'), '250 2.1.0', 'message_size: MAIL SIZE=1000 250')
status(c.cmd('RCPT TO:<b@local.test>'), '250 2.1.5', 'message_size: RCPT')
status(c.cmd('DATA'), '354', 'message_size: DATA 354')
big = t.message('big', body='x' * 70 + '\r\n') + (('y' * 78 + '\r\n') * 20).encode()
n_before = len(d.r_lines())
c.send(big + b'.\r\n')
r = c.reply()
status(r, '552 5.3.4', 'message_size: a %d-octet message gets 552 5.3.4 at its end' % len(big))
rs = send(c, 'a@local.test', ['b@local.test'])
status(rs[-1], '250 2.0.0', 'message_size: the session goes on; a small message is accepted')
d.wait_r_lines(t.queue_id(rs[-1].text))
is_(len(d.r_lines()), n_before + 1, 'the refused message has no R line (only the small one has)')
c.close()

c = t.Client(port('size_k'))
r = c.ehlo()
ok('SIZE 2048' in r.lines, 'message_size = 2k: EHLO advertises SIZE 2048', 'EHLO: %s' % r)
status(c.cmd('MAIL FROM:<a@local.test> SIZE=2049'), '552 5.3.4', 'message_size = 2k: SIZE=2049 552')
c.close()

# ---------------------------------------------------------------- Allow_Trailing_Whitespace_In_Commands
c = t.Client(port('ws'))
c.ehlo()
status(c.cmd('MAIL FROM:< ws.sender@local.test >'), '250 2.1.0',
       'Allow_Trailing_Whitespace_In_Commands: MAIL FROM:< a@b > accepted')
status(c.cmd('RCPT TO:< ws.rcpt@local.test >  '), '250 2.1.5',
       'Allow_Trailing_Whitespace_In_Commands: RCPT TO:< a@b > with trailing spaces accepted')
status(c.cmd('DATA \t'), '354', 'Allow_Trailing_Whitespace_In_Commands: "DATA <tab>" accepted')
c.send(t.message('ws') + b'.\r\n')
r = c.reply()
status(r, '250 2.0.0', 'the message is accepted')
lines = d.wait_r_lines(t.queue_id(r.text))
ok(lines and lines[0][5:9] == ['ws.rcpt', 'local.test', 'ws.sender', 'local.test'],
   'the envelope is logged without the spaces', 'R lines: %s' % lines)
status(c.cmd('RSET  '), '250 2.0.0', 'Allow_Trailing_Whitespace_In_Commands: "RSET  " accepted')
c.close()
c = t.Client(port('rcvd_default'))
c.ehlo()
status(c.cmd('MAIL FROM:< a@local.test >'), '501 5.1.7',
       'without Allow_Trailing_Whitespace_In_Commands: MAIL FROM:< a@b > gets 501 5.1.7')
status(c.cmd('RSET '), '501 5.5.4', 'without it: "RSET " gets 501 5.5.4')
status(c.cmd('MAIL FROM: <a@local.test>'), '250 2.1.0',
       'one space after the colon is accepted either way')
status(c.cmd('RCPT TO:<b@local.test> '), '501 5.5.4',
       'without it: a trailing space after RCPT gets 501 5.5.4')
c.close()
d.stop()

# ---------------------------------------------------------------- listener_sessions
LA, LB = 2541, 2542
d2 = t.Sluiced('ESMTP_Listener = (\n'
               '  127.0.0.1:%d [ 0.0.0.0/0 = ( personality [ listener_sessions = 2 ] ) ]\n'
               '  127.0.0.1:%d\n)\n' % (LA, LB), name='listener-sessions').start()
a1, a2 = t.Client(LA), t.Client(LA)
ok(a1.banner.code == 220 and a2.banner.code == 220, 'listener_sessions = 2: two sessions get 220')
a3 = t.Client(LA)
status(a3.banner, '421 4.7.0', 'listener_sessions = 2: the third connection gets 421 4.7.0')
ok(a3.closed(), 'listener_sessions: and is closed')
b1 = t.Client(LB)
status(b1.banner, '220', 'listener_sessions counts per listener: another listener still answers')
a3.close()


def free_session(port=LA):
    """A session on `port` that got 220 (None if it was refused)."""
    x = t.Client(port)
    if x.banner is not None and x.banner.code == 220:
        return x
    x.close()
    return None


status(a1.cmd('QUIT'), '221', 'one session quits')
a1.close()
# The 221 may reach the client before the server has counted the session out.
a4 = t.wait_for(free_session)
ok(a4 is not None, 'listener_sessions: a place is free again after a session ended')
like(d2.wait_log('rejectlog', r'P="connect" E=421 M=accept .*listener_sessions'),
     r'R="127\.0\.0\.1:\d+" L="127\.0\.0\.1:%d"' % LA,
     'listener_sessions: the refusal is in the rejectlog')
for x in (a2, a4, b1):
    if x is not None:
        x.close()


# Sessions the client dropped without QUIT must give their places back too.
n1 = t.wait_for(free_session)
n2 = t.wait_for(free_session)
ok(n1 and n2, 'listener_sessions: both places are free again after clients hung up without QUIT')
for x in (n1, n2):
    if x:
        x.close()
d2.stop()

# ---------------------------------------------------------------- service_sessions
SA, SB = 2543, 2544
pers = '[ 0.0.0.0/0 = ( personality [ service_sessions = 2 ] ) ]'
d3 = t.Sluiced('ESMTP_Listener = (\n  127.0.0.1:%d %s\n  127.0.0.1:%d %s\n)\n'
               % (SA, pers, SB, pers), name='service-sessions').start()
s1, s2 = t.Client(SA), t.Client(SB)
ok(s1.banner.code == 220 and s2.banner.code == 220,
   'service_sessions = 2: one session on each of two listeners')
s3 = t.Client(SA)
status(s3.banner, '421 4.7.0', 'service_sessions = 2: a third on either listener gets 421 4.7.0')
ok(s3.closed(), 'service_sessions: and is closed')
s3.close()
s4 = t.Client(SB)
status(s4.banner, '421 4.7.0', 'service_sessions = 2: the other listener refuses too')
s4.close()
like(d3.wait_log('rejectlog', r'P="connect" E=421 M=accept .*service_sessions'), 'service_sessions',
     'service_sessions: the refusal is in the rejectlog')
status(s1.cmd('QUIT'), '221', 'service_sessions: one session quits')
s1.close()
# As above: the 221 may reach the client before the server has counted the session out.
s5 = t.wait_for(lambda: free_session(SB))
ok(s5 is not None, 'service_sessions: a place is free again after a session ended')
for x in (s2, s5):
    if x:
        x.close()
d3.stop()
t.done()
