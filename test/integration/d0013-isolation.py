#!/usr/bin/env python3
"""d0013-isolation: a slow or dead destination does not slow the others.

Inside a private network namespace, scripted receivers (sltest.Receiver):
  - slow.test: its server takes every message but never answers the end of
    data (the transactions hang until Body_Timeout, 600 s);
  - dead.test: nothing listens at its address (every connection refused);
  - fast.test: a normal server.
Forty messages go to slow.test and twenty to dead.test first, then fifty to
fast.test: every fast.test message is delivered (D, retries 0) while the
slow.test transactions still hang and dead.test has only T lines.
"""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, diag  # noqa: E402

t.netns()

P = 2820
IP = {'slow': '127.0.0.2', 'dead': '127.0.0.3', 'fast': '127.0.0.4'}
rcv = {k: t.Receiver(IP[k], 2525, name=k).start() for k in ('slow', 'fast')}
rcv['slow'].data_reply = lambda m: 'HANG'
d = t.Sluiced('''
Relay_Domains = ( "slow.test" "dead.test" "fast.test" )
Retry_Interval = 1
Domain "slow.test" { Gateway = "%(slow)s:2525" }
Domain "dead.test" { Gateway = "%(dead)s:2525" Host_Failure_Retry = 1 }
Domain "fast.test" { Gateway = "%(fast)s:2525" }
''' % IP + t.listener('127.0.0.1:%d' % P, t.ESC_ACL), name='isolation').start()


def send_many(domain, n):
    s = t.smtp(P)
    s.ehlo('client.test')
    ids = []
    for i in range(n):
        s.mail('from@src.test')
        s.rcpt('r%d@%s' % (i, domain))
        code, resp = s.data(t.message('%s %d' % (domain, i)))
        ids.append(t.queue_id(resp) if code == 250 else None)
    s.quit()
    return ids


slow = send_many('slow.test', 40)
dead = send_many('dead.test', 20)
ok(all(slow) and all(dead), '60 messages queued for the slow and the dead destination')
ok(t.wait_for(lambda: sum(1 for c in rcv['slow'].conns if c.closed is None) >= 5),
   'the slow server holds several hanging transactions',
   [c for c in rcv['slow'].conns])
ok(t.wait_for(lambda: len(d.outcomes('T', domain='dead.test')) >= 1),
   'dead.test: T lines (nothing listens)')
fast = send_many('fast.test', 50)
got = d.wait_outcomes(50, 'D', domain='fast.test')
is_(len(got), 50, 'every fast.test message is delivered')
ok(all(o.retries == 0 for o in got), '... each at its first attempt (retries 0)',
   [o for o in got if o.retries])
hanging = sum(1 for c in rcv['slow'].conns if c.closed is None)
ok(hanging >= 5, 'meanwhile the slow transactions still hang (%d connections open)' % hanging)
is_(d.outcomes('D', domain='slow.test') + d.outcomes('D', domain='dead.test'), [],
    'and nothing went to the slow or the dead destination')
is_(d.outcomes('P'), [], 'no P line')
d.stop()
t.done()
