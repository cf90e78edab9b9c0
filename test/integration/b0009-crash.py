#!/usr/bin/env python3
"""b0009-crash: durability and stopping.  A message that got its 250 is in
the spool after SIGKILL: sluiced restarted on the same SpoolBase reports it
in its paniclog ("spool ...: N segments, M messages to deliver"), exactly
as many as were accepted, while a message whose DATA was cut off (the
client dropped the connection, or the daemon died mid-body) is not.  A
SIGTERM while a client is in DATA gives it 421 4.3.2 (or its 250 if the
message was complete) and sluiced exits 0."""
import os
import re
import signal
import sys
import threading

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, like, status  # noqa: E402

t.netns()

P = 2630
d = t.Sluiced('Relay_Domains = ( "local.test" )\n' + t.listener('127.0.0.1:%d' % P, t.ESC_ACL),
              name='crash')


def start_and_count():
    """Start sluiced and return M of its spool recovery line (None if absent)."""
    n_before = len(spool_lines())
    d.start()
    line = t.wait_for(lambda: spool_lines()[n_before:] and spool_lines()[n_before])
    m = re.search(r'(\d+) segments, (\d+) messages to deliver', line or '')
    return int(m.group(2)) if m else None, line


def spool_lines():
    return [ln for ln in d.paniclog().splitlines() if re.search(r'\] spool .*: \d+ segments', ln)]


def queue(n, rcpts=('b@local.test',)):
    """Queue n messages on one connection; returns their ids (None where refused)."""
    ids = []
    s = t.smtp(P)
    s.ehlo()
    for i in range(n):
        s.mail('a@local.test')
        for r in rcpts:
            s.rcpt(r)
        code, resp = s.data(t.message('crash %d' % i, body='body %d\r\n' % i * 50))
        ids.append(t.queue_id(resp) if code == 250 else None)
    s.close()
    return ids


def cut_off():
    """A transaction whose DATA stops in the middle; the client hangs up."""
    c = t.Client(P)
    c.ehlo()
    c.cmd('MAIL FROM:<a@local.test>')
    c.cmd('RCPT TO:<cut@local.test>')
    c.cmd('DATA')
    c.send(t.message('cut off', body='half of it\r\n' * 100)[:700])
    return c


m, line = start_and_count()
is_(m, 0, 'a fresh spool: 0 messages to deliver')
like(line, r'spool %s: \d+ segments, 0 messages to deliver' % re.escape(d.path('spool')),
     'the paniclog names the SpoolBase')

# ---------------------------------------------------------------- SIGKILL right after 250
c = cut_off()
c.close()
ids = queue(2) + queue(1, rcpts=('b@local.test', 'c@local.test'))
ok(all(ids), 'three messages queued (250 with an id each)', 'ids: %s' % ids)
mid = cut_off()            # still in DATA when the daemon dies
d.kill()
mid.close()
m, line = start_and_count()
is_(m, 3, 'after SIGKILL right after the 250s: the restarted sluiced finds the 3 messages '
    '(not the two cut off mid-DATA)')
ok(m is not None and m >= 1, 'at least one message survived the crash', line)

ids2 = queue(1)
ok(ids2[0] and ids2[0] not in ids, 'after the restart a new message gets a new id', ids2)
d.kill()
m, line = start_and_count()
is_(m, 4, 'a second SIGKILL: 4 messages to deliver')

# ---------------------------------------------------------------- many clients at once
# Concurrent sessions share group commits; every 250 must still be durable.
results = []
threads = [threading.Thread(target=lambda: results.extend(queue(5))) for _ in range(10)]
for th in threads:
    th.start()
for th in threads:
    th.join(t.DEADLINE * 2)
ok(len(results) == 50 and all(results) and len(set(results)) == 50,
   '10 concurrent clients x 5 messages: 50 distinct queue ids', 'ids: %s' % results)
ids50 = set(results)


def r_of_50():
    return [f for f in d.r_lines() if f[1] in ids50]


t.wait_for(lambda: len(r_of_50()) >= 50)
is_(len(r_of_50()), 50, 'and 50 R lines')
d.kill()
m, line = start_and_count()
is_(m, 54, 'SIGKILL after 50 concurrent messages: 54 messages to deliver')

# ---------------------------------------------------------------- SIGTERM while clients wait
idle = t.Client(P)
status(idle.ehlo(), '250', 'a client idle after EHLO')
indata = t.Client(P)
indata.ehlo()
indata.cmd('MAIL FROM:<a@local.test>')
indata.cmd('RCPT TO:<b@local.test>')
status(indata.cmd('DATA'), '354', 'a client in the middle of DATA')
indata.send(b'Subject: unfinished\r\n\r\nsome of the body\r\n')
# one more client completes its message as the signal arrives: 250 or 421, never silence
racer = t.Client(P)
racer.ehlo()
racer.cmd('MAIL FROM:<a@local.test>')
racer.cmd('RCPT TO:<b@local.test>')
racer.cmd('DATA')
racer.send(t.message('racer'))
d.proc.send_signal(signal.SIGTERM)
racer.send(b'.\r\n')
r = indata.reply()
status(r, '421 4.3.2', 'SIGTERM: the client in DATA gets 421 4.3.2')
like(r and r.last, r'^421 4\.3\.2 %s ' % t.HOSTNAME, 'the 421 names the host')
ok(indata.closed(), 'and its connection is closed')
status(idle.reply(), '421 4.3.2', 'SIGTERM: the idle client gets 421 4.3.2')
ok(idle.closed(), 'and its connection is closed')
rr = racer.reply()
ok(rr is not None and rr.status in ('250 2.0.0', '421 4.3.2'),
   'SIGTERM: a client finishing its message gets its 250 or 421 4.3.2', str(rr))
racer_ok = rr is not None and rr.code == 250
for x in (idle, indata, racer):
    x.close()
d.stop()   # asserts exit 0 and a clean stderr
ok(not os.path.exists(d.path('sluiced.pid')), 'the pidfile is removed')
m, line = start_and_count()
is_(m, 55 if racer_ok else 54, 'after the clean stop: the spool holds every message that got a '
    '250 (%s), not the unfinished one' % ('racer included' if racer_ok else 'racer refused'))
d.stop()
t.done()
