#!/usr/bin/env python3
"""d0015-conn-allocation: how many connections a queue opens for its backlog
(connection_allocation_aggressiveness), and how long it keeps one
(Max_Deliveries_Per_Connection counts successful deliveries only).

Inside a private network namespace: scripted receivers (sltest.Receiver),
one per domain.  The mail is queued with Suspend_Delivery = true and
delivery starts with a reload, so every queue starts with its whole
backlog:
  - 8 messages, Max_Outbound_Connections = 8, the receiver holding each
    message 1 s: "high" opens a connection per message (8 connections of
    one message each), "normal" one for every 4 messages of the backlog
    (2 connections of 4), each opened after the one before is up;
  - Max_Deliveries_Per_Connection = 2 with Max_Outbound_Connections = 1:
    4 messages the receiver refuses (550 at RCPT) then 2 it takes go over
    one connection (refusals are not deliveries), and 2 good, 2 refused,
    2 good go over two connections of 2 deliveries each.
Counts are asserted, never durations.
"""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, diag  # noqa: E402

t.netns()

P = 2870
IP = {'agn': '127.0.0.81', 'agh': '127.0.0.82', 'md1': '127.0.0.83', 'md2': '127.0.0.84'}
rcv = {k: t.Receiver(v, 2525, name=k).start() for k, v in IP.items()}
for k in ('agn', 'agh'):
    rcv[k].hold = 1.0
for k in ('md1', 'md2'):
    rcv[k].rcpt_reply = lambda a: ('550 5.1.1 <%s>: no such user' % a if a.startswith('no')
                                   else '250 2.1.5 Ok')


def conf(suspended):
    return '''
Relay_Domains = ( "agn.test" "agh.test" "md1.test" "md2.test" )
Retry_Interval = 1
idle_timeout = 1
Suspend_Delivery = %(susp)s
Domain "agn.test" {
  Gateway = "%(agn)s:2525"
  Max_Outbound_Connections = 8
  connection_allocation_aggressiveness = "normal"
}
Domain "agh.test" {
  Gateway = "%(agh)s:2525"
  Max_Outbound_Connections = 8
  connection_allocation_aggressiveness = "high"
}
Domain "md1.test" {
  Gateway = "%(md1)s:2525"
  Max_Deliveries_Per_Connection = 2
  Max_Outbound_Connections = 1
}
Domain "md2.test" {
  Gateway = "%(md2)s:2525"
  Max_Deliveries_Per_Connection = 2
  Max_Outbound_Connections = 1
}
''' % dict(IP, susp='true' if suspended else 'false') + t.listener('127.0.0.1:%d' % P, t.ESC_ACL)


def send_many(rcpts):
    """One message per recipient (null sender: no bounces) over one SMTP session."""
    s = t.smtp(P)
    s.ehlo('client.test')
    ids = []
    for i, rcpt in enumerate(rcpts):
        s.mail('')
        s.rcpt(rcpt)
        code, resp = s.data(t.message('%s %d' % (rcpt, i)))
        ids.append(t.queue_id(resp) if code == 250 else None)
    s.quit()
    return ids


def finished(d, ids, timeout=40):
    """The D and P lines of `ids`, once each has one or at the timeout (fewer)."""
    def get():
        return [o for o in d.outcomes('DP') if o.qid in ids]
    return t.wait_for(lambda: (lambda x: x if len(x) >= len(ids) else None)(get()),
                      timeout) or get()


d = t.Sluiced(conf(True), name='allocation').start()
ids = {
    'agn': send_many(['n%d@agn.test' % i for i in range(8)]),
    'agh': send_many(['h%d@agh.test' % i for i in range(8)]),
    'md1': send_many(['no%d@md1.test' % i for i in range(4)] +
                     ['ok%d@md1.test' % i for i in range(2)]),
    'md2': send_many(['ok%d@md2.test' % i for i in range(2)] +
                     ['no%d@md2.test' % i for i in range(2)] +
                     ['ok%d@md2.test' % i for i in range(2, 4)]),
}
ok(all(q for v in ids.values() for q in v), 'every message queued (delivery suspended)')
d.reload(conf(False))
for k, v in sorted(ids.items()):
    got = finished(d, v)
    is_(len(got), len(v), '%s.test: each of its %d messages reached its outcome' % (k, len(v)))
for k in rcv:
    t.wait_for(lambda: rcv[k].conns and all(c.closed for c in rcv[k].conns), timeout=10)
    diag('%s.test: connections %s' % (k, [c.msgs for c in rcv[k].conns]))

# ---------------------------------------------------------------- aggressiveness
is_([c.msgs for c in rcv['agh'].conns], [1] * 8,
    'connection_allocation_aggressiveness = "high", a backlog of 8, Max_Outbound_Connections '
    '= 8: 8 connections at once, one message each')
is_(rcv['agh'].max_concurrent, 8, '... all 8 open together')
is_(sorted(c.msgs for c in rcv['agn'].conns), [4, 4],
    'connection_allocation_aggressiveness = "normal", the same backlog: one connection for '
    'every 4 messages, 2 connections of 4')
is_(len(d.outcomes('D', domain='agn.test')), 8, '... all 8 delivered')

# ---------------------------------------------------------------- Max_Deliveries_Per_Connection
is_(len(d.outcomes('P', domain='md1.test')) + len(d.outcomes('P', domain='md2.test')), 6,
    'the 6 refused messages failed (550 at RCPT)')
is_([c.msgs for c in rcv['md1'].conns], [2],
    'Max_Deliveries_Per_Connection = 2: 4 refused then 2 accepted messages go over one '
    'connection (refusals are not deliveries)')
is_(sum(1 for x in rcv['md1'].conns[0].cmds if x.upper().startswith('RCPT')) if
    rcv['md1'].conns else 0, 6, '... which carried all 6 transactions')
is_([c.msgs for c in rcv['md2'].conns], [2, 2],
    '2 accepted, 2 refused, 2 accepted: a connection closes after its 2nd delivery, the next '
    'carries the refusals and 2 deliveries')
is_(d.outcomes('T'), [], 'no T line')
d.stop()
t.done()
