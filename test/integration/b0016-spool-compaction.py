#!/usr/bin/env python3
"""b0016-spool-compaction: live messages of mostly-dead segments are copied
forward, so a few long-deferred messages do not keep old segments on disk.

Inside a private network namespace a scripted receiver (sltest.Receiver) on
127.0.0.2:2525 is the Gateway; it answers 450 to every recipient at
slow.test.  Spool_Segment_Size = 64k, so 120 messages of about 2 KiB fill
several segments; three of them are for slow.test, spread over the first
segments.  slow.test has Max_Resident_Active_Queue = 0: delivery keeps no
body of it in memory and reads each back from the spool, by the location
it was given at reception, before every attempt.
  - they are queued while delivery is suspended, then a reload lets it
    run; once the fast.test messages are delivered, the segments of the
    injection are removed (but the active one) while the slow messages are
    still queued: `summary` counts them copied forward, and the spool holds
    at most two segments;
  - a retry (flush domain) reads their bodies back through their old
    locations (the debug log says so, no read fails) and the receiver sees
    each recipient again;
  - two of them are then accepted: delivered once each, byte for byte;
  - SIGKILL, restart: recovery finds the third in its copied location,
    and it is delivered exactly once.
"""
import os
import re
import subprocess
import sys
from collections import Counter

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, diag  # noqa: E402

t.netns()

CTL = os.path.join(t.TOP_BUILDDIR, 'sluicectl')
P = 2920
SEG = 64 * 1024
rcv = t.Receiver('127.0.0.2', 2525, name='compaction')
accept_slow = set()
rcv.rcpt_reply = lambda a: ('450 4.2.0 come back later'
                            if a.endswith('@slow.test') and a not in accept_slow
                            else '250 2.1.5 Ok')
rcv.start()

d = t.Sluiced('', name='compaction')
sock = d.path('control.sock')


def conf(suspended):
    return '''
Relay_Domains = ( "fast.test" "slow.test" )
Gateway = "127.0.0.2:2525"
Retry_Interval = 3600
Suspend_Delivery = %s
Spool_Segment_Size = 64k
Domain "slow.test" { Max_Resident_Active_Queue = 0 }
Control_Listener = ( "%s" [ 0.0.0.0/0 = ( ALWAYS-ALLOW ) ] )
''' % ('true' if suspended else 'false', sock) + t.listener('127.0.0.1:%d' % P, t.ESC_ACL)


d.write_conf(conf(True))


def ctl(*args):
    r = subprocess.run([CTL, '-s', sock] + list(args), capture_output=True, timeout=t.DEADLINE)
    return r.stdout.decode()


def summary(field):
    m = re.search(r'^%s: (\d+)$' % re.escape(field), ctl('summary'), re.M)
    return int(m.group(1)) if m else None


def spool_bytes():
    """Disk space the segment files take (allocated blocks)."""
    return sum(os.stat(d.path('spool', f)).st_blocks * 512 for f in d.spool_segments())


def recovery_lines():
    return re.findall(r'spool .*: (\d+) segments, (\d+) messages to deliver', d.paniclog())


def rcpt_cmds(addr):
    return sum(1 for c in list(rcv.conns) for cmd in list(c.cmds)
               if cmd.upper().startswith('RCPT TO:<%s>' % addr.upper()))


d.start(['-d', 'debug'])

# ---------------------------------------------------------------- fill segments
N, SLOW_AT = 120, (3, 23, 43)
body = ''.join('line %04d of a message long enough to fill segments quickly\r\n' % i
               for i in range(30))
sent = {}      # qid -> (rcpt, data)
slow = []      # qids of the slow.test messages, in order
s = t.smtp(P)
s.ehlo('client.test')
for i in range(N):
    rcpt = ('s%d@slow.test' if i in SLOW_AT else 'f%d@fast.test') % i
    data = t.message('compaction %d' % i, body=body)
    s.mail('from@src.test')
    s.rcpt(rcpt)
    code, resp = s.data(data)
    if code == 250:
        q = t.queue_id(resp)
        sent[q] = (rcpt, data)
        if i in SLOW_AT:
            slow.append(q)
s.quit()
is_(len(sent), N, '%d messages accepted, %d of them for slow.test' % (N, len(SLOW_AT)))
segs_after_inject = d.spool_segments()
ok(len(segs_after_inject) >= 4, 'Spool_Segment_Size = 64k: they fill %d segments'
   % len(segs_after_inject), segs_after_inject)
bytes_after_inject = spool_bytes()
ok(d.reload(conf(False)), 'reload: Suspend_Delivery = false, delivery starts')

fast_cnt = N - len(SLOW_AT)
got = d.wait_outcomes(fast_cnt, 'D', domain='fast.test', timeout=40)
is_(len(got), fast_cnt, 'every fast.test message is delivered')
ok(t.wait_for(lambda: len(d.outcomes('T', domain='slow.test')) >= len(SLOW_AT)),
   'the slow.test messages are deferred (T lines)')

# ---------------------------------------------------------------- compaction
old = segs_after_inject[:-1]   # the last one may still be the active segment
ok(t.wait_for(lambda: not set(old) & set(d.spool_segments()), timeout=30),
   'the segments of the injection are removed although they held deferred messages',
   'left: %s' % sorted(set(old) & set(d.spool_segments())))
copied = summary('spool messages copied forward')
ok(copied is not None and copied >= len(SLOW_AT),
   'summary: the deferred messages were copied forward (%s copies)' % copied)
segs_now = d.spool_segments()
ok(len(segs_now) <= 2, 'the spool holds at most two segments now (%d)' % len(segs_now), segs_now)
ok(spool_bytes() <= 2 * SEG and spool_bytes() < bytes_after_inject,
   'disk use of the segments is bounded: %d bytes, %d after the injection'
   % (spool_bytes(), bytes_after_inject))
is_(d.outcomes('D', domain='slow.test'), [], 'the deferred messages are still queued')
is_(summary('delayed queue'), len(SLOW_AT), 'summary: %d delayed' % len(SLOW_AT))

# ---------------------------------------------------------------- bodies read back by old locs
before = {q: rcpt_cmds(sent[q][0]) for q in slow}
n_reads = {q: len(re.findall(r'message %s: content read back from the spool' % q, d.paniclog()))
           for q in slow}
n_t = len(d.outcomes('T', domain='slow.test'))
ctl('flush', 'domain', 'slow.test')
ok(t.wait_for(lambda: all(rcpt_cmds(sent[q][0]) > before[q] for q in slow)),
   'flush: the receiver sees every deferred recipient again', before)
ok(t.wait_for(lambda: len(d.outcomes('T', domain='slow.test')) >= n_t + len(SLOW_AT)),
   '... and defers each again (T lines)')
ok(all(len(re.findall(r'message %s: content read back from the spool' % q, d.paniclog())) >
       n_reads[q] for q in slow),
   'their bodies were read back from the spool after their old segments went')
is_(re.findall(r'.*cannot read its content back.*', d.paniclog()), [],
    'no read of a moved message failed')

# ---------------------------------------------------------------- two let through
accept_slow.update(sent[q][0] for q in slow[:2])
ctl('flush', 'domain', 'slow.test')
got = d.wait_outcomes(2, 'D', domain='slow.test')
is_(sorted(o.qid for o in got), sorted(slow[:2]), 'two deferred messages are delivered now')
for q in slow[:2]:
    arrived = [m for m in rcv.msgs if m.data.endswith(sent[q][1])]
    is_(len(arrived), 1, '%s arrived once, byte for byte' % q)

# ---------------------------------------------------------------- crash, recovery from the copy
n_rec = len(recovery_lines())
d.kill()
accept_slow.add(sent[slow[2]][0])
d.start(['-d', 'debug'])
rec = t.wait_for(lambda: recovery_lines()[n_rec:])
is_(rec and int(rec[0][1]), 1, 'SIGKILL, restart: recovery has the one deferred message left')
got = d.wait_outcomes(3, 'D', domain='slow.test')
is_(sorted(o.qid for o in got), sorted(slow), 'the third is delivered after the restart')
is_(len(d.outcomes('D', qid=slow[2])), 1, '... once')
counts = Counter(m.msgid for m in rcv.msgs)
dups = [k for k, v in counts.items() if v > 1]
is_(dups, [], 'the receiver got no message twice')
want = set(re.search(rb'Message-ID: (<[^>]+>)', data).group(1).decode()
           for q, (r, data) in sent.items())
ok(want <= set(counts), 'every accepted message reached the receiver',
   sorted(want - set(counts))[:5])
d.stop()
diag('segments after the injection %d (%d bytes); copies %s'
     % (len(segs_after_inject), bytes_after_inject, copied))
t.done()
