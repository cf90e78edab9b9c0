#!/usr/bin/env python3
"""d0012-resident: Max_Resident_Active_Queue keeps only so many bodies in memory.

Inside a private network namespace a scripted receiver (sltest.Receiver) on
127.0.0.2:2525 is the Gateway.  Delivery is suspended while messages queue,
then resumed with a reload:
  - res.test, Max_Resident_Active_Queue = 2: of 6 queued messages the last
    4 drop their content from memory (debug log lines), read it back from
    the spool when their turn comes, and arrive byte for byte;
  - zero.test, Max_Resident_Active_Queue = 0: every message drops its content;
  - a message for both domains (its content shared by two queues) is never
    dropped;
  - the default (250) drops nothing here.
"""
import os
import re
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, diag  # noqa: E402

t.netns()

P = 2810
rcv = t.Receiver('127.0.0.2', 2525, name='resident').start()


def conf(suspended):
    return '''
Relay_Domains = ( "res.test" "zero.test" "plain.test" )
Gateway = "127.0.0.2:2525"
Retry_Interval = 1
Suspend_Delivery = %s
Domain "res.test" { Max_Resident_Active_Queue = 2 }
Domain "zero.test" { Max_Resident_Active_Queue = 0 }
''' % ('true' if suspended else 'false') + t.listener('127.0.0.1:%d' % P, t.ESC_ACL)


d = t.Sluiced(conf(True), name='resident').start(['-d', 'debug'])


def dropped(qid):
    return re.search(r'message %s: content dropped from memory' % re.escape(qid), d.paniclog())


def read_back(qid):
    return re.search(r'message %s: content read back from the spool' % re.escape(qid),
                     d.paniclog())


sent = {}


def send(rcpts, tag):
    data = t.message(tag, body=''.join('%s line %d .\r\n' % (tag, i) for i in range(200)))
    q = t.inject(P, 'from@src.test', rcpts, data)
    sent[q] = data
    return q


q_res = [send(['r%d@res.test' % i], 'res %d' % i) for i in range(6)]
q_zero = [send(['z%d@zero.test' % i], 'zero %d' % i) for i in range(2)]
q_both = send(['b@res.test', 'b@zero.test'], 'both domains')
q_plain = [send(['p%d@plain.test' % i], 'plain %d' % i) for i in range(3)]
ok(all(sent), '12 messages queued while delivery is suspended')
ok(t.wait_for(lambda: all(dropped(q) for q in q_res[2:] + q_zero)),
   'the messages past each queue\'s limit drop their content from memory',
   [q for q in q_res[2:] + q_zero if not dropped(q)])
is_([q for q in q_res[:2] if dropped(q)], [],
    'Max_Resident_Active_Queue = 2: the first two keep theirs')
ok(not dropped(q_both), 'a message shared by two queues keeps its content')
is_([q for q in q_plain if dropped(q)], [], 'the default (250) drops nothing here')

ok(d.reload(conf(False)), 'reload: Suspend_Delivery = false')
want = len(q_res) + len(q_zero) + 2 + len(q_plain)
got = t.wait_for(lambda: len(rcv.msgs) >= want and rcv.msgs)
is_(len(rcv.msgs), want, 'every recipient\'s message reached the receiver')
ok(all(read_back(q) for q in q_res[2:] + q_zero),
   'the dropped contents were read back from the spool',
   [q for q in q_res[2:] + q_zero if not read_back(q)])
bad = []
for q, data in sent.items():
    arrived = [m for m in rcv.msgs if m.data.endswith(data)]
    if not arrived:
        bad.append(q)
is_(bad, [], 'each arrived byte for byte (after our Received: header)')
outs = d.wait_outcomes(want, 'D')
is_(len(outs), want, 'one D line per recipient')
sizes = {o.qid: o.size for o in outs}
ok(all(sizes.get(q) == len(m.data) for q in q_res[2:] + q_zero
       for m in rcv.msgs if m.data.endswith(sent[q])),
   'the D lines of dropped messages give the size delivered')
is_(d.outcomes('TP'), [], 'no T or P line')
d.stop()
t.done()
