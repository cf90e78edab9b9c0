#!/usr/bin/env python3
"""b0002-basic: the SMTP conversation with real clients (smtplib, swaks, a raw
socket): banner, EHLO keywords, HELO, a queued message and its mainlog R
lines, RSET/NOOP/VRFY/HELP/QUIT, unknown commands, bad sequence, syntax
errors, ESMTP parameters, and the Received: header (seen through the size
the mainlog records, since nothing is delivered yet)."""
import os
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, like, unlike, status  # noqa: E402

t.netns()

P_ESC, P_PLAIN, P_EXT = 2525, 2526, 2527
conf = '''
Relay_Domains = ( "local.test" )
ESMTP_Listener = (
  127.0.0.1:%d [
    127.0.0.0/8 = ( ENHANCEDSTATUSCODES [ extension = ENHANCEDSTATUSCODES ] )
  ]
  127.0.0.1:%d
  127.0.0.1:%d [
    0.0.0.0/0 = ( ENHANCEDSTATUSCODES [ extension = ENHANCEDSTATUSCODES ]
                  XCLIENT [ extension = XCLIENT ]
                  XREMOTEIP [ extension = XREMOTEIP ]
                  XDUMPCONTEXT [ extension = XDUMPCONTEXT ] )
  ]
)
''' % (P_ESC, P_PLAIN, P_EXT)
d = t.Sluiced(conf).start()

# ---------------------------------------------------------------- banner, EHLO, HELO
c = t.Client(P_ESC)
is_(c.banner.last, '220 %s ESMTP sluice' % t.HOSTNAME, 'banner: 220 <Hostname> ESMTP sluice')
r = c.ehlo()
is_(r.code, 250, 'EHLO: 250')
is_(r.raw[0], '250-%s' % t.HOSTNAME, 'EHLO: first line names the host')
kw = [ln.split(' ')[0] for ln in r.lines[1:]]
for k in ('PIPELINING', 'SIZE', '8BITMIME', 'SMTPUTF8', 'CHUNKING', 'ENHANCEDSTATUSCODES'):
    ok(k in kw, 'EHLO advertises %s' % k, 'keywords: %s' % kw)
for k in ('XCLIENT', 'XREMOTEIP', 'XDUMPCONTEXT', 'STARTTLS', 'AUTH', 'DSN'):
    ok(k not in kw, 'EHLO does not advertise %s when the ACL does not enable it' % k,
       'keywords: %s' % kw)
is_(r.lines[1:].count('SIZE'), 1, 'EHLO: plain SIZE without message_size')
unlike(r.text, r'\d\.\d\.\d', 'EHLO reply carries no enhanced code (RFC 2034 section 3)')
r = c.cmd('HELO client.test')
is_(r.last, '250 %s' % t.HOSTNAME, 'HELO: 250 <host>, no enhanced code')
status(c.cmd('NOOP'), '250 2.0.0', 'NOOP: 250 2.0.0')
status(c.cmd('NOOP anything at all'), '250 2.0.0', 'NOOP with an argument: 250 2.0.0')
status(c.cmd('RSET'), '250 2.0.0', 'RSET: 250 2.0.0')
status(c.cmd('VRFY postmaster'), '252 2.5.2', 'VRFY: 252 2.5.2')
status(c.cmd('VRFY'), '501 5.5.4', 'VRFY without an argument: 501 5.5.4')
r = c.cmd('HELP')
status(r, '214 2.0.0', 'HELP: 214 2.0.0')
status(c.cmd('EXPN staff'), '502 5.5.1', 'EXPN: 502 5.5.1 (not implemented)')
status(c.cmd('FROB'), '500 5.5.1', 'unknown command: 500 5.5.1')
status(c.cmd(''), '500 5.5.1', 'empty command line: 500 5.5.1')
status(c.cmd('noop'), '250 2.0.0', 'verbs are case-insensitive')

# ---------------------------------------------------------------- sequence
status(c.cmd('RCPT TO:<a@local.test>'), '503 5.5.1', 'RCPT before MAIL: 503 5.5.1')
status(c.cmd('DATA'), '503 5.5.1', 'DATA before MAIL: 503 5.5.1')
status(c.cmd('BDAT 1 LAST'), '503 5.5.1', 'BDAT before MAIL: 503 5.5.1')
c.send('x')  # the octet of that refused BDAT chunk, read and discarded
status(c.cmd('MAIL FROM:<a@local.test>'), '250 2.1.0', 'MAIL: 250 2.1.0')
status(c.cmd('MAIL FROM:<a@local.test>'), '503 5.5.1', 'nested MAIL: 503 5.5.1')
status(c.cmd('DATA'), '503 5.5.1', 'DATA without RCPT: 503 5.5.1')
status(c.cmd('RCPT TO:<x@elsewhere.test>'), '550 5.7.1', 'RCPT to a foreign domain: 550 5.7.1')
status(c.cmd('DATA'), '554 5.5.1', 'DATA after every RCPT was refused: 554 5.5.1')
status(c.cmd('RSET'), '250 2.0.0', 'RSET ends the transaction')
status(c.cmd('RCPT TO:<a@local.test>'), '503 5.5.1', 'RCPT after RSET: 503 5.5.1')
c.cmd('MAIL FROM:<a@local.test>')
c.cmd('RCPT TO:<a@local.test>')
status(c.ehlo(), '250', 'EHLO inside a transaction: 250')
status(c.cmd('DATA'), '503 5.5.1', 'EHLO ended the transaction: DATA gets 503 5.5.1')

c.close()

# ---------------------------------------------------------------- syntax
# (a new session: the hard error limit is 20 refused commands per session)
c = t.Client(P_ESC)
c.ehlo()
status(c.cmd('HELO'), '501 5.5.4', 'HELO without a domain: 501 5.5.4')
status(c.cmd('EHLO'), '501 5.5.4', 'EHLO without a domain: 501 5.5.4')
status(c.cmd('MAIL'), '501 5.5.4', 'MAIL without FROM: 501 5.5.4')
status(c.cmd('MAIL TO:<a@local.test>'), '501 5.5.4', 'MAIL TO: 501 5.5.4')
status(c.cmd('MAIL FROM:a@local.test'), '501 5.1.7', 'MAIL without angle brackets: 501 5.1.7')
status(c.cmd('MAIL FROM:<a@@local.test>'), '501 5.1.7', 'MAIL with a bad address: 501 5.1.7')
status(c.cmd('MAIL FROM:<%s@local.test>' % ('l' * 65)), '501 5.1.7',
       'MAIL with a 65-octet local part: 501 5.1.7')
status(c.cmd('MAIL FROM:<a@local.test> FOO=BAR'), '555 5.5.4',
       'MAIL with an unknown parameter: 555 5.5.4')
status(c.cmd('MAIL FROM:<a@local.test> BODY=BINARYMIME'), '555 5.5.4',
       'MAIL BODY=BINARYMIME (not offered): 555 5.5.4')
status(c.cmd('MAIL FROM:<a@local.test> SIZE=abc'), '501 5.5.4', 'MAIL SIZE=abc: 501 5.5.4')
status(c.cmd('MAIL FROM:<a@local.test> BODY=9BIT'), '501 5.5.4', 'MAIL BODY=9BIT: 501 5.5.4')
status(c.cmd('MAIL FROM:<j\u00f6rg@local.test>'), '553 5.6.7',
       'non-ASCII sender without SMTPUTF8: 553 5.6.7')
status(c.cmd('RSET x'), '501 5.5.4', 'RSET with an argument: 501 5.5.4')
status(c.cmd('QUIT now'), '501 5.5.4', 'QUIT with an argument: 501 5.5.4')
status(c.cmd('MAIL FROM:<a@local.test> SIZE=1000 BODY=8BITMIME'), '250 2.1.0',
       'MAIL with SIZE= and BODY=8BITMIME: 250 2.1.0')
status(c.cmd('RCPT TO:<a@local.test>'), '250 2.1.5', 'RCPT: 250 2.1.5')
status(c.cmd('RCPT TO:<>'), '501 5.1.3', 'RCPT TO:<>: 501 5.1.3')
status(c.cmd('RCPT TO:<b@local.test> NOTIFY=NEVER'), '555 5.5.4',
       'RCPT with NOTIFY (DSN not offered): 555 5.5.4')
status(c.cmd('RCPT TO:<Postmaster>'), '250 2.1.5', 'RCPT TO:<Postmaster> without a domain: 250')
status(c.cmd('RSET'), '250 2.0.0', 'RSET')
status(c.cmd('MAIL FROM:<j\u00f6rg@local.test> SMTPUTF8'), '250 2.1.0',
       'non-ASCII sender with SMTPUTF8: 250 2.1.0')
status(c.cmd('RCPT TO:<m\u00fcller@local.test>'), '250 2.1.5',
       'non-ASCII recipient in an SMTPUTF8 transaction: 250 2.1.5')
status(c.cmd('RSET'), '250 2.0.0', 'RSET')
r = c.cmd('QUIT')
status(r, '221 2.0.0', 'QUIT: 221 2.0.0')
like(r.last, t.HOSTNAME, 'QUIT reply names the host')
ok(c.closed(), 'the server closes after 221')
c.close()

# ---------------------------------------------------------------- without ENHANCEDSTATUSCODES
c = t.Client(P_PLAIN)
r = c.ehlo()
ok('ENHANCEDSTATUSCODES' not in r.text, 'no ENHANCEDSTATUSCODES keyword when the ACL does not set it')
r = c.cmd('NOOP')
is_(r.last, '250 Ok', 'without ENHANCEDSTATUSCODES: "250 Ok", no enhanced code')
status(c.cmd('FROB'), '500', 'without ENHANCEDSTATUSCODES: unknown command is a bare 500')
status(c.cmd('XCLIENT ADDR=10.0.0.1'), '500', 'XCLIENT is an unknown command where not enabled')
status(c.cmd('XREMOTEIP 10.0.0.1'), '500', 'XREMOTEIP is an unknown command where not enabled')
status(c.cmd('XDUMPCONTEXT'), '500', 'XDUMPCONTEXT is an unknown command where not enabled')
status(c.cmd('MAIL FROM:<a@local.test>'), '250', 'MAIL: 250 without an enhanced code')
c.close()

c = t.Client(P_EXT)
r = c.ehlo()
kw = [ln.split(' ')[0] for ln in r.lines[1:]]
for k in ('ENHANCEDSTATUSCODES', 'XCLIENT', 'XREMOTEIP', 'XDUMPCONTEXT'):
    ok(k in kw, 'EHLO advertises %s where the ACL enables it' % k, 'keywords: %s' % kw)
c.close()

# ---------------------------------------------------------------- a message with smtplib
msg = t.message('basic one')
t0 = int(time.time())
s = t.smtp(P_ESC)
code, _ = s.ehlo()
is_(code, 250, 'smtplib: EHLO 250')
ok(s.has_extn('pipelining') and s.has_extn('chunking'), 'smtplib sees PIPELINING and CHUNKING')
code, resp = s.mail('sender.name@local.test')
is_((code, resp), (250, b'2.1.0 Ok'), 'smtplib: MAIL 250 2.1.0')
rcpts = ['first@local.test', 'second@local.test', 'third@local.test']
for a in rcpts:
    code, resp = s.rcpt(a)
    is_(code, 250, 'smtplib: RCPT %s 250' % a)
code, resp = s.data(msg)
t1 = int(time.time())
resp = resp.decode()
is_(code, 250, 'smtplib: end of data 250')
like(resp, r'^2\.0\.0 Ok: queued as %s$' % t.QID_RE, 'the reply is "250 2.0.0 Ok: queued as <id>"')
qid = t.queue_id(resp)
code, _ = s.quit()
is_(code, 221, 'smtplib: QUIT 221')

lines = d.wait_r_lines(qid, 3)
is_(len(lines), 3, 'one mainlog R line per recipient')
is_(sorted('%s@%s' % (f[5], f[6]) for f in lines), sorted(rcpts),
    'the R lines name each recipient once')
for f in lines:
    who = f[5]
    is_(len(f), 14, '%s: the R line has 14 fields' % who)
    if len(f) != 14:
        continue
    ok(f[0].isdigit() and t0 <= int(f[0]) <= t1, '%s: field 0 is the reception time' % who,
       'got %s, expected %d..%d' % (f[0], t0, t1))
    is_(f[1], qid, '%s: field 1 is the queued-as id' % who)
    is_(f[2], qid, '%s: field 2 (batch id) is the message id' % who)
    like(f[3], '^%s$' % t.CONNID_RE, '%s: field 3 is the connection id' % who)
    is_(f[4], 'R', '%s: field 4 is R' % who)
    is_(f[6], 'local.test', '%s: field 6 is the recipient domain' % who)
    is_((f[7], f[8]), ('sender.name', 'local.test'), '%s: fields 7, 8 are the sender' % who)
    is_(f[9], '127.0.0.1', '%s: field 9 is the peer address' % who)
    ok(f[10].isdigit() and int(f[10]) > len(msg), '%s: field 10 is the size, with the '
       'Received: header added' % who, 'size %s, message %d octets' % (f[10], len(msg)))
    is_(f[11:], ['esmtp', 'default', 'default'], '%s: protocol, binding group, binding' % who)
is_(len({f[3] for f in lines}), 1, 'all R lines carry the same connection id')

# An empty message is a message too.
with t.Client(P_ESC) as c:
    rs = t.send_message(c, 'a@local.test', ['b@local.test'], b'.\r\n')
status(rs[-1], '250 2.0.0', 'an empty message (DATA, then the dot at once) is queued')

# A second message on the same connection gets another id, same connection id.
s = t.smtp(P_ESC)
s.ehlo()
qids = []
for i in range(2):
    s.mail('a@local.test')
    s.rcpt('b@local.test')
    code, resp = s.data(t.message('again %d' % i))
    qids.append(t.queue_id(resp))
s.quit()
ok(qids[0] and qids[1] and qids[0] != qids[1] and qid not in qids,
   'every message gets its own queue id', 'ids: %s, earlier %s' % (qids, qid))
l0, l1 = d.wait_r_lines(qids[0]), d.wait_r_lines(qids[1])
ok(l0 and l1 and l0[0][3] == l1[0][3] and l0[0][3] != lines[0][3],
   'two messages of one session share its connection id, another session has another')

# ---------------------------------------------------------------- swaks
swaks = subprocess.run(['swaks', '--server', '127.0.0.1:%d' % P_ESC, '--helo', 'swaks.test',
                        '--from', 'swaks@local.test', '--to', 'rcpt@local.test',
                        '--timeout', '%d' % t.DEADLINE, '--header', 'Subject: swaks'],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=t.DEADLINE * 2)
out = swaks.stdout.decode('utf-8', 'replace')
is_(swaks.returncode, 0, 'swaks: exits 0')
like(out, r'<-  220 %s ESMTP sluice' % t.HOSTNAME, 'swaks sees the banner')
like(out, r'<-  250 2\.1\.0 Ok', 'swaks: MAIL 250 2.1.0')
like(out, r'<-  250 2\.1\.5 Ok', 'swaks: RCPT 250 2.1.5')
like(out, r'<-  354 ', 'swaks: DATA 354')
like(out, r'<-  250 2\.0\.0 Ok: queued as %s' % t.QID_RE, 'swaks: 250 2.0.0 queued as <id>')
like(out, r'<-  221 2\.0\.0 ', 'swaks: QUIT 221 2.0.0')
sq = t.queue_id(out)
sl = d.wait_r_lines(sq)
ok(sl and sl[0][5:9] == ['rcpt', 'local.test', 'swaks', 'local.test'],
   'swaks message: its R line names its envelope', 'R lines: %s' % sl)

# swaks with a refused recipient
swaks = subprocess.run(['swaks', '--server', '127.0.0.1:%d' % P_ESC, '--helo', 'swaks.test',
                        '--from', 'swaks@local.test', '--to', 'rcpt@elsewhere.test',
                        '--timeout', '%d' % t.DEADLINE],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=t.DEADLINE * 2)
out = swaks.stdout.decode('utf-8', 'replace')
ok(swaks.returncode != 0, 'swaks: exits non-zero when its recipient is refused')
like(out, r'<\*\* 550 5\.7\.1 Relaying denied', 'swaks sees 550 5.7.1 Relaying denied')

# ---------------------------------------------------------------- Received: header
# Nothing is delivered yet, so the header is seen through the stored size:
# the same message is bigger by at least "Received: ... <hostname>".
d2 = t.Sluiced('Relay_Domains = ( "local.test" )\n' + t.listener('127.0.0.1:2528') +
               'RFC2822 { Trace_Headers = false }\n', name='notrace').start()
sizes = {}
for name, daemon, port in (('on', d, P_ESC), ('off', d2, 2528)):
    s = t.smtp(port)
    s.ehlo()
    s.mail('a@local.test')
    s.rcpt('b@local.test')
    code, resp = s.data(msg)
    s.quit()
    got = daemon.wait_r_lines(t.queue_id(resp))
    sizes[name] = int(got[0][10]) if got else None
is_(sizes['off'], len(msg), 'Trace_Headers = false: the stored size is the message as sent')
ok(sizes['on'] is not None and sizes['on'] - len(msg) >= len('Received: from client.test') +
   len(t.HOSTNAME), 'Trace_Headers on (default): the size grew by a Received: header',
   'sizes %s, message %d octets' % (sizes, len(msg)))
d2.stop()
d.stop()
t.done()
