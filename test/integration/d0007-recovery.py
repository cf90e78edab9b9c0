#!/usr/bin/env python3
"""d0007-recovery: spool recovery and crash safety of delivery.

Inside a private network namespace, Postfix's smtp-sink on 127.0.0.2:2525
is the Gateway and dumps every transaction (so Message-IDs can be counted).
  - Messages accepted while the sink is down stay queued; sluiced is
    SIGKILLed, the sink started, sluiced started again on the same
    SpoolBase: it reports every one of them to deliver and delivers each
    exactly once (messages for two domains once per domain);
  - messages delivered just before a SIGKILL: after the restart only those
    whose progress was not yet committed go again; the duplicates at the
    sink are counted, reported, and must equal what recovery said it had;
  - after a clean stop nothing is delivered again;
  - finished segments are removed: once everything is delivered the spool
    holds only the active segment.
"""
import os
import re
import sys
from collections import Counter

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, diag  # noqa: E402

t.netns()

P = 2750
sink = t.SmtpSink('127.0.0.2', 2525)
d = t.Sluiced('''
Relay_Domains = ( "a.test" "b.test" )
Gateway = "127.0.0.2:2525"
Retry_Interval = 1
Host_Failure_Retry = 1
''' + t.listener('127.0.0.1:%d' % P, t.ESC_ACL), name='recovery')


def recovery_lines():
    return re.findall(r'spool .*: (\d+) segments, (\d+) messages to deliver, (\d+) finished',
                      d.paniclog())


def start():
    """Start sluiced; returns (segments, messages to deliver) of its recovery line."""
    n = len(recovery_lines())
    d.start()
    got = t.wait_for(lambda: recovery_lines()[n:])
    return tuple(int(x) for x in got[0][:2]) if got else (None, None)


def inject(n, tag, two_domains_every=3):
    """n messages over 2 sessions; every third one for a.test and b.test.
    Returns {qid: (message-id, domains)}."""
    out = {}
    for part in range(2):
        s = t.smtp(P)
        s.ehlo('client.test')
        for i in range(part, n, 2):
            rcpts = ['r%d@a.test' % i] + (['r%d@b.test' % i] if i % two_domains_every == 0 else [])
            data = t.message('%s %d' % (tag, i))
            msgid = re.search(rb'Message-ID: (<[^>]+>)', data).group(1).decode()
            s.mail('from@src.test')
            for r in rcpts:
                s.rcpt(r)
            code, resp = s.data(data)
            if code == 250:
                out[t.queue_id(resp)] = (msgid, len(rcpts))
        s.quit()
    return out


def at_sink(msgs):
    """Transactions per Message-ID at the sink, for the messages `msgs`."""
    want = set(m for m, _ in msgs.values())
    return Counter(m.msgid for m in sink.messages() if m.msgid in want)


# ---------------------------------------------------------------- queued while the sink is down
segs, todo = start()
is_(todo, 0, 'a fresh spool: nothing to deliver')
first = inject(30, 'down')
is_(len(first), 30, '30 messages accepted while the sink is down (10 for two domains)')
rcpts = sum(n for _, n in first.values())
ok(all(d.wait_r_lines(q, n) for q, (_, n) in first.items()), 'their R lines are written')
ok(t.wait_for(lambda: len(d.outcomes('T')) >= 1), 'delivery is failing (T lines)')
is_(d.outcomes('DP'), [], 'nothing delivered, nothing failed for good')
segs_before = d.spool_segments()
d.kill()
sink.start()
n0 = len(d.outcomes('D'))  # before the start: delivery begins at once
segs, todo = start()
is_(todo, 30, 'SIGKILL, then a restart: recovery has the 30 messages to deliver')
got = t.wait_for(lambda: len(d.outcomes('D')) - n0 >= rcpts and d.outcomes('D')[n0:])
is_(len(got or []), rcpts, 'after the restart every recipient is delivered (%d D lines)' % rcpts)
is_(sorted(set(o.qid for o in got or [])), sorted(first), '... of exactly the 30 messages')
counts = at_sink(first)
want = Counter({m: n for m, n in first.values()})
dups = sum(max(0, counts[m] - want[m]) for m in want)
ok(counts == want, 'the sink got each message exactly once per domain (%d transactions, '
   '%d duplicates)' % (sum(counts.values()), dups),
   'missing: %s' % [m for m in want if counts[m] < want[m]])
ok(t.wait_for(lambda: len(d.spool_segments()) == 1 and d.spool_segments() != segs_before),
   'the segment of the crashed run is removed once its messages are delivered: only the '
   'active segment is left', 'before: %s now: %s' % (segs_before, d.spool_segments()))

# ---------------------------------------------------------------- SIGKILL right after deliveries
n1 = len(d.outcomes('D'))  # before the injection: delivery begins at once
second = inject(30, 'delivered')
rcpts2 = sum(n for _, n in second.values())
t.wait_for(lambda: len(d.outcomes('D')) - n1 >= rcpts2)
d.kill()
is_(len(d.outcomes('D')) - n1, rcpts2, 'the next 30 messages are delivered, then SIGKILL at once')
segs, todo = start()
ok(todo is not None and 0 <= todo <= 30,
   'after the restart recovery has %s of them to deliver (delivered, progress not yet '
   'committed)' % todo)
n2 = len(d.outcomes('D'))
again = t.wait_for(lambda: (lambda x: x if len(set(o.qid for o in x)) >= (todo or 0) else None)(
    d.outcomes('D')[n2:]), timeout=t.DEADLINE) if todo else []
sink.wait_count(sink.count())
counts = at_sink(second)
want = Counter({m: n for m, n in second.values()})
missing = [m for m in want if counts[m] < want[m]]
dups_msgs = sum(1 for m in want if counts[m] > want[m])
diag('delivered before the SIGKILL and delivered again after it: %d of 30 messages '
     '(recovery said %s)' % (dups_msgs, todo))
ok(not missing, 'every message that got a 250 is at the sink at least once', missing)
is_(dups_msgs, todo, 'the messages delivered twice are exactly those recovery had to deliver')
ok(set(o.qid for o in again or []) <= set(second),
   'what was delivered again after the restart is among those 30 messages',
   sorted(set(o.qid for o in again or []) - set(second)))
ok(t.wait_for(lambda: len(d.spool_segments()) <= 1),
   'once everything is delivered, at most the active segment is left', d.spool_segments())

# ---------------------------------------------------------------- a clean stop
before = sink.count()
d.stop()
segs, todo = start()
is_(todo, 0, 'after everything was delivered and a clean stop: nothing to deliver')
ok(t.wait_for(lambda: len(d.spool_segments()) <= 1),
   'and the spool holds at most the active segment', d.spool_segments())
is_(sink.count(), before, 'nothing was delivered again')
d.stop()
t.done()
