#!/usr/bin/env python3
"""d0020-ecstream-delivery: Delivery_Method = "ECSTREAM" delivers to a second
sluiced's ECStream_Listener on ecstream_port.

Inside a private network namespace, dnsmasq on 127.0.0.1:5353 gives the
.test domains MX hosts on 127.0.0.3 (node B) and 127.0.0.4 (nothing there at
first).  Node A takes mail over SMTP and delivers it with Delivery_Method =
"ECSTREAM" and ecstream_port = 2781 (not the default 1825, and nothing on
Remote_SMTP_Port).  Node B has an ECStream_Listener on 127.0.0.3:2781 whose
personality allows 2 recipients a message, relays ecs.test and late.test,
and passes mail on to Postfix's smtp-sink:
  - a message with two recipients: one frame, D lines on A (the peer
    127.0.0.3), one message with both recipients at B (two R lines, one
    queue id) and at the sink, its content intact;
  - three recipients: B refuses the frame (452 4.5.3, too many); A sends
    each recipient in a frame of its own, so all three are D (no T line)
    and B has three one-recipient messages;
  - recipients at denied.test, which B does not relay for: 550 5.7.1 for
    each, P lines on A (stage 9), bouncelog lines, nothing at B;
  - late.test's MX 127.0.0.4 is down: T lines (stage 0, retries 0, 1, ...),
    no P; once B also listens on 127.0.0.4 (a reload) the retry delivers.
"""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, diag  # noqa: E402

t.netns()

P = 2780         # A's SMTP listener
EP = 2781        # ecstream_port: B's ECStream listeners
dns = t.DnsMasq(['--host-record=b.node.test,127.0.0.3', '--host-record=down.node.test,127.0.0.4',
                 '--mx-host=ecs.test,b.node.test,10', '--mx-host=denied.test,b.node.test,10',
                 '--mx-host=late.test,down.node.test,10']).start()
sink = t.SmtpSink('127.0.0.2', 2525).start()

B_CONF = '''
Relay_Domains = ( "ecs.test" "late.test" )
Gateway = "127.0.0.2:2525"
ECStream_Listener = (
%s
)
''' + t.listener('127.0.0.1:2782', t.ESC_ACL)
B_LISTENER = '''  "%s:%d" [
    0.0.0.0/0 = ( personality [ Max_Recipients_Per_Message = 2 ] )
  ]'''
b = t.Sluiced(B_CONF % (B_LISTENER % ('127.0.0.3', EP)), name='node-b').start()

a = t.Sluiced('''
Relay_Domains = ( "ecs.test" "denied.test" "late.test" )
Resolv_Conf = "%s"
Delivery_Method = "ECSTREAM"
ecstream_port = %d
Retry_Interval = 1
Host_Failure_Retry = 1
''' % (dns.resolv_conf(), EP) + t.listener('127.0.0.1:%d' % P, t.ESC_ACL), name='node-a').start()


def at_sink(subject):
    return [m for m in sink.messages() if b'Subject: ' + subject.encode() in m.content]


def send(rcpts, subject):
    qid = t.inject(P, 'from@src.test', rcpts, t.message(subject))
    ok(qid, '%s: accepted by A' % subject)
    return qid


# ---------------------------------------------------------------- two recipients, one frame
n_r = len(b.r_lines())
q1 = send(['one@ecs.test', 'two@ecs.test'], 'two rcpts')
got = a.wait_outcomes(2, qid=q1)
ok(len(got) == 2 and all(o.kind == 'D' and o.ip == '127.0.0.3' and o.retries == 0 for o in got),
   'two recipients: two D lines on A, to 127.0.0.3, first attempt', *map(repr, got))
rl = t.wait_for(lambda: (lambda x: x if len(x) >= n_r + 2 else None)(b.r_lines())) or b.r_lines()
new = rl[n_r:]
is_(len(new), 2, 'B: two R lines')
is_(len({f[1] for f in new}), 1, 'B: both recipients in one message (one queue id)')
ok(len(new) == 2 and all('@ecstream@' in '@'.join(f) for f in new),
   'B: received over ECStream (protocol field)', *['@'.join(f) for f in new])
msgs = t.wait_for(lambda: at_sink('two rcpts')) or []
is_(len(msgs), 1, 'the sink got the message once, through B')
ok(msgs and sorted(msgs[0].rcpts) == ['<one@ecs.test>', '<two@ecs.test>'] and
   msgs[0].content.endswith(b'\nHello.\n'), 'the content and both recipients made it through',
   *msgs[:1])

# ---------------------------------------------------------------- a refused frame is split
n_r = len(b.r_lines())
q2 = send(['r1@ecs.test', 'r2@ecs.test', 'r3@ecs.test'], 'three rcpts')
got = a.wait_outcomes(3, 'D', qid=q2)
is_([o.kind for o in a.outcomes(qid=q2)], ['D', 'D', 'D'],
    'three recipients (B takes two a message): three D lines, no T line')
rl = t.wait_for(lambda: (lambda x: x if len(x) >= n_r + 3 else None)(b.r_lines())) or b.r_lines()
new = rl[n_r:]
is_(len(new), 3, 'B: three R lines')
is_(len({f[1] for f in new}), 3, 'B: three messages of one recipient each')

# ---------------------------------------------------------------- refused recipients
n_r = len(b.r_lines())
q3 = send(['x@denied.test', 'y@denied.test'], 'denied')
got = a.wait_outcomes(2, 'P', qid=q3)
ok(len(got) == 2 and all(o.stage == 9 and o.ip == '127.0.0.3' and
                         o.response.startswith('550 5.7.1') for o in got),
   'denied.test: a P line per recipient (stage 9, B\'s 550 5.7.1 reply)', *map(repr, got))
is_([o.kind for o in a.outcomes(qid=q3)], ['P', 'P'], 'denied.test: no T or D line')
bl = t.wait_for(lambda: (lambda x: x if len(x) >= 2 else None)(a.bounces(q3))) or a.bounces(q3)
ok(len(bl) == 2 and all(x.kind == 'B' and x.stage == 9 for x in bl),
   'denied.test: two bouncelog lines', *map(repr, bl))
is_(len(b.r_lines()), n_r, 'B kept nothing of it')

# ---------------------------------------------------------------- the peer is down
q4 = send(['late@late.test'], 'late')
got = a.wait_outcomes(2, 'T', qid=q4)
ok(len(got) >= 2 and all(o.stage == 0 and o.response.startswith('4') for o in got) and
   [o.retries for o in got[:2]] == [0, 1],
   'nothing on 127.0.0.4: T lines (stage 0, 4xx, retries 0, 1)', *map(repr, got))
is_([o for o in a.outcomes('DP', qid=q4)], [], '... and no D or P line while it is down')
ok(b.reload(B_CONF % (B_LISTENER % ('127.0.0.3', EP) + '\n' + B_LISTENER % ('127.0.0.4', EP))),
   'B also listens on 127.0.0.4 (reload)')
got = a.wait_outcomes(1, 'D', qid=q4)
ok(len(got) == 1 and got[0].ip == '127.0.0.4' and got[0].retries >= 1,
   'the retry delivers it to 127.0.0.4', *map(repr, a.outcomes(qid=q4)))
ok(t.wait_for(lambda: at_sink('late')),
   'the sink got it through B')

a.stop()
b.stop()
t.done()
