#!/usr/bin/env python3
"""x0002-limits: the input limits of the SMTP server against the real
daemon, at and one past each edge: command lines of 512 octets (RFC 5321
4.5.3.1.4), text lines of 1000 (4.5.3.1.6), paths of 256 (4.5.3.1.3),
local parts of 64, ESMTP parameters, message_size (DATA and BDAT), and
the hard error limit.  The session stays usable where the RFC says so."""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, status  # noqa: E402

t.netns()

P, PS = 2660, 2661
ESC = 'ENHANCEDSTATUSCODES [ extension = ENHANCEDSTATUSCODES ]'
d = t.Sluiced('''Relay_Domains = ( "local.test" )
RFC2822 { Trace_Headers = false }
ESMTP_Listener = (
  127.0.0.1:%d [ 0.0.0.0/0 = ( %s ) ]
  127.0.0.1:%d [ 0.0.0.0/0 = ( %s personality [ message_size = 2000 ] ) ]
)
''' % (P, ESC, PS, ESC)).start()


def line_of(total, verb='NOOP '):
    """A command line of exactly `total` octets, CRLF included."""
    return verb.encode() + b'x' * (total - len(verb) - 2) + b'\r\n'


def transaction(c):
    c.cmd('MAIL FROM:<a@local.test>')
    c.cmd('RCPT TO:<b@local.test>')
    return c.cmd('DATA')


HEAD = (b'From: <a@local.test>\r\nSubject: limits\r\nDate: Thu, 26 Nov 2026 12:00:00 +0000\r\n'
        b'Message-ID: <limits@client.test>\r\n\r\n')

# ---------------------------------------------------------------- command lines
c = t.Client(P)
c.ehlo()
c.send(line_of(512))
status(c.reply(), '250 2.0.0', 'a command line of 512 octets (CRLF included) is accepted')
c.send(line_of(513))
status(c.reply(), '500 5.5.2', 'a command line of 513 octets: 500 5.5.2')
status(c.cmd('NOOP'), '250 2.0.0', 'the session goes on after a long command line')
c.send(line_of(5000))
status(c.reply(), '500 5.5.2', 'a command line of 5000 octets: one 500 5.5.2')
status(c.cmd('NOOP'), '250 2.0.0', 'nothing of it is taken as another command')
c.send(line_of(513, 'MAIL FROM:<a@local.test> ')[:-2] + b'\r\nNOOP\r\n')
is_([r.status for r in c.replies(2)], ['500 5.5.2', '250 2.0.0'],
    'a too long MAIL line is refused as a whole, the pipelined NOOP behind it is answered')
c.send(line_of(600)[:300])
c.send(line_of(600)[300:])
status(c.reply(), '500 5.5.2', 'a long line that arrives in two parts: 500 5.5.2')

# ---------------------------------------------------------------- paths, parameters
status(c.cmd('MAIL FROM:<%s@local.test>' % ('l' * 64)), '250 2.1.0',
       'a local part of 64 octets is accepted')
c.cmd('RSET')
status(c.cmd('MAIL FROM:<%s@local.test>' % ('l' * 65)), '501 5.1.7',
       'a local part of 65 octets: 501 5.1.7')
c.cmd('MAIL FROM:<a@local.test>')
dom256 = '.'.join(['b' * 63, 'b' * 63, 'b' * 61])         # <64 @ 189> = 256 octets
dom257 = '.'.join(['b' * 63, 'b' * 63, 'b' * 62])
status(c.cmd('RCPT TO:<%s@%s>' % ('a' * 64, dom256)), '550 5.7.1',
       'a path of 256 octets passes the syntax check (then the relay check refuses it)')
status(c.cmd('RCPT TO:<%s@%s>' % ('a' * 64, dom257)), '501 5.1.3',
       'a path of 257 octets: 501 5.1.3')
status(c.cmd('RCPT TO:<a@%s.test>' % ('c' * 64)), '501 5.1.3', 'a 64-octet domain label: 501 5.1.3')
c.cmd('RSET')
params = ' '.join('X%d=1' % i for i in range(17))
status(c.cmd('MAIL FROM:<a@local.test> %s' % params), '501 5.5.4',
       'seventeen MAIL parameters: 501 5.5.4 (at most 16)')
status(c.cmd('NOOP'), '250 2.0.0', 'the session goes on')
c.close()

# ---------------------------------------------------------------- text lines
c = t.Client(P)
c.ehlo()
for total, want in ((1000, '250 2.0.0'), (1001, '500 5.5.6')):
    status(transaction(c), '354', 'DATA for a text line of %d octets' % total)
    c.send(HEAD + b'y' * (total - 2) + b'\r\n.\r\n')
    r = c.reply()
    status(r, want, 'a text line of %d octets (CRLF included): %s' % (total, want))
status(c.cmd('NOOP'), '250 2.0.0', 'the session goes on after the refused message')
status(transaction(c), '354', 'DATA for a stuffed line')
c.send(HEAD + b'..' + b'y' * 997 + b'\r\n.\r\n')
status(c.reply(), '250 2.0.0', 'a 1001-octet wire line that is 1000 after unstuffing its dot is fine')
status(transaction(c), '354', 'DATA for a long line ended by a bare LF')
c.send(HEAD + b'y' * 1200 + b'\nz\r\n.\r\n')
status(c.reply(), '550 5.6.0',
       'a long line and a bare LF: the bare LF is named (550 5.6.0 before 500 5.5.6)')
rs = t.send_message(c, 'a@local.test', ['b@local.test'], HEAD + b'fine\r\n.\r\n', ehlo=False)
status(rs[-1], '250 2.0.0', 'and the session still takes a good message')
c.close()

# ---------------------------------------------------------------- message_size at the edge
c = t.Client(PS)
c.ehlo()
for size, want in ((2000, '250 2.0.0'), (2001, '552 5.3.4')):
    fill = size - len(HEAD)
    body = HEAD + (b'z' * 98 + b'\r\n') * (fill // 100) + b'z' * (fill % 100 - 2) + b'\r\n'
    assert len(body) == size
    status(transaction(c), '354', 'DATA for a message of %d octets' % size)
    c.send(body + b'.\r\n')
    r = c.reply()
    status(r, want, 'message_size = 2000: a message of exactly %d octets: %s' % (size, want))
    if want.startswith('250'):
        got = d.wait_r_lines(t.queue_id(r.text) if r else None)
        is_(got and int(got[0][10]), size, 'its stored size is %d' % size)
    c.send(b'MAIL FROM:<a@local.test>\r\nRCPT TO:<b@local.test>\r\nBDAT %d LAST\r\n' % size + body)
    rs = c.replies(3)
    status(rs[2], want, 'message_size = 2000: BDAT of exactly %d octets: %s' % (size, want))
status(c.cmd('NOOP'), '250 2.0.0', 'the session goes on')
c.close()

# ---------------------------------------------------------------- the hard error limit
c = t.Client(P)
c.ehlo()
c.cmd('MAIL FROM:<a@local.test>')
for i in range(25):
    r = c.cmd('RCPT TO:<r%d@elsewhere.test>' % i)
ok(r is not None and r.status == '550 5.7.1', 'relay refusals (verdicts) do not count toward '
   'the error limit: the 25th is still a 550 5.7.1', str(r))
rs = [c.cmd('FROB %d' % i) for i in range(19)]
ok(all(x is not None and x.status == '500 5.5.1' for x in rs), '19 unknown commands: 500 5.5.1 each')
c.send('FROB 20\r\n')
status(c.reply(), '500 5.5.1', 'the 20th refused command still gets its 500')
r = c.reply()
status(r, '421 4.7.0', 'and then 421 4.7.0 at once')
ok(r is not None and 'too many errors' in r.text, 'the 421 says why', str(r))
ok(c.closed(), 'and the session is closed')
c.close()
d.stop()
t.done()
