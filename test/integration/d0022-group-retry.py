#!/usr/bin/env python3
"""d0022-group-retry: Momentum's older binding_group = "name" inside a
Binding, a Binding_Group declared twice, and max_retry_interval, each shown
by what sluice delivers.

Inside a private network namespace, scripted receivers (sltest.Receiver)
on their own loopback addresses; the X-Binding: header picks the binding.
  - group "g" sets EHLO_Hostname; Binding "named" joins it with
    binding_group = "g", Binding "second" is inside g's second block:
    both connect from their own Bind_Address and say g.example, and their
    D lines name group g; Binding "plain" (no group) says sluice.test and
    its D line names group default (the control);
  - group "tg" sets Outbound_Throttle_Connections = "1/3600", one bucket
    for the group: Binding "t1" joins it from inside (binding_group =
    "tg"), "t2" is declared in it.  A message through t1 takes the one
    connection of the window, so a message through t2 sent next waits for
    the bucket: two messages through Binding "p2" (no group, a connection
    of its own) sent after it are delivered while it still has no D, T or
    P line (order, not a time; it stays queued until the end);
  - max_retry_interval: two messages to a receiver that answers 451 to
    RCPT, both with Retry_Interval = 1; cap.test has max_retry_interval = 2
    (attempts at about 0, 1, 3, 5, 7, 9 s), nocap.test the default (0, 1,
    3, 7, 15 s).  When cap.test has its 6th T line, nocap.test has at most
    4: the capped back-off stopped growing.  Retry counts in the T lines go
    0, 1, 2, ... in order.
"""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, diag  # noqa: E402

t.netns()

P = 2790
rcv = t.Receiver('127.0.0.2', 2525, name='gw').start()
busy = t.Receiver('127.0.0.3', 2525, name='busy').start()
busy.rcpt_reply = lambda a: '451 4.3.0 try again later'

d = t.Sluiced('''
Relay_Domains = ( "dest.test" "cap.test" "nocap.test" )
Gateway = "127.0.0.2:2525"
Retry_Interval = 1
Binding "named" {
  binding_group = "g"
  Bind_Address = "127.0.0.9"
}
Binding_Group "g" {
  EHLO_Hostname = "g.example"
}
Binding "plain" { Bind_Address = "127.0.0.12" }
Binding "p2" { Bind_Address = "127.0.0.15" }
Binding_Group "tg" {
  Outbound_Throttle_Connections = "1/3600"
  Max_Deliveries_Per_Connection = 1
  Binding "t2" { Bind_Address = "127.0.0.14" }
}
Binding "t1" { Bind_Address = "127.0.0.13" binding_group = "tg" }
# the second block of g, as if from an included file
Binding_Group "g" {
  Binding "second" { Bind_Address = "127.0.0.10" }
}
Domain "cap.test" { Gateway = "127.0.0.3:2525" max_retry_interval = 2 max_retries = "none" }
Domain "nocap.test" { Gateway = "127.0.0.3:2525" max_retries = "none" }
ESMTP_Listener = ( 127.0.0.1:%d )
''' % P).start()


def send(subject, binding=None, rcpt='to@dest.test'):
    headers = ['X-Binding: %s' % binding] if binding else []
    with t.Client(P) as c:
        rs = t.send_message(c, 'from@src.test', [rcpt],
                            t.message(subject, headers=headers) + b'.\r\n')
        c.cmd('QUIT')
    qid = t.queue_id(rs[-1].text) if rs[-1] is not None and rs[-1].code == 250 else None
    ok(qid is not None, '%s: queued' % subject, rs)
    return qid


def delivered(qid):
    got = d.wait_outcomes(1, 'DTP', qid=qid)
    return got[0] if len(got) == 1 else got


def msg_of(subject):
    for m in rcv.msgs:
        if ('Subject: %s\r\n' % subject).encode() in m.data:
            return m
    return None


# ---------------------------------------------------------------- EHLO_Hostname of the group
for binding, peer, helo, group in (('named', '127.0.0.9', 'g.example', 'g'),
                                   ('second', '127.0.0.10', 'g.example', 'g'),
                                   ('plain', '127.0.0.12', 'sluice.test', 'default')):
    subject = 'ehlo %s' % binding
    qid = send(subject, binding)
    o = delivered(qid)
    m = msg_of(subject)
    is_((m.peer, m.ehlo) if m else None, (peer, helo),
        'binding %s: from %s with EHLO %s' % (binding, peer, helo))
    ok(isinstance(o, t.Outcome) and o.kind == 'D' and (o.group, o.binding) == (group, binding),
       '... its D line: binding_group %s, binding %s' % (group, binding), o)

# ---------------------------------------------------------------- one throttle bucket for tg
q1 = send('throttle t1', 't1')
o1 = delivered(q1)
ok(isinstance(o1, t.Outcome) and o1.kind == 'D' and o1.group == 'tg',
   't1 (binding_group = "tg"): delivered, D line names group tg', o1)
q2 = send('throttle t2', 't2')
o3 = delivered(send('after t2', 'p2'))
o4 = delivered(send('after t2 again', 'p2'))
ok(all(isinstance(o, t.Outcome) and o.kind == 'D' for o in (o3, o4)),
   'two messages through p2, sent after the one through t2, are delivered', o3, o4)
is_(d.outcomes('DTP', qid=q2), [],
    't2 (in Binding_Group "tg") still waits for the connection t1 (binding_group = "tg") '
    'took from the group\'s throttle')

# ---------------------------------------------------------------- max_retry_interval
qc = send('retry cap', rcpt='x@cap.test')
qn = send('retry nocap', rcpt='x@nocap.test')
cap = d.wait_outcomes(6, 'T', qid=qc, timeout=40)
nocap = d.outcomes('T', qid=qn)
is_(len(cap), 6, 'cap.test (Retry_Interval 1, max_retry_interval 2): 6 attempts, each a T line')
ok(3 <= len(nocap) <= 4,
   'nocap.test (same Retry_Interval, default cap) has had at most 4 attempts by then: '
   'the capped back-off stopped doubling', 'cap: %s' % [o.time for o in cap],
   'nocap: %s' % [o.time for o in nocap])
is_([o.retries for o in cap], list(range(6)), 'the T lines of cap.test count retries 0..5')
diag('cap.test attempts at %s; nocap.test at %s' %
     ([o.time - cap[0].time for o in cap], [o.time - cap[0].time for o in nocap]))
is_(len(d.outcomes('P')), 0, 'no P line in the whole run')
ok(msg_of('throttle t2') is None, 'the receiver never got the message through t2')
d.stop()
t.done()
