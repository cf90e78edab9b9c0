#!/usr/bin/env python3
"""b0006-pipelining-bdat: PIPELINING (RFC 2920) and CHUNKING/BDAT (RFC 3030)
with a raw client: whole transactions in one write and their replies in
order, BDAT in one chunk, in several, with the chunk bytes in the same
write as the command, BDAT 0 LAST, refused BDATs whose chunks are
discarded, and BDAT over message_size.  Trace_Headers is off, so the size
on the mainlog R line is exactly what was received."""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, like, status  # noqa: E402

t.netns()

P, PS = 2600, 2601
ESC = 'ENHANCEDSTATUSCODES [ extension = ENHANCEDSTATUSCODES ]'
d = t.Sluiced('''Relay_Domains = ( "local.test" )
RFC2822 { Trace_Headers = false }
ESMTP_Listener = (
  127.0.0.1:%d [ 0.0.0.0/0 = ( %s ) ]
  127.0.0.1:%d [ 0.0.0.0/0 = ( %s personality [ message_size = 1000 ] ) ]
)
''' % (P, ESC, PS, ESC)).start()

MSG = t.message('pipelined', body='Line one.\r\n.leading dot\r\nLast line.\r\n')


def statuses(rs):
    return [r.status if r is not None else None for r in rs]


def sizes_of(qid, n=1):
    got = d.wait_r_lines(qid, n)
    return [int(f[10]) for f in got]


# ---------------------------------------------------------------- one write, one transaction
c = t.Client(P)
stuffed = MSG.replace(b'\r\n.', b'\r\n..')
c.send(b'EHLO client.test\r\nMAIL FROM:<a@local.test>\r\nRCPT TO:<r1@local.test>\r\n'
       b'RCPT TO:<r2@elsewhere.test>\r\nRCPT TO:<r3@local.test>\r\nDATA\r\n' + stuffed +
       b'.\r\nQUIT\r\n')
rs = c.replies(8)
is_(statuses(rs), ['250', '250 2.1.0', '250 2.1.5', '550 5.7.1', '250 2.1.5', '354', '250 2.0.0',
                   '221 2.0.0'],
    'a whole pipelined transaction in one write: every reply, in order')
ok(rs[0] is not None and 'PIPELINING' in rs[0].text, 'EHLO advertises PIPELINING')
ok(c.closed(), 'the server closes after the pipelined QUIT')
c.close()
qid = t.queue_id(rs[6].text) if rs[6] else None
got = d.wait_r_lines(qid, 2)
is_(sorted(f[5] for f in got), ['r1', 'r3'], 'R lines for the two accepted recipients only')
is_(got and int(got[0][10]), len(MSG), 'the dot-stuffed line was unstuffed (exact size)')

# two transactions and an RSET in one write
c = t.Client(P)
c.ehlo()
c.send(b'MAIL FROM:<a@local.test>\r\nRCPT TO:<b@local.test>\r\nDATA\r\n' + MSG + b'.\r\n'
       b'MAIL FROM:<c@local.test>\r\nRSET\r\nMAIL FROM:<d@local.test>\r\nRCPT TO:<e@local.test>\r\n'
       b'DATA\r\n' + MSG + b'.\r\nNOOP\r\n')
rs = c.replies(10)
is_(statuses(rs), ['250 2.1.0', '250 2.1.5', '354', '250 2.0.0', '250 2.1.0', '250 2.0.0',
                   '250 2.1.0', '250 2.1.5', '354', '250 2.0.0'],
    'two pipelined transactions with an RSET between them: replies in order')
q1, q2 = (t.queue_id(rs[3].text) if rs[3] else None), (t.queue_id(rs[9].text) if rs[9] else None)
ok(q1 and q2 and q1 != q2, 'two queue ids')
status(c.reply(), '250 2.0.0', 'and the NOOP behind them')
c.close()

# many commands, big messages: input and output buffers under pressure
c = t.Client(P)
c.ehlo()
c.send(b''.join(b'NOOP %d\r\n' % i for i in range(2000)) + b'QUIT\r\n')
rs = c.replies(2001)
ok(all(r is not None and r.status == '250 2.0.0' for r in rs[:2000]) and rs[2000] is not None
   and rs[2000].status == '221 2.0.0', '2000 pipelined NOOPs and a QUIT in one write: 2001 replies')
c.close()
BIG = t.message('big', body=('z' * 998 + '\r\n') * 5000)   # about 5 MB
c = t.Client(P)
c.ehlo()
rs = t.send_message(c, 'a@local.test', ['b@local.test'], BIG + b'.\r\n', ehlo=False)
status(rs[-1], '250 2.0.0', 'a 5 MB message by DATA is queued')
is_(sizes_of(t.queue_id(rs[-1].text) if rs[-1] else None), [len(BIG)], 'with its exact size')
c.send(b'MAIL FROM:<a@local.test>\r\nRCPT TO:<b@local.test>\r\n')
step = 65537
for off in range(0, len(BIG), step):
    chunk = BIG[off:off + step]
    last = b' LAST' if off + step >= len(BIG) else b''
    c.send(b'BDAT %d%s\r\n' % (len(chunk), last) + chunk)
rs = c.replies(2 + (len(BIG) + step - 1) // step)
ok(all(r is not None and r.code == 250 for r in rs), 'a 5 MB message in %d pipelined BDAT chunks: '
   'every reply 250' % (len(rs) - 2), 'replies: %s' % [str(r) for r in rs if r is None or r.code != 250])
is_(sizes_of(t.queue_id(rs[-1].text) if rs[-1] else None), [len(BIG)], 'with its exact size')
c.close()

# ---------------------------------------------------------------- BDAT
c = t.Client(P)
r = c.ehlo()
ok('CHUNKING' in r.lines, 'EHLO advertises CHUNKING')
c.cmd('MAIL FROM:<a@local.test>')
c.cmd('RCPT TO:<b@local.test>')
c.send(b'BDAT %d LAST\r\n' % len(MSG) + MSG)
r = c.reply()
status(r, '250 2.0.0', 'BDAT <size> LAST in one chunk: 250 2.0.0')
like(r and r.text, r'queued as %s' % t.QID_RE, 'BDAT LAST: queued as <id>')
is_(sizes_of(t.queue_id(r.text) if r else None), [len(MSG)], 'BDAT: the stored size is the chunk size')

# several chunks, one command at a time
parts = [MSG[:40], MSG[40:100], MSG[100:]]
c.cmd('MAIL FROM:<a@local.test>')
c.cmd('RCPT TO:<b@local.test>')
for i, p in enumerate(parts[:-1]):
    c.send(b'BDAT %d\r\n' % len(p) + p)
    r = c.reply()
    status(r, '250 2.0.0', 'BDAT chunk %d: 250 2.0.0' % (i + 1))
    like(r and r.text, r'%d octets received' % len(p), 'BDAT chunk %d: says how many octets' % (i + 1))
c.send(b'BDAT %d LAST\r\n' % len(parts[-1]) + parts[-1])
r = c.reply()
status(r, '250 2.0.0', 'BDAT last chunk: 250 2.0.0 queued')
is_(sizes_of(t.queue_id(r.text) if r else None), [len(MSG)], 'three chunks make the whole message')

# chunks pipelined with their commands, a chunk split in the middle of a CRLF, BDAT 0 LAST
c.cmd('MAIL FROM:<a@local.test>')
c.cmd('RCPT TO:<b@local.test>')
cut = MSG.index(b'\r\n') + 1
c.send(b'BDAT %d\r\n' % cut + MSG[:cut] + b'BDAT %d\r\n' % (len(MSG) - cut) + MSG[cut:] +
       b'BDAT 0 LAST\r\nNOOP\r\n')
rs = c.replies(4)
is_(statuses(rs), ['250 2.0.0', '250 2.0.0', '250 2.0.0', '250 2.0.0'],
    'chunks in the same write as their commands, then BDAT 0 LAST and NOOP: four 250s')
like(rs[2] and rs[2].text, 'queued as', 'BDAT 0 LAST ends the message')
is_(sizes_of(t.queue_id(rs[2].text) if rs[2] else None), [len(MSG)],
    'a CR and its LF in different chunks still make one CRLF')

# a chunk holding CRLF.CRLF is only data
body = MSG + b'.\r\nMAIL FROM:<x@local.test>\r\n'
c.cmd('MAIL FROM:<a@local.test>')
c.cmd('RCPT TO:<b@local.test>')
c.send(b'BDAT %d LAST\r\n' % len(body) + body)
r = c.reply()
status(r, '250 2.0.0', 'BDAT: CRLF.CRLF inside a chunk does not end it')
is_(sizes_of(t.queue_id(r.text) if r else None), [len(body)], 'and is stored as data')
status(c.cmd('NOOP'), '250 2.0.0', 'nothing of the chunk was taken as a command')

# sequence rules
c.cmd('MAIL FROM:<a@local.test>')
c.cmd('RCPT TO:<b@local.test>')
c.send(b'BDAT 5\r\nhello')
c.reply()
status(c.cmd('DATA'), '503 5.5.1', 'DATA after BDAT: 503 5.5.1')
status(c.cmd('RCPT TO:<c@local.test>'), '503 5.5.1', 'RCPT after BDAT: 503 5.5.1')
status(c.cmd('RSET'), '250 2.0.0', 'RSET drops the chunked message')
c.send(b'MAIL FROM:<a@local.test>\r\nRCPT TO:<x@elsewhere.test>\r\nBDAT 5 LAST\r\nhelloNOOP\r\n')
rs = c.replies(4)
is_(statuses(rs), ['250 2.1.0', '550 5.7.1', '554 5.5.1', '250 2.0.0'],
    'BDAT after every RCPT was refused: 554 5.5.1, its chunk is discarded, the session goes on')
c.send(b'RSET\r\nMAIL FROM:<a@local.test>\r\nRCPT TO:<b@local.test>\r\nBDAT 5 LUST\r\nhello'
       b'BDAT 3 LAST\r\nabcNOOP\r\n')
rs = c.replies(6)
is_(statuses(rs), ['250 2.0.0', '250 2.1.0', '250 2.1.5', '501 5.5.4', '503 5.5.1', '250 2.0.0'],
    'a refused BDAT: its chunk is discarded, later chunks get 503 until RSET')
status(c.cmd('RSET'), '250 2.0.0', 'RSET after the refused BDAT')
n_before = len(d.r_lines())
c.send(b'MAIL FROM:<a@local.test>\r\nRCPT TO:<b@local.test>\r\nBDAT 5\r\nfirst'
       b'BDAT 6 LUST\r\nsecondBDAT 5 LAST\r\nthird')
rs = c.replies(5)
is_(statuses(rs), ['250 2.1.0', '250 2.1.5', '250 2.0.0', '501 5.5.4', '503 5.5.1'],
    'a refused BDAT in the middle of a message: the chunks after it get 503, not a 250')
status(c.cmd('RSET'), '250 2.0.0', 'RSET after the refused middle chunk')
d.sync_mainlog(P)
is_(len(d.r_lines()), n_before + 1, 'no message made of the chunks around a refused one was queued')
c.send(b'MAIL FROM:<a@local.test>\r\nRCPT TO:<b@local.test>\r\nBDAT five\r\n')
rs = c.replies(4)
is_(statuses(rs[:3]), ['250 2.1.0', '250 2.1.5', '501 5.5.4'],
    'BDAT with a size that does not parse: 501 5.5.4')
status(rs[3], '421 4.7.0', 'then 421 4.7.0: the chunk\'s end is unknown (RFC 3030 section 2)')
ok(c.closed(), 'and the session is closed')
c.close()

# ---------------------------------------------------------------- BDAT and message_size
c = t.Client(PS)
c.ehlo()
big = b'x' * 1400 + b'\r\n'
c.send(b'MAIL FROM:<a@local.test>\r\nRCPT TO:<b@local.test>\r\nBDAT %d LAST\r\n' % len(big) + big)
rs = c.replies(3)
is_(statuses(rs), ['250 2.1.0', '250 2.1.5', '552 5.3.4'],
    'BDAT over message_size (1000): 552 5.3.4')
c.send(b'MAIL FROM:<a@local.test>\r\nRCPT TO:<b@local.test>\r\nBDAT 600\r\n' + b'y' * 600 +
       b'BDAT 600 LAST\r\n' + b'z' * 600)
rs = c.replies(4)
is_(statuses(rs), ['250 2.1.0', '250 2.1.5', '250 2.0.0', '552 5.3.4'],
    'two chunks of 600 with message_size 1000: the first is taken, the end gets 552 5.3.4')
small = t.message('small')
c.send(b'MAIL FROM:<a@local.test>\r\nRCPT TO:<b@local.test>\r\nBDAT %d LAST\r\n' % len(small) +
       small)
rs = c.replies(3)
is_(statuses(rs), ['250 2.1.0', '250 2.1.5', '250 2.0.0'],
    'the session goes on: a small message by BDAT is queued')
c.close()
d.stop()
t.done()
