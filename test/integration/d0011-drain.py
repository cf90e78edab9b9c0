#!/usr/bin/env python3
"""d0011-drain: a transaction in flight when sluiced is told to stop.

Inside a private network namespace a scripted receiver (sltest.Receiver)
on 127.0.0.2:2525 is the Gateway; it holds its answer to the end of data.
Another on 127.0.0.3 keeps an idle cached connection (idle_timeout = 60).
  - SIGTERM while the receiver holds the answer (2 s): sluiced waits for
    it, logs the D line, says QUIT, exits 0; after a restart recovery has
    nothing to deliver and the receiver never sees the message again;
  - idle cached connections are closed with QUIT at the stop;
  - a receiver that never answers the end of data: the drain gives up
    after its budget (5 s), sluiced still exits 0, and the message, not
    finished, is delivered after the restart.
"""
import os
import re
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, diag  # noqa: E402

t.netns()

P = 2800
rcv = t.Receiver('127.0.0.2', 2525, name='drain').start()
rcv_idle = t.Receiver('127.0.0.3', 2525, name='idle').start()
d = t.Sluiced('''
Relay_Domains = ( "drain.test" "idle.test" )
Gateway = "127.0.0.2:2525"
Domain "idle.test" { Gateway = "127.0.0.3:2525" idle_timeout = 60 }
Retry_Interval = 1
''' + t.listener('127.0.0.1:%d' % P, t.ESC_ACL), name='drain')


def recovery_lines():
    return re.findall(r'spool .*: (\d+) segments, (\d+) messages to deliver', d.paniclog())


def start():
    """Start sluiced; the number of messages its recovery had to deliver."""
    n = len(recovery_lines())
    d.start()
    got = t.wait_for(lambda: recovery_lines()[n:])
    return int(got[0][1]) if got else None


def in_data(conn_count):
    """The newest connection after `conn_count` that has sent DATA."""
    def f():
        for c in rcv.conns[conn_count:]:
            if 'DATA' in [x.split(' ')[0].upper() for x in c.cmds]:
                return c
        return None
    return t.wait_for(f)


is_(start(), 0, 'a fresh spool')

# ---------------------------------------------------------------- a cached idle connection
q_idle = t.inject(P, 'from@src.test', ['a@idle.test'], t.message('idle first'))
ok(q_idle and d.wait_outcomes(1, 'D', qid=q_idle), 'a first message is delivered')
idle_conn = rcv_idle.conns[-1] if rcv_idle.conns else None

# ---------------------------------------------------------------- SIGTERM during a transaction
rcv.hold = 2.0
n_conns = len(rcv.conns)
q = t.inject(P, 'from@src.test', ['b@drain.test'], t.message('in flight at stop'))
c = in_data(n_conns)
ok(c is not None, 'the receiver has the message and holds its answer', rcv.conns)
time.sleep(0.3)
t0 = time.monotonic()
d.stop()
diag('the stop took %.2f s' % (time.monotonic() - t0))
got = d.outcomes('DTP', qid=q)
ok(len(got) == 1 and got[0].kind == 'D',
   'the held answer came during the stop: a D line, not an aborted transaction', *map(repr, got))
ok(c is not None and c.quit, '... and then QUIT on that connection', c and c.cmds)
ok(idle_conn is not None and idle_conn.quit and not idle_conn.closed_by_us,
   'the idle cached connection was closed with QUIT', idle_conn and idle_conn.cmds)
rcv.hold = 0.0
msgs_before = len(rcv.msgs)
is_(start(), 0, 'after the restart recovery has nothing to deliver (the outcome was spooled)')
time.sleep(1.5)  # a retry would come within Retry_Interval (1 s)
is_(len(rcv.msgs), msgs_before, 'the receiver never sees that message again')

# ---------------------------------------------------------------- a receiver that never answers
rcv.data_reply = lambda m: 'HANG'
n_conns = len(rcv.conns)
q2 = t.inject(P, 'from@src.test', ['c@drain.test'], t.message('never answered'))
c = in_data(n_conns)
ok(c is not None, 'a receiver that never answers the end of data has the message', rcv.conns)
time.sleep(0.3)
t0 = time.monotonic()
d.stop()
took = time.monotonic() - t0
diag('the stop took %.2f s' % took)
ok(took >= 4.5, 'the drain waited its budget (5 s) for the answer', took)
ok(re.search(r'still in flight after 5000 ms', d.paniclog()),
   'the paniclog says the drain gave up on transactions in flight')
is_(d.outcomes('D', qid=q2), [], 'no D line for it')
rcv.data_reply = lambda m: '250 2.0.0 Ok: queued'
is_(start(), 1, 'after the restart recovery has the message to deliver')
ok(d.wait_outcomes(1, 'D', qid=q2), '... and delivers it')
is_(d.outcomes('P'), [], 'no P line in the whole run')
d.stop()
t.done()
