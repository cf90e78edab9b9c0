#!/usr/bin/env python3
"""x0001-smuggling: SMTP smuggling (CVE-2023-51764/5/6) against the real
daemon.  A body carries one of the non-standard end-of-data sequences
followed by a second "MAIL FROM/RCPT TO/DATA/.../CRLF.CRLF" that a lenient
server would take as a second message.  Only <CR><LF>.<CR><LF> ends DATA:
by default (Lone_LF_in_Body pedantic) the whole thing is one message,
refused with 550 5.6.0, and there is no second 250; with fix or ignore it
is exactly one message, accepted once, with one mainlog R line."""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, status  # noqa: E402

t.netns()

SEQS = [b'\n.\n', b'\n.\r\n', b'\r.\r', b'\r\n.\r', b'\r\n.\n', b'\r.\r\n']
PORTS = {'pedantic': 2650, 'fix': 2651, 'ignore': 2652}
daemons = {}
for mode, port in PORTS.items():
    rfc = '' if mode == 'pedantic' else 'RFC2822 { Lone_LF_in_Body = %s }\n' % mode
    daemons[mode] = t.Sluiced('Relay_Domains = ( "local.test" )\n' + rfc +
                              t.listener('127.0.0.1:%d' % port, t.ESC_ACL), name=mode).start()


def payload(seq):
    """The first message's content, the smuggling sequence, the second
    'message' and the real end of data."""
    return (b'From: <a@local.test>\r\nTo: <b@local.test>\r\nSubject: outer\r\n'
            b'Date: Thu, 26 Nov 2026 12:00:00 +0000\r\nMessage-ID: <outer@client.test>\r\n\r\n'
            b'first message' + seq +
            b'MAIL FROM:<smuggler@local.test>\r\nRCPT TO:<victim@local.test>\r\nDATA\r\n'
            b'From: <ceo@local.test>\r\nSubject: smuggled\r\n\r\nsmuggled body\r\n'
            b'\r\n.\r\n')


def name(seq):
    return repr(seq.decode())[1:-1]


def victims(d):
    return [f for f in d.r_lines() if f[5] == 'victim' or f[7] == 'smuggler']


for mode, port in PORTS.items():
    d = daemons[mode]
    for seq in SEQS:
        n_before = len(d.r_lines())
        c = t.Client(port)
        c.ehlo()
        c.cmd('MAIL FROM:<a@local.test>')
        c.cmd('RCPT TO:<b@local.test>')
        status(c.cmd('DATA'), '354', '%s, "%s": DATA 354' % (mode, name(seq)))
        c.send(payload(seq) + b'NOOP\r\n')
        rs = c.replies(2)
        final = rs[0]
        if mode == 'pedantic':
            status(final, '550 5.6.0', '%s, "%s": one message, refused with 550 5.6.0'
                   % (mode, name(seq)))
        else:
            status(final, '250 2.0.0', '%s, "%s": one message, accepted' % (mode, name(seq)))
        status(rs[1], '250 2.0.0', '%s, "%s": the next reply is the NOOP\'s: no second message '
               'outcome' % (mode, name(seq)))
        c.close()
        d.sync_mainlog(port)
        lines = [f for f in d.r_lines()[n_before:] if f[7] != 'sync']
        if mode == 'pedantic':
            is_(lines, [], '%s, "%s": no R line' % (mode, name(seq)))
        else:
            qid = t.queue_id(final.text) if final else None
            ok(len(lines) == 1 and lines[0][1] == qid and lines[0][5] == 'b',
               '%s, "%s": exactly one R line, for the real recipient' % (mode, name(seq)),
               'R lines: %s' % lines)
        is_(victims(d), [], '%s, "%s": nothing for the smuggled envelope' % (mode, name(seq)))

# A bare-LF "end" alone never ends DATA: nothing comes back until CRLF.CRLF.
for mode, port in PORTS.items():
    c = t.Client(port)
    c.ehlo()
    c.cmd('MAIL FROM:<a@local.test>')
    c.cmd('RCPT TO:<b@local.test>')
    c.cmd('DATA')
    c.send(b'Subject: wait\r\n\r\nbody\n.\n')
    is_(c.reply(timeout=0.5), None, '%s: "\\n.\\n" does not end DATA (no reply)' % mode)
    c.send(b'\r\n.\r\n')
    status(c.reply(), '550 5.6.0' if mode == 'pedantic' else '250 2.0.0',
           '%s: CRLF.CRLF does' % mode)
    c.close()

for d in daemons.values():
    d.stop()
t.done()
