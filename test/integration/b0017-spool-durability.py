#!/usr/bin/env python3
"""b0017-spool-durability: group commit, Force_Fsync and _Unsafe_Spool, told
by the spool's counters in `sluicectl summary`.

Three daemons in turn, each fed by 20 concurrent SMTP sessions that end
their DATA together (a barrier) for 8 rounds, delivery suspended:
  - default (Force_Fsync = true): every message committed, syncs > 0, more
    than one message per commit (group commit), no 250 sent before the
    commit covering it returned; and, one session answered at a time, the
    committed count has reached each message before its client got 250;
  - Force_Fsync = false: the same commits, but not one fdatasync or
    directory fsync, and a warning at start;
  - _Unsafe_Spool = true: the warning at start in the paniclog, and every
    250 went out before the sync that covered it.
"""
import os
import re
import subprocess
import sys
import threading

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, diag  # noqa: E402

t.netns()

CTL = os.path.join(t.TOP_BUILDDIR, 'sluicectl')
P = 2940
SESSIONS, ROUNDS = 20, 8


def daemon(name, extra):
    d = t.Sluiced('', name=name)
    d.sock = d.path('control.sock')
    d.write_conf('''
Relay_Domains = ( "local.test" )
Suspend_Delivery = true
Control_Listener = ( "%s" [ 0.0.0.0/0 = ( ALWAYS-ALLOW ) ] )
%s
''' % (d.sock, extra) + t.listener('127.0.0.1:%d' % P, t.ESC_ACL))
    return d.start()


def figures(d):
    r = subprocess.run([CTL, '-s', d.sock, 'summary'], capture_output=True, timeout=t.DEADLINE)
    out = {}
    for k, v in re.findall(r'^(spool [^:]+|received): (\d+)$', r.stdout.decode(), re.M):
        out[k] = int(v)
    return out


def load(tag):
    """SESSIONS sessions, ROUNDS messages each, the ends of DATA sent together.
    Returns the number of 250 replies."""
    bar = threading.Barrier(SESSIONS)
    acks, other = [], []
    lock = threading.Lock()

    def session(n):
        s = conns[n]
        for r in range(ROUNDS):
            s.mail('a@local.test')
            s.rcpt('b%d@local.test' % n)
            s.putcmd('data')
            code, _ = s.getreply()
            if code == 354:
                s.send(t.message('%s %d/%d' % (tag, n, r)))   # all but the final ".\r\n"
            try:
                bar.wait(timeout=t.DEADLINE)
            except threading.BrokenBarrierError:
                pass
            if code == 354:
                s.send(b'.\r\n')
                code, resp = s.getreply()
            with lock:
                if code == 250:
                    acks.append(resp)
                else:
                    other.append('%d/%d: %s' % (n, r, code))
        s.quit()

    # the sessions open one after another; their transactions then run at once
    conns = []
    for n in range(SESSIONS):
        s = t.smtp(P)
        s.ehlo('client.test')
        conns.append(s)
    ths = [threading.Thread(target=session, args=(n,)) for n in range(SESSIONS)]
    for th in ths:
        th.start()
    for th in ths:
        th.join(t.DEADLINE * 3)
    if other:
        diag('%s: not 250: %s' % (tag, other[:5]))
    return len(acks)


TOTAL = SESSIONS * ROUNDS

# ---------------------------------------------------------------- fsync on
d = daemon('fsync', '')
acked = load('fsync')
is_(acked, TOTAL, 'Force_Fsync on: %d messages over %d concurrent sessions get 250'
    % (TOTAL, SESSIONS))
f = figures(d)
diag('fsync on: %s' % f)
is_(f.get('spool messages committed'), TOTAL, 'every one was committed')
ok(f.get('spool syncs', 0) > 0, 'commits call fdatasync (%s syncs)' % f.get('spool syncs'))
ok(0 < f.get('spool commits', 0) < TOTAL,
   'group commit: %s commits for %d messages (%.1f per commit)'
   % (f.get('spool commits'), TOTAL, TOTAL / max(1, f.get('spool commits', 0))))
ok(f.get('spool syncs', 0) <= f.get('spool commits', 0) + f.get('spool directory syncs', 0) + 8,
   'about one fdatasync per commit, not per message (%s syncs)' % f.get('spool syncs'))
is_(f.get('spool acknowledged before sync'), 0, 'no 250 went out before its sync')
ok(not re.search(r'_unsafe_spool is on|Force_Fsync is off', d.paniclog()),
   'no durability warning at start')

# one message at a time: the committed count covers each before its 250
behind = []
c = t.Client(P)
c.ehlo()
for i in range(5):
    c.cmd('MAIL FROM:<a@local.test>')
    c.cmd('RCPT TO:<one@local.test>')
    c.cmd('DATA')
    c.send(t.message('one %d' % i))
    rep = c.cmd('.')
    if rep is not None and rep.code == 250:
        got = figures(d).get('spool messages committed', 0)
        if got < TOTAL + i + 1:
            behind.append((i, got))
c.close()
is_(behind, [], 'each 250 came after the commit that made its message durable')
d.stop()

# ---------------------------------------------------------------- fsync off
d = daemon('nofsync', 'Force_Fsync = false')
acked = load('nofsync')
is_(acked, TOTAL, 'Force_Fsync = false: every message gets 250')
f = figures(d)
diag('fsync off: %s' % f)
is_(f.get('spool messages committed'), TOTAL, 'every one was committed')
ok(f.get('spool commits', 0) > 0, 'commits happen (%s)' % f.get('spool commits'))
is_(f.get('spool syncs'), 0, 'not one fdatasync')
is_(f.get('spool directory syncs'), 0, 'not one fsync of SpoolBase')
is_(f.get('spool acknowledged before sync'), 0, '250 still waits for the commit')
ok(d.wait_log('paniclog', r'Force_Fsync is off'), 'the paniclog warns at start')
d.stop()

# ---------------------------------------------------------------- _Unsafe_Spool
d = daemon('unsafe', '_Unsafe_Spool = true')
ok(d.wait_log('paniclog', r'_unsafe_spool is on: clients get 250 before their message is on '
              r'disk'), 'the paniclog warns at start that 250 comes before the sync')
acked = load('unsafe')
is_(acked, TOTAL, '_Unsafe_Spool: every message gets 250')
ok(t.wait_for(lambda: figures(d).get('spool messages committed') == TOTAL),
   'the messages are committed afterwards', figures(d))
f = figures(d)
diag('unsafe: %s' % f)
ok(f.get('spool syncs', 0) > 0, 'the syncs still happen (%s)' % f.get('spool syncs'))
is_(f.get('spool acknowledged before sync'), TOTAL,
    'every 250 went out before the sync that covered its message')
d.stop()
t.done()
