#!/usr/bin/env python3
"""e0001-ecstream: injection over ECStream (proto/ecstream.h, sluice-ecstream(7)).

Inside a private network namespace, Postfix's smtp-sink on 127.0.0.2:2525
is the Gateway (it dumps every transaction); sluiced has an ESMTP_Listener
and an ECStream_Listener.  A client written here speaks the protocol:
  - the greeting "ECS1 <host> ready";
  - 1,000 messages pipelined on one connection (a window of 64 frames):
    1,000 replies "250 <queue id>" in frame order, every message at the
    sink byte for byte after our Received: header "with ECSTREAM", R lines
    with protocol "ecstream";
  - the 'B' item and a 'K'/'V' binding context variable choose the binding;
  - refusals that keep the session (the next frame is answered 250):
    message_size (552 5.3.4), max_recipients_per_message (452 4.5.3), a bad
    recipient (501 5.1.3), a bad sender (553 5.1.7), a bare LF or CR (554
    5.6.0), relaying denied for a client whose ACL entry gives no relay
    rights (550 5.7.1, while a Relay_Domains recipient is accepted);
  - a malformed frame (bad magic, an item past the envelope, no recipient)
    is answered 554 5.5.2 after the replies owed before it, then closed;
  - the quit frame: 221, then the server closes;
  - ECStream_Idle_Time = 1 (a personality of its own ACL entry): an idle
    session gets "421 4.4.2 ... idle timeout" and is closed.
"""
import os
import re
import socket
import struct
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, like, diag  # noqa: E402

t.netns()

P, E = 2830, 2831
sink = t.SmtpSink('127.0.0.2', 2525).start()
d = t.Sluiced('''
Relay_Domains = ( "sink.test" )
Gateway = "127.0.0.2:2525"
Binding "b1" { }
Binding "b2" { }
ECStream_Listener = (
  127.0.0.1:%d [
    127.0.0.5/32 = ( personality [ ECStream_Idle_Time = 1 ] relay_for_sending_domains )
    127.0.0.6/32 = ( context [ binding = "b2" ] relay_for_sending_domains )
    127.0.0.7/32 = ( )
    0.0.0.0/0 = ( personality [ Message_Size = 100000 Max_Recipients_Per_Message = 5 ]
                  relay_for_sending_domains )
  ]
)
''' % E + t.listener('127.0.0.1:%d' % P, t.ESC_ACL), name='ecstream').start()


def item(tag, val):
    v = val.encode() if isinstance(val, str) else val
    return tag.encode() + struct.pack('>H', len(v)) + v


def frame(sender, rcpts, content, binding=None, ctx=(), magic=b'ECSM', env=None):
    if env is None:
        env = item('F', sender) + b''.join(item('R', r) for r in rcpts)
        if binding is not None:
            env += item('B', binding)
        for k, v in ctx:
            env += item('K', k) + item('V', v)
    return magic + struct.pack('>IQ', len(env), len(content)) + env + content


class Ecs:
    """A client connection: greeting, frames out, reply lines in."""

    def __init__(self, source='127.0.0.1'):
        self.s = socket.create_connection(('127.0.0.1', E), timeout=t.DEADLINE,
                                          source_address=(source, 0))
        self.f = self.s.makefile('rb')
        self.greeting = self.f.readline().decode()

    def send(self, data):
        self.s.sendall(data)

    def reply(self):
        return self.f.readline().decode().rstrip('\r\n')

    def closed(self):
        try:
            return self.s.recv(1) == b''
        except (ConnectionResetError, socket.timeout):
            return True

    def close(self):
        self.f.close()
        self.s.close()


def msg(i, tag='ecs', extra=b''):
    return t.message('%s %d' % (tag, i)) + extra


# ---------------------------------------------------------------- greeting, 1,000 pipelined
c = Ecs()
like(c.greeting, r'^ECS1 \S+ ready\r\n$', 'the greeting: "ECS1 <host> ready"')
N, WINDOW = 1000, 64
contents = [msg(i) for i in range(N)]
replies = []
sent = 0
while len(replies) < N:
    while sent < N and sent - len(replies) < WINDOW:
        c.send(frame('from@src.test', ['r%d@sink.test' % sent], contents[sent]))
        sent += 1
    replies.append(c.reply())
good = [r for r in replies if re.match(r'^250 [0-9A-F]{8}-[0-9A-F]{12}$', r)]
ok(len(good) == N, '%d frames pipelined: %d replies "250 <queue id>"' % (N, N),
   [r for r in replies if r not in good][:3])
qids = [r[4:] for r in good]
is_(len(set(qids)), N, '... with distinct queue ids')
ok(t.wait_for(lambda: len(d.r_lines()) >= N), 'their R lines are written')
rcpt_of = {f[1]: f[5] for f in d.r_lines()}
out_of_order = [i for i, q in enumerate(qids) if rcpt_of.get(q) != 'r%d' % i]
is_(out_of_order[:5], [], '... in frame order: the i-th reply is the i-th frame\'s message '
    '(its R line names recipient r<i>)')
ok(sink.wait_count(N), 'the sink got all %d' % N, sink.count())
by_id = {m.msgid: m for m in sink.messages()}
bad = []
for i, content in enumerate(contents):
    mid = re.search(rb'Message-ID: (<[^>]+>)', content).group(1).decode()
    m = by_id.get(mid)
    if m is None or not m.content.endswith(content.replace(b'\r\n', b'\n')):
        bad.append(i)
is_(bad[:5], [], 'each arrived byte for byte after our Received: header')
one = by_id.get(re.search(rb'Message-ID: (<[^>]+>)', contents[0]).group(1).decode())
like(one.content.decode(errors='replace') if one else '', r'^Received: from [^\n]*\n\tby \S+ '
     r'\(sluice\) with ECSTREAM id ', 'the Received: header says "with ECSTREAM"')
r = d.wait_r_lines(qids[0])
ok(r and r[0][11] == 'ecstream', 'its R line: protocol "ecstream"', r)

# ---------------------------------------------------------------- bindings
c.send(frame('from@src.test', ['b@sink.test'], msg(0, 'binding item'), binding='b1'))
rb = c.reply()
r = d.wait_r_lines(rb[4:]) if rb.startswith('250') else None
ok(r and r[0][13] == 'b1', 'the B item chooses binding b1 (R line)', rb, r)
c.send(frame('from@src.test', ['k@sink.test'], msg(0, 'binding ctx'), ctx=[('binding', 'b2')]))
rk = c.reply()
r = d.wait_r_lines(rk[4:]) if rk.startswith('250') else None
ok(r and r[0][13] == 'b2', 'a K/V "binding" context variable chooses binding b2', rk, r)

# ---------------------------------------------------------------- refusals that keep the session
cases = [
    ('message_size', frame('from@src.test', ['x@sink.test'], b'Subject: big\r\n\r\n' +
                           b'y' * 120000 + b'\r\n'), r'^552 5\.3\.4 '),
    ('max_recipients_per_message', frame('from@src.test', ['r%d@sink.test' % i for i in range(6)],
                                         msg(1)), r'^452 4\.5\.3 '),
    ('a bad recipient address', frame('from@src.test', ['no at sign'], msg(2)), r'^501 5\.1\.3 '),
    ('a bad sender address', frame('bad sender@', ['x@sink.test'], msg(3)), r'^553 5\.1\.7 '),
    ('a bare LF in the content', frame('from@src.test', ['x@sink.test'],
                                       b'Subject: lf\r\n\r\nbare\nlf\r\n'), r'^554 5\.6\.0 '),
    ('a bare CR in the content', frame('from@src.test', ['x@sink.test'],
                                       b'Subject: cr\r\n\r\nbare\rcr\r\n'), r'^554 5\.6\.0 '),
]
for what, fr, want in cases:
    c.send(fr + frame('from@src.test', ['after@sink.test'], msg(5, what)))
    a, b = c.reply(), c.reply()
    like(a, want, '%s: refused (%s)' % (what, a))
    like(b, r'^250 ', '... and the next frame on the session is accepted')
c.send(frame('', ['nullsender@sink.test'], msg(6, 'null sender')))
like(c.reply(), r'^250 ', 'the null sender (an empty F item) is accepted')

# ---------------------------------------------------------------- quit
c.send(frame(None, [], b'', magic=b'ECSQ', env=b''))
is_(c.reply(), '221 2.0.0 bye', 'the quit frame: 221')
ok(c.closed(), '... and the server closes the connection')
c.close()

# ---------------------------------------------------------------- relay rights of the ACL
c = Ecs(source='127.0.0.7')
c.send(frame('from@src.test', ['x@elsewhere.test'], msg(7)) +
       frame('from@src.test', ['x@sink.test'], msg(8)))
like(c.reply(), r'^550 5\.7\.1 ', 'an ACL entry without relay rights: relaying denied')
like(c.reply(), r'^250 ', '... a Relay_Domains recipient is still accepted')
c.close()

# ---------------------------------------------------------------- malformed frames
for what, bad in (('bad magic', b'XXXX' + struct.pack('>IQ', 0, 0)),
                  ('an item past the envelope',
                   frame(None, [], b'', env=item('F', 'a@b.test') + b'R\x00\x40abc')),
                  ('no recipient', frame('from@src.test', [], b'x\r\n'))):
    c = Ecs()
    c.send(frame('from@src.test', ['before@sink.test'], msg(9, what)) + bad +
           frame('from@src.test', ['never@sink.test'], msg(10, what)))
    a, b = c.reply(), c.reply()
    like(a, r'^250 ', '%s: the frame before it is answered first' % what)
    like(b, r'^554 5\.5\.2 malformed frame', '... then 554 5.5.2 (%s)' % b)
    ok(c.closed(), '... and the connection is closed (the frame after it gets nothing)')
    c.close()
ok(not any('never@sink.test' in ' '.join(m.rcpts) for m in sink.messages()),
   'nothing after a malformed frame was taken')

# ---------------------------------------------------------------- idle time
c = Ecs(source='127.0.0.5')
t0 = time.monotonic()
line = c.reply()
like(line, r'^421 4\.4\.2 .*idle timeout', 'ECStream_Idle_Time = 1: "421 4.4.2 ... idle timeout"')
ok(time.monotonic() - t0 >= 0.9, '... after about a second')
ok(c.closed(), '... and the connection is closed')
c.close()

is_(d.outcomes('TP'), [], 'no T or P line')
d.stop()
t.done()
