#!/usr/bin/env python3
"""d0003-content-binding: what sluice delivers and from where.

Inside a private network namespace, aiosmtpd (python3-aiosmtpd) on
127.0.0.2:2525 is the Gateway of every message; it records the peer
address, the EHLO name, the envelope and the content byte for byte.
  - content: the delivered message is sluice's Received: header followed
    by exactly the bytes the client sent (lines "." and "..x" and other
    dot-led lines survive the dot-stuffing both ways; a 300 KiB body too);
  - bindings: an X-Binding: header selects the binding and is not
    delivered; a "binding" context variable from the listener ACL selects
    it; Match_Domain selects it by the sender's domain; the header wins
    over the context; an unknown name falls back to "default"; a binding
    with Bind_Address and EHLO_Hostname connects from that address and
    says that name; a binding inside a Binding_Group is logged with the
    group.  The D lines (and R lines) name the binding.
"""
import os
import re
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, like, diag  # noqa: E402

t.require_modules('aiosmtpd')
t.netns()

P = 2710
rcv = t.AioReceiver('127.0.0.2', 2525).start()
d = t.Sluiced('''
Relay_Domains = ( "dest.test" )
Gateway = "127.0.0.2:2525"
Binding "b" { Bind_Address = "127.0.0.9" EHLO_Hostname = "b.example" }
Binding "c" {
  Bind_Address = "127.0.0.10"
  EHLO_Hostname = "c.example"
  Match_Domain = ( "match.test" )
}
Binding_Group "grp" {
  Binding "g1" { Bind_Address = "127.0.0.11" EHLO_Hostname = "g1.example" }
}
ESMTP_Listener = (
  127.0.0.1:%d [
    127.0.0.20/32 = ( ENHANCEDSTATUSCODES [ extension = ENHANCEDSTATUSCODES ]
                      context [ binding = "b" ] )
    0.0.0.0/0 = ( ENHANCEDSTATUSCODES [ extension = ENHANCEDSTATUSCODES ] )
  ]
)
''' % P).start()

RECEIVED_RE = re.compile(rb'^Received: from client\.test \(\[127\.0\.0\.\d+\]\)\r\n'
                         rb'\tby sluice\.test \(sluice\) with ESMTP id [^;\s]+'
                         rb'(?:\r\n\tfor <[^>\r\n]*>)?;\r\n'
                         rb'\t[^\r\n]+\r\n')


def deliver(data, sender='from@src.test', rcpts=('to@dest.test',), source=None):
    """Inject over a raw client (from `source`); wait for the receiver to
    take it; returns (qid, envelope or None)."""
    n = len(rcv.envelopes)
    with t.Client(P, source=source) as c:
        stuffed = re.sub(rb'(?m)^\.', b'..', data)
        rs = t.send_message(c, sender, list(rcpts), stuffed + b'.\r\n')
        c.cmd('QUIT')
    qid = t.queue_id(rs[-1].text) if rs[-1] is not None and rs[-1].code == 250 else None
    if qid is None:
        diag('not queued: %s' % rs)
        return None, None
    rcv.wait_envelopes(n + 1)
    d.wait_outcomes(len(rcpts), 'DTP', qid=qid)
    got = [e for e in rcv.envelopes[n:] if re.search(re.escape(msgid_of(data)).encode(),
                                                        e['content'])]
    return qid, got[0] if got else None


def msgid_of(data):
    return re.search(rb'Message-ID: (<[^>]+>)', data).group(1).decode()


def split_received(content):
    """(our Received: header, the rest) or (None, content)."""
    m = RECEIVED_RE.match(content or b'')
    return (m.group(0), content[m.end():]) if m else (None, content)


def d_line(qid):
    got = d.outcomes('DTP', qid=qid)
    return got[0] if len(got) == 1 else got


# ---------------------------------------------------------------- content, byte for byte
body = (b'first line\r\n.\r\n..x\r\n.leading dot\r\n...\r\n. \r\n'
        b'a line with trailing spaces   \r\n\tand a tab\r\n' + b'y' * 990 + b'\r\n\r\n'
        b'two blank lines above\r\n.\r\nend\r\n')
data = t.message('dots', body=body.decode()).replace(b'\r\n\r\nfirst', b'\r\n\r\nfirst')
qid, env = deliver(data)
ok(env is not None, 'a message with dot-led lines is delivered', qid)
rec, rest = split_received(env and env['content'])
ok(rec is not None, 'it starts with our Received: header (from client.test by sluice.test, '
   'the queue id)', env and env['content'][:300])
is_(rest, data, 'after it, exactly the bytes the client sent: "." and "..x" lines intact')
is_(env and env['sender'], 'from@src.test', 'the envelope sender is the original one')
is_(env and env['rcpts'], ['to@dest.test'], 'the envelope recipient is the original one')
o = d_line(qid)
ok(isinstance(o, t.Outcome) and o.kind == 'D' and o.size == len(env['content']),
   'its D line gives the size delivered (%d octets)' % len(env['content']) if env else '', o)

big = t.message('big', body=''.join('%06d %s\r\n' % (i, '.' * (i % 7) + 'z' * 60)
                                     for i in range(4800)))
qid, env = deliver(big)
rec, rest = split_received(env and env['content'])
ok(rec is not None and rest == big, 'a %d-octet message arrives byte for byte' % len(big),
   'got %s octets' % (len(rest) if rest else None))

# ---------------------------------------------------------------- the default binding
qid, env = deliver(t.message('default binding'))
is_((env['peer'], env['helo']) if env else None, ('127.0.0.1', 'sluice.test'),
    'no binding: sent from the kernel\'s choice (127.0.0.1) with EHLO Hostname')
o = d_line(qid)
ok(isinstance(o, t.Outcome) and (o.kind, o.group, o.binding) == ('D', 'default', 'default'),
   'its D line: binding_group default, binding default', o)

# ---------------------------------------------------------------- X-Binding:
xb = t.message('x-binding', headers=['X-Binding: b'])
qid, env = deliver(xb)
is_((env['peer'], env['helo']) if env else None, ('127.0.0.9', 'b.example'),
    'X-Binding: b: connected from Bind_Address 127.0.0.9 with EHLO b.example')
rec, rest = split_received(env and env['content'])
is_(rest, xb.replace(b'X-Binding: b\r\n', b''),
    'X-Binding: the header is left out; every other byte is as sent')
o = d_line(qid)
ok(isinstance(o, t.Outcome) and (o.kind, o.group, o.binding) == ('D', 'default', 'b'),
   'its D line names binding b', o)
ok(isinstance(o, t.Outcome) and env is not None and o.size == len(env['content']),
   'its D line gives the size delivered, without the X-Binding: header', o)
rl = d.r_lines(qid)
ok(rl and rl[0][13] == 'b', 'its R line names binding b (assigned at reception)',
   'R: %s' % (rl and '@'.join(rl[0])))

# a folded X-Binding: in the middle of the header section, in lower case
xb2 = t.message('x-binding folded', headers=['x-binding:\r\n c', 'X-Other: kept'])
qid, env = deliver(xb2)
is_((env['peer'], env['helo']) if env else None, ('127.0.0.10', 'c.example'),
    'a folded lower-case x-binding: c selects binding c (127.0.0.10, c.example)')
rec, rest = split_received(env and env['content'])
is_(rest, xb2.replace(b'x-binding:\r\n c\r\n', b''), '... and the whole folded field is left out')

big_xb = t.message('big x-binding', headers=['X-Binding: b'],
                   body=''.join('line %06d .\r\n' % i for i in range(20000)))
qid, env = deliver(big_xb)
rec, rest = split_received(env and env['content'])
ok(env is not None and env['peer'] == '127.0.0.9' and
   rest == big_xb.replace(b'X-Binding: b\r\n', b''),
   'a %d-octet message with X-Binding: b: from 127.0.0.9, the header left out, the rest '
   'byte for byte' % len(big_xb), env and (env['peer'], len(rest)))

unknown = t.message('x-binding unknown', headers=['X-Binding: nosuch'])
qid, env = deliver(unknown)
is_((env['peer'], env['helo']) if env else None, ('127.0.0.1', 'sluice.test'),
    'X-Binding: nosuch (not configured): the default binding')
rec, rest = split_received(env and env['content'])
is_(rest, unknown.replace(b'X-Binding: nosuch\r\n', b''), '... and the header is still left out')
o = d_line(qid)
ok(isinstance(o, t.Outcome) and o.binding == 'default', '... its D line says default', o)
like(d.paniclog(), r'binding "nosuch" is not configured', '... and the paniclog says why')

# ---------------------------------------------------------------- context variable
qid, env = deliver(t.message('context binding'), source='127.0.0.20')
is_((env['peer'], env['helo']) if env else None, ('127.0.0.9', 'b.example'),
    'context [ binding = "b" ] of the client\'s ACL entry selects binding b')
o = d_line(qid)
ok(isinstance(o, t.Outcome) and o.binding == 'b', '... its D line names binding b', o)
qid, env = deliver(t.message('header beats context', headers=['X-Binding: c']),
                   source='127.0.0.20')
is_((env['peer'], env['helo']) if env else None, ('127.0.0.10', 'c.example'),
    'X-Binding: c wins over the context variable (binding c)')

# ---------------------------------------------------------------- Match_Domain
qid, env = deliver(t.message('match domain'), sender='someone@match.test')
is_((env['peer'], env['helo']) if env else None, ('127.0.0.10', 'c.example'),
    'Match_Domain "match.test": a sender at match.test gets binding c')
o = d_line(qid)
ok(isinstance(o, t.Outcome) and o.binding == 'c', '... its D line names binding c', o)
qid, env = deliver(t.message('match domain sub'), sender='someone@sub.match.test')
is_(env and env['peer'], '127.0.0.1', 'Match_Domain is exact: sub.match.test gets the default')

# ---------------------------------------------------------------- Binding_Group
qid, env = deliver(t.message('group', headers=['X-Binding: g1']))
is_((env['peer'], env['helo']) if env else None, ('127.0.0.11', 'g1.example'),
    'X-Binding: g1 (in Binding_Group grp): from 127.0.0.11 with EHLO g1.example')
o = d_line(qid)
ok(isinstance(o, t.Outcome) and (o.group, o.binding) == ('grp', 'g1'),
   'its D line: binding_group grp, binding g1', o)

ok(all(e['helo'] != 'client.test' for e in rcv.envelopes) and
   len(d.outcomes('TP')) == 0, 'no T or P line in the whole run', d.outcomes('TP'))
d.stop()
t.done()
