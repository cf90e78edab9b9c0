#!/usr/bin/env python3
"""d0024-drop-body: drop_body_after_trans_fail frees the body of a message
that keeps failing transiently.

A receiver answers 451 to every recipient at first; Retry_Interval = 1.
  - Domain "drop.test" { drop_body_after_trans_fail = 2 }: after its second
    transient failure the message's content is dropped from memory (the
    debug log says so), not after its first;
  - "keep.test" uses the default 3: after two failures it still holds its
    content;
  - once the receiver takes mail, both arrive with their bodies intact (the
    dropped one read back from the spool).
"""
import os
import re
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_  # noqa: E402

t.netns()

P = 2880
rcv = t.Receiver('127.0.0.2', 2525, name='dropbody').start()
rcv.rcpt_reply = lambda a: '451 4.3.0 try later'

CONF = '''
Relay_Domains = ( "drop.test" "keep.test" )
Gateway = "127.0.0.2:2525"
Retry_Interval = 1
Domain "drop.test" { drop_body_after_trans_fail = 2 }
''' + t.listener('127.0.0.1:%d' % P, t.ESC_ACL)

d = t.Sluiced(CONF, name='dropbody').start(['-d', 'debug'])


def dropped(qid):
    m = re.search(r'message %s: content dropped from memory after (\d+) transient failures'
                  % re.escape(qid), d.paniclog())
    return int(m.group(1)) if m else None


def failures(qid):
    return len(d.outcomes('T', qid=qid))


body = {}


def send(rcpt, tag):
    data = t.message(tag, body=''.join('%s line %d .\r\n' % (tag, i) for i in range(100)))
    q = t.inject(P, 'from@src.test', [rcpt], data)
    body[q] = data
    return q


q_drop = send('a@drop.test', 'drop')
q_keep = send('b@keep.test', 'keep')
ok(q_drop and q_keep, 'two messages queued')
ok(t.wait_for(lambda: failures(q_drop) >= 1), 'the first fails transiently')
ok(dropped(q_drop) is None, 'after one failure it keeps its content')
ok(t.wait_for(lambda: dropped(q_drop) is not None), 'later its content is dropped')
is_(dropped(q_drop), 2, 'drop_body_after_trans_fail = 2: dropped after the second failure')
ok(t.wait_for(lambda: failures(q_keep) >= 2), 'the other has failed twice too')
time.sleep(0.2)
is_(dropped(q_keep), None, 'the default (3): after two failures it still holds its content')

rcv.rcpt_reply = lambda a: '250 2.1.5 Ok'
ok(t.wait_for(lambda: len(rcv.msgs) >= 2, timeout=30), 'once the receiver takes mail, both arrive')
for m in rcv.msgs:
    tag = 'drop' if 'Subject: drop' in m.data.decode('latin-1', 'replace') else 'keep'
    ok(('%s line 99 .' % tag).encode() in m.data, '%s: the body arrives whole' % tag)
ok(re.search(r'message %s: content read back from the spool' % re.escape(q_drop),
             d.paniclog()), 'the dropped body was read back from the spool')

d.stop()
t.done()
