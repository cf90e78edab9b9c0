#!/usr/bin/env python3
"""d0017-max-retries: max_retries auto, none and a number, shown by forced
retries (the console's `flush domain`) to a gateway where nothing listens.

Retry_Interval = 100 and Message_Expiration = 350: the back-off schedule
retries at 100 s and 300 s, then once more when the message is due to
expire (350 s), so auto is a count of 3 (conf.ref.max_retries: auto only
differs from none when retries are forced ahead of the schedule).
  - auto.test (max_retries = auto): the attempts with retry counts 0..3
    are T lines, then a P line "exceeded max retries (3)" and a bounce;
  - none.test (max_retries = none): retries 0..4 are all T lines, no P;
  - two.test (max_retries = 2): the P line follows retry 2.
Retry counts and line kinds are asserted, never a duration.
"""
import os
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, diag  # noqa: E402

t.netns()

P = 2970
DEAD = '127.0.0.1:2979'   # nothing listens: every attempt is refused
CTL = os.path.join(t.TOP_BUILDDIR, 'sluicectl')
DOMAINS = {'auto.test': 'auto', 'none.test': 'none', 'two.test': '2'}

d = t.Sluiced('', name='retries')
sock = os.path.join(d.dir, 'control.sock')
d.write_conf('''
Relay_Domains = ( %s )
Gateway = "%s"
Retry_Interval = 100
Message_Expiration = 350
Host_Failure_Retry = 0
%s
Control_Listener = ( "%s" [ 0.0.0.0/0 = ( ALWAYS-ALLOW ) ] )
''' % (' '.join('"%s"' % x for x in DOMAINS), DEAD,
       '\n'.join('Domain "%s" { max_retries = %s }' % kv for kv in DOMAINS.items()), sock)
    + t.listener('127.0.0.1:%d' % P, t.ESC_ACL))
d.start()


def ctl(*args):
    r = subprocess.run([CTL, '-s', sock] + list(args), capture_output=True, timeout=t.DEADLINE)
    return r.returncode, r.stdout.decode()


qids = {}
for dom in DOMAINS:
    qids[dom] = t.inject(P, 'sender@src.test', ['r@%s' % dom], t.message(dom))
ok(all(qids.values()), 'one message queued for each domain', qids)


def lines(dom):
    return [(o.kind, o.retries) for o in d.outcomes('TP', qid=qids[dom], domain=dom)]


for dom in DOMAINS:
    t.wait_for(lambda: len(lines(dom)) >= 1)
    is_(lines(dom), [('T', 0)], '%s: the first attempt is a T line with retry count 0' % dom)

# Force retries 1..4 (a domain whose message failed is left alone).
for n in range(1, 5):
    for dom in DOMAINS:
        if any(k == 'P' for k, _ in lines(dom)):
            continue
        rc, out = ctl('flush', 'domain', dom)
        ok(rc == 0, 'flush domain %s (retry %d)' % (dom, n), out)
        ok(t.wait_for(lambda: len(lines(dom)) >= n + 1), '%s: retry %d logged' % (dom, n),
           lines(dom))

# The attempt that uses the count up is logged T, then the P line gives up.
is_(lines('auto.test'), [('T', 0), ('T', 1), ('T', 2), ('T', 3), ('P', 3)],
    'auto.test: auto = 3 from Retry_Interval 100 and Message_Expiration 350: retry 3 fails')
p = d.outcomes('P', qid=qids['auto.test'])
ok(p and 'exceeded max retries (3)' in p[0].response, 'auto.test: the P line says why',
   *map(repr, p))
is_(lines('none.test'), [('T', 0), ('T', 1), ('T', 2), ('T', 3), ('T', 4)],
    'none.test: no count: every forced retry is transient (Message_Expiration decides)')
is_(lines('two.test'), [('T', 0), ('T', 1), ('T', 2), ('P', 2)], 'two.test: max_retries = 2')
ok(t.wait_for(lambda: len(d.bounces(qids['auto.test'])) >= 1),
   'auto.test: the failure is in the bouncelog')

d.stop()
t.done()
