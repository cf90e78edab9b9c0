#!/usr/bin/env python3
"""b0012-timeouts: the inbound phase timeouts (sluiced(8) OPERATION):
EHLO_Timeout before HELO/EHLO, MailFrom_Timeout between transactions,
Rcptto_Timeout after MAIL, Body_Timeout in DATA and between BDAT chunks,
RSET_Timeout after RSET.  Each daemon shortens one of them to 1 s; a
session waiting in that phase gets 421 4.4.2 and is closed, while sessions
of the same daemon waiting in the other phases are left alone."""
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, like, status  # noqa: E402

t.netns()

PHASES = ['EHLO_Timeout', 'MailFrom_Timeout', 'Rcptto_Timeout', 'Body_Timeout', 'RSET_Timeout']


def to_phase(c, phase):
    """Bring a fresh session into the waiting state of `phase`."""
    if phase == 'EHLO_Timeout':
        return
    c.ehlo()
    if phase == 'MailFrom_Timeout':
        return
    if phase == 'RSET_Timeout':
        c.cmd('RSET')
        return
    c.cmd('MAIL FROM:<a@local.test>')
    if phase == 'Rcptto_Timeout':
        return
    c.cmd('RCPT TO:<b@local.test>')
    c.cmd('DATA')
    c.send(b'Subject: half a message\r\n\r\nand then nothing')


daemons, sessions = {}, {}
for i, ph in enumerate(PHASES):
    port = 2560 + i
    conf = ('Relay_Domains = ( "local.test" )\n%s = 1\n' % ph +
            t.listener('127.0.0.1:%d' % port, t.ESC_ACL))
    daemons[ph] = (t.Sluiced(conf, name=ph).start(), port)

# In every daemon, one session waits in each phase; a BDAT session too.
start = time.monotonic()
for ph, (d, port) in daemons.items():
    for wait_in in PHASES:
        c = t.Client(port)
        to_phase(c, wait_in)
        sessions[(ph, wait_in)] = c
    c = t.Client(port)
    c.ehlo()
    c.cmd('MAIL FROM:<a@local.test>')
    c.cmd('RCPT TO:<b@local.test>')
    c.send('BDAT 5\r\nfirst')
    c.reply()
    sessions[(ph, 'BDAT')] = c
setup = time.monotonic() - start

for ph in PHASES:
    c = sessions[(ph, ph)]
    t0 = time.monotonic()
    r = c.reply(timeout=t.DEADLINE)
    status(r, '421 4.4.2', '%s = 1: a session waiting in that phase gets 421 4.4.2' % ph)
    like(r and r.last, r'^421 4\.4\.2 %s .*timeout' % t.HOSTNAME, '%s: the 421 names the host' % ph)
    ok(c.closed(), '%s: and the connection is closed' % ph)
    ok(time.monotonic() - t0 < 10, '%s: within a few seconds' % ph)
c = sessions[('Body_Timeout', 'BDAT')]
status(c.reply(timeout=t.DEADLINE), '421 4.4.2', 'Body_Timeout = 1: also between BDAT chunks')
ok(c.closed(), 'Body_Timeout between BDAT chunks: the connection is closed')

# Every timeout above has fired; the others are still 300 s (30 for RSET).
# Give the shortened ones another second to misfire on the wrong phase.
time.sleep(max(0.0, 2.5 - (time.monotonic() - start - setup)))
for ph in PHASES:
    for wait_in in PHASES + ['BDAT']:
        if wait_in == ph or (ph == 'Body_Timeout' and wait_in == 'BDAT'):
            continue
        c = sessions[(ph, wait_in)]
        r = c.reply(timeout=0.05)
        ok(r is None and not c.eof, '%s = 1 leaves a session waiting in the %s phase alone'
           % (ph, wait_in.replace('_Timeout', '')), 'got %s, closed %s' % (r, c.eof))
for c in sessions.values():
    c.close()
for d, _ in daemons.values():
    d.stop()
t.done()
