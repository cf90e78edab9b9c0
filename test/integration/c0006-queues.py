#!/usr/bin/env python3
"""c0006-queues: the console's queue commands, through sluicectl.

Inside a private network namespace, sluiced relays four domains to two
scripted receivers (Retry_Interval = 3600, so a deferred message stays
delayed until the console says otherwise):
  slow.test, gone.test -> 127.0.0.2:2525 (answers RCPT with 451 at first)
  ok.test, hold.test   -> 127.0.0.3:2525 (accepts)
Checked, each with its output:
  - delayed N / active N: rows per domain over the threshold and the totals;
  - showqueue (default binding, binding all, a limit,offset window), mailq;
  - domain D: routes, queue counts, failures, suspension;
  - message details (metadata; body read back from the spool), message
    retry (one more attempt at once), message fail quiet (no bounce);
  - flush domain D: every delayed message of D is tried at once;
  - fail domain D: what is queued fails, one bounce per message;
  - suspend domain / resume domain: held, then delivered;
  - show outbound: a connection in the middle of a transaction; show
    inbound: a client session after MAIL FROM;
  - summary reset; usage errors; commands queued behind a query in one
    session answer in order.
"""
import os
import re
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, like, diag  # noqa: E402

t.netns()

CTL = os.path.join(t.TOP_BUILDDIR, 'sluicectl')
P = 2870
slow = t.Receiver('127.0.0.2', 2525, name='slow')
slow.rcpt_reply = lambda a: '451 4.3.0 try again later'
slow.start()
good = t.Receiver('127.0.0.3', 2525, name='good')
good.start()

d = t.Sluiced('', name='queues')
sock = os.path.join(d.dir, 'control.sock')
d.write_conf('''
Relay_Domains = ( "slow.test" "gone.test" "ok.test" "hold.test" )
Retry_Interval = 3600
Domain "slow.test" { Gateway = "127.0.0.2:2525" }
Domain "gone.test" { Gateway = "127.0.0.2:2525" }
Domain "ok.test" { Gateway = "127.0.0.3:2525" }
Domain "hold.test" { Gateway = "127.0.0.3:2525" }
Control_Listener = ( "%s" [ 0.0.0.0/0 = ( ALWAYS-ALLOW ) ] )
''' % sock + t.listener('127.0.0.1:%d' % P, t.ESC_ACL))
d.start()


def ctl(*args, stdin=None):
    r = subprocess.run([CTL, '-s', sock] + list(args), input=stdin, capture_output=True,
                       timeout=t.DEADLINE)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def rcpt_cmds(receiver, addr):
    return sum(1 for c in list(receiver.conns) for cmd in list(c.cmds)
               if cmd.upper().startswith('RCPT TO:<%s>' % addr.upper()))


SENDER = 'from@ok.test'
qids = {}
for i in range(3):
    qids['s%d' % i] = t.inject(P, SENDER, ['r%d@slow.test' % i], t.message('slow %d' % i))
for i in range(2):
    qids['g%d' % i] = t.inject(P, SENDER, ['r%d@gone.test' % i], t.message('gone %d' % i))
ok(all(qids.values()), 'five messages accepted', qids)
ok(t.wait_for(lambda: len(d.outcomes('T')) >= 5, timeout=30),
   'each got its 451 (five T lines)', d.outcomes())
ok(t.wait_for(lambda: re.search(r'^delayed queue: 5$', ctl('summary')[1], re.M)),
   'summary: five delayed', ctl('summary')[1])

# ---------------------------------------------------------------- delayed, active
rc, out, err = ctl('delayed', '0')
ok(rc == 0 and re.search(r'^Domain: +slow\.test  C: +\d+  A: +0  D: +3  S: +0$', out, re.M) and
   re.search(r'^Domain: +gone\.test  C: +\d+  A: +0  D: +2  S: +0$', out, re.M) and
   re.search(r'^ +Total:  C: +\d+  A: +0  D: +5  S: +0$', out, re.M),
   'delayed 0: a row per domain (C/A/D/S) and the totals', rc, out, err)
rc, out, err = ctl('delayed', '2')
ok(rc == 0 and 'slow.test' in out and 'gone.test' not in out and 'Total:' in out,
   'delayed 2: only the domain with more than 2', out)
rc, out, err = ctl('active', '0')
ok(rc == 0 and 'Domain:' not in out and re.search(r'Total:.*D: +5', out),
   'active 0: no domain has active messages; the totals still count all', out)

# ---------------------------------------------------------------- showqueue, mailq
rc, out, err = ctl('showqueue', 'slow.test')
entries = re.findall(r'^\[delayed/default\] (\S+) Created: \d+\n  From: <from@ok\.test> '
                     r'To: <(r\d@slow\.test)>$', out, re.M)
is_(sorted(e[0] for e in entries), sorted(qids['s%d' % i] for i in range(3)),
    'showqueue slow.test: its three delayed messages, sender and recipient')
rc, out, err = ctl('showqueue', 'slow.test', '1,1')
ok(rc == 0 and out.count('[delayed/default]') == 1 and
   '3 messages queued for slow.test; 1 shown' in out, 'showqueue D 1,1: a window of one', out)
rc, out, err = ctl('showqueue', 'binding', 'all', 'gone.test')
is_(out.count('[delayed/default]'), 2, 'showqueue binding all gone.test: both')
rc, out, err = ctl('showqueue', 'binding', 'other', 'gone.test')
ok(rc == 0 and 'nothing queued for gone.test' in out, 'showqueue of a binding with nothing', out)
rc, out, err = ctl('mailq')
ok(rc == 0 and out.count('[delayed/default]') == 5 and '5 messages queued; 5 shown' in out,
   'mailq: all five', out)
rc, out, err = ctl('mailq', '2,1')
ok(rc == 0 and out.count('[delayed/default]') == 2 and '5 messages queued; 2 shown' in out,
   'mailq 2,1: two of five', out)

# ---------------------------------------------------------------- domain
rc, out, err = ctl('domain', 'slow.test')
diag(out)
ok(rc == 0 and "Domain 'slow.test' (binding default)" in out and
   re.search(r'^    Delayed: 3$', out, re.M) and '127.0.0.2:2525' in out and
   re.search(r'^  Deliveries: 0$', out, re.M), 'domain slow.test: routes, queue, counts', out)
rc, out, err = ctl('domain', 'SLOW.test.')
ok("Domain 'slow.test'" in out, 'domain: any case, a trailing dot', out)
rc, out, err = ctl('domain', 'never.test')
ok(rc == 0 and "Domain 'never.test': nothing queued" in out, 'domain of an unknown domain', out)

# ---------------------------------------------------------------- message details, retry
q0 = qids['s0']
rc, out, err = ctl('message', 'details', q0)
diag(out)
ok(rc == 0 and re.search(r'^Message: %s$' % re.escape(q0), out, re.M) and
   re.search(r'Sender: from@ok\.test$', out, re.M) and
   re.search(r'Recipient: r0@slow\.test$', out, re.M) and
   re.search(r'\[delayed/default\] Retries: 1 Next Attempt: \d{4}-', out) and
   re.search(r'Received Via: esmtp 127\.0\.0\.1$', out, re.M),
   'message details: the metadata', out)
rc, out, err = ctl('message', 'details', 'body', q0)
ok(rc == 0 and 'Subject: slow 0' in out and 'Received: ' in out and 'Message:' not in out,
   'message details body: the message as spooled', out[:400])
rc, out, err = ctl('message', 'details', 'full', q0)
ok(rc == 0 and out.startswith('Message: ') and 'Subject: slow 0' in out,
   'message details full: both', out[:200])
before = rcpt_cmds(slow, 'r0@slow.test')
rc, out, err = ctl('message', 'retry', q0)
is_((rc, out), (0, 'Message requeued for delivery\n'), 'message retry')
ok(t.wait_for(lambda: rcpt_cmds(slow, 'r0@slow.test') > before and len(d.outcomes('T')) >= 6),
   '... it is tried again at once (and deferred again)', before, rcpt_cmds(slow, 'r0@slow.test'))
rc, out, err = ctl('message', 'retry', 'NOSUCH-ID')
ok(rc == 1 and 'not queued' in err, 'message retry of an unknown id: an error', rc, out, err)

# ---------------------------------------------------------------- message fail quiet, fail domain
bounces0 = int(re.search(r'^bounces: (\d+)$', ctl('summary')[1], re.M).group(1))
rc, out, err = ctl('message', 'fail', 'quiet', qids['g0'])
ok(rc == 0 and 'failed: 1 recipient (no bounce)' in out, 'message fail quiet', rc, out, err)
ok(t.wait_for(lambda: [o for o in d.outcomes('P', qid=qids['g0'])
                       if '554 5.0.0 manually failed' in o.response]),
   '... a P line "554 5.0.0 manually failed"', d.outcomes('P'))
rc, out, err = ctl('fail', 'domain', 'gone.test')
ok(rc == 0 and 'gone.test purged, 1 messages failed.' in out, 'fail domain gone.test', out, err)
ok(t.wait_for(lambda: [o for o in d.outcomes('P', qid=qids['g1'])
                       if 'Message manually purged' in o.response]),
   '... its last message failed: "Message manually purged."', d.outcomes('P'))
ok(t.wait_for(lambda: any(m.sender == '' and m.rcpts == [SENDER] for m in list(good.msgs))),
   '... and its sender got a bounce', good.msgs)
time.sleep(0.5)
like(ctl('summary')[1], r'^bounces: %d$' % (bounces0 + 1), 'one bounce in all: none for the '
     'quiet failure')
rc, out, err = ctl('showqueue', 'gone.test')
ok('nothing queued for gone.test' in out, 'gone.test is empty now', out)

# ---------------------------------------------------------------- flush domain
slow.rcpt_reply = lambda a: '250 2.1.5 Ok'
rc, out, err = ctl('flush', 'domain', 'slow.test')
is_((rc, out), (0, 'slow.test flushed.  3 messages requeued.\n'), 'flush domain slow.test')
ok(t.wait_for(lambda: len(slow.msgs) >= 3), '... the three are delivered at once', slow.msgs)
ok(t.wait_for(lambda: 'slow.test' not in ctl('delayed', '0')[1]), '... and nothing is delayed',
   ctl('delayed', '0')[1])
rc, out, err = ctl('flush', 'domain', 'all')
ok(rc == 0 and 'all domains flushed.  0 messages requeued.' in out, 'flush domain all', out)

# ---------------------------------------------------------------- suspend, resume
rc, out, err = ctl('suspend', 'domain', 'hold.test')
ok(rc == 0 and 'hold.test suspended' in out, 'suspend domain hold.test', out, err)
held = t.inject(P, SENDER, ['x@hold.test'], t.message('held'))
ok(t.wait_for(lambda: re.search(r'Domain: +hold\.test .* A: +1 ', ctl('active', '0')[1])),
   'active 0: the message to hold.test waits in the active queue', ctl('active', '0')[1])
time.sleep(1.0)
ok(not any('x@hold.test' in m.rcpts for m in list(good.msgs)), '... and is not delivered')
like(ctl('domain', 'hold.test')[1], r"Domain 'hold\.test' \(binding default\) \[suspended\]",
     'domain hold.test says [suspended]')
rc, out, err = ctl('resume', 'domain', 'hold.test')
ok(rc == 0 and 'hold.test resumed (1 messages queued)' in out, 'resume domain hold.test', out)
ok(t.wait_for(lambda: any('x@hold.test' in m.rcpts for m in list(good.msgs))),
   '... and it is delivered')

# ---------------------------------------------------------------- show outbound
good.hold = 4.0
threading.Thread(target=t.inject, args=(P, SENDER, ['y@ok.test'], t.message('slowly')),
                 daemon=True).start()
ok(t.wait_for(lambda: re.search(r'^\d+: \[outbound/reading confirmation\] ok\.test IPv4 '
                                r'127\.0\.0\.3 ', ctl('show', 'outbound')[1], re.M)),
   'show outbound: the connection waiting for the end-of-data reply', ctl('show', 'outbound'))
good.hold = 0.0

# ---------------------------------------------------------------- show inbound
c = t.Client(P)
c.ehlo()
c.cmd('MAIL FROM:<in@ok.test>')
rc, out, err = ctl('show', 'inbound')
ok(rc == 0 and re.search(r'^\d+: \[inbound/esmtp\] IPv4 127\.0\.0\.1:%d after MAIL FROM '
                         r'\(for [\d.]+s\) session \S+$' % c.local_port, out, re.M),
   'show inbound: the open session, after MAIL FROM', c.local_port, out)
c.close()

# ---------------------------------------------------------------- errors, sessions, summary reset
for args, want in ((('showqueue',), 'usage: showqueue'), (('active', 'x'), 'usage: active'),
                   (('flush', 'domain'), 'usage: flush domain'),
                   (('message', 'details', 'all', 'x', 'y'), 'usage: message details')):
    rc, out, err = ctl(*args)
    ok(rc == 1 and want in err, '%s: a usage error' % ' '.join(args), rc, out, err)
rc, out, err = ctl(stdin=b'delayed\nversion\nmailq\npid\nquit\n')
ok(rc == 0 and out.index('Total:') < out.index('sluiced ') < out.index('queued') <
   out.index('%d\n' % d.proc.pid) and out.endswith('bye\n'),
   'a session: replies in the order of the commands, queries included', out)
rc, out, err = ctl('summary', 'reset')
is_((rc, out), (0, 'statistics cleared.\n'), 'summary reset')
out = ctl('summary')[1]
ok(re.search(r'^received: 0$', out, re.M) and re.search(r'^delivered: 0$', out, re.M) and
   re.search(r'^counted since: \d{4}-\d\d-\d\d ', out, re.M),
   '... counts start from zero', out)
t.inject(P, SENDER, ['z@ok.test'], t.message('after reset'))
like(ctl('summary')[1], r'^received: 1$', '... and count on')
d.stop()
t.done()
