#!/usr/bin/env python3
"""b0014-inbound-throttle: Inbound_Throttle_Messages = "2/1" shares one
token bucket across every session: MAIL FROM is answered only when a token
is there (the client waits, nothing is refused).  Six messages from three
concurrent sessions are all accepted, and never more than the bucket holds
plus the rate in any one-second window (counted from the MAIL answers, not
from wall-clock thresholds)."""
import os
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, status  # noqa: E402

t.netns()

P = 2640
d = t.Sluiced(t.listener('127.0.0.1:%d' % P, t.ESC_ACL) +
              'Relay_Domains = ( "local.test" )\n'
              'Inbound_Throttle_Messages = "2/1"\n').start()

answers = []   # monotonic time of each MAIL answer
replies = []
lock = threading.Lock()


def session():
    c = t.Client(P)
    c.ehlo()
    for _ in range(2):
        r = c.cmd('MAIL FROM:<a@x.test>', timeout=t.DEADLINE)
        with lock:
            answers.append(time.monotonic())
            replies.append(r)
        c.cmd('RCPT TO:<b@local.test>')
        c.cmd('DATA')
        c.send(t.message('throttled') + b'.\r\n')
        with lock:
            replies.append(c.reply())
    c.cmd('QUIT')
    c.close()


threads = [threading.Thread(target=session) for _ in range(3)]
for th in threads:
    th.start()
for th in threads:
    th.join(t.DEADLINE * 2)
is_(len(answers), 6, 'every MAIL was answered')
ok(all(r is not None and r.code == 250 for r in replies),
   'nothing was refused: the throttle delays, it does not reject',
   '\n'.join(str(r) for r in replies))
answers.sort()
# A full bucket (2) plus at most 2 more per second: never more than 4 answers in a 1 s window.
worst = max(sum(1 for b in answers if a <= b < a + 1.0) for a in answers)
ok(worst <= 4, 'at most 4 MAIL answers in any one-second window (saw %d)' % worst)
# Six messages at 2 per second after a full bucket of 2 need at least ~2 s in all.
ok(answers[-1] - answers[0] >= 1.5,
   'the six answers are spread out (%.2f s from first to last)' % (answers[-1] - answers[0]))
is_(len(d.wait_r_lines(None, 6)), 6, 'all six messages are received (R lines)')
d.stop()
t.done()
