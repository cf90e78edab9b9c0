#!/usr/bin/env python3
"""c0005-spool-import: the console's `spool import PATH` (sluicectl).

Inside a private network namespace:
  - instance A holds a.test (Suspend_Delivery) and delivers b.test to a sink
    of its own: it accepts 50 messages for a.test and 5 for a.test and
    b.test (their b.test recipients are delivered, so final in A's spool),
    then stops; a file of garbage and a directory are planted in its spool
    under segment names;
  - instance B (another SpoolBase, delivering to a second sink) refuses to
    import: A's spool while A runs, its own spool, a file, a missing or
    relative path, a bad concurrency; `spool import status` before any;
  - `spool import A/spool` answers at once, and the import finishes: 55
    imported, 2 skipped (each with a paniclog line; both stay in A's
    spool), 0 failed; the sink gets each message once, byte for byte with
    A's Received: header and no other, the five two-domain messages for
    their a.test recipient only; B's mainlog has R and D lines under new
    queue ids; A's spool holds no segment but the planted ones, and
    importing it again imports nothing;
  - instance C with a record damaged in the middle of its segment: a second
    import asked for while the first runs is refused; the two intact
    messages are imported, the damaged one is skipped and reported, the
    segment stays in C's spool, and importing C again finds nothing new;
  - A, started again on its spool, has nothing to deliver;
  - B is stopped right after starting to import E's 2000 messages: it exits
    cleanly, says how far it got, and what it imported plus what E still
    has to deliver is exactly the 2000.
"""
import os
import re
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, like, diag  # noqa: E402

t.netns()

CTL = os.path.join(t.TOP_BUILDDIR, 'sluicectl')
PA, PB, PC = 2860, 2861, 2862
N, N2 = 50, 5

sink_a = t.SmtpSink('127.0.0.3', 2525).start()
sink_b = t.SmtpSink('127.0.0.2', 2525).start()

CONTROL = '''
Control_Listener = ( "%s/control.sock" [ 0.0.0.0/0 = ( ALWAYS-ALLOW ) ] )
'''


def instance(name, port, gateway, extra=''):
    d = t.Sluiced('', name=name)
    d.write_conf('''
Relay_Domains = ( "a.test" "b.test" )
Gateway = "%s"
Retry_Interval = 1
''' % gateway + extra + CONTROL % d.dir + t.listener('127.0.0.1:%d' % port, t.ESC_ACL))
    return d


def ctl(d, *args, stdin=None):
    r = subprocess.run([CTL, '-s', os.path.join(d.dir, 'control.sock')] + list(args),
                       input=stdin, capture_output=True, timeout=t.DEADLINE)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def body(i, tag):
    """A distinct body; every seventh is over 64 KiB (several content chunks)."""
    lines = 1500 if i % 7 == 3 else 3
    return ''.join('%s %d line %d: the quick brown fox jumps over the lazy dog\r\n' %
                   (tag, i, k) for k in range(lines))


def inject(port, items):
    """items: [(rcpts, data)]; one session.  Returns [(qid, rcpts, data)]."""
    out = []
    s = t.smtp(port)
    s.ehlo('client.test')
    for rcpts, data in items:
        s.mail('from@src.test')
        for r in rcpts:
            s.rcpt(r)
        code, resp = s.data(data)
        if code == 250:
            out.append((t.queue_id(resp), rcpts, data))
    s.quit()
    return out


def wait_import(d):
    """Poll `spool import status` until it says finished; returns its text."""
    got = t.wait_for(lambda: (lambda o: o if 'finished' in o else None)(
        ctl(d, 'spool', 'import', 'status')[1]), timeout=60)
    return got or ctl(d, 'spool', 'import', 'status')[1]


def lf(data):
    return data.replace(b'\r\n', b'\n')


# ---------------------------------------------------------------- A queues mail, then stops
a = instance('a', PA, '127.0.0.3:2525', 'Domain "a.test" { Suspend_Delivery = true }\n')
a.start()
items = [(['r%d@a.test' % i], t.message('import %d' % i, body(i, 'single'))) for i in range(N)]
items += [(['x%d@a.test' % i, 'y%d@b.test' % i], t.message('two %d' % i, body(i, 'two')))
          for i in range(N2)]
sent = inject(PA, items)
is_(len(sent), N + N2, 'A accepts %d messages (%d of them for a.test and b.test)' % (N + N2, N2))
ok(all(a.wait_r_lines(q) for q, _, _ in sent), 'A logs their receptions')
is_(len(a.wait_outcomes(N2, 'D')), N2, 'A delivers the b.test recipients (a.test is suspended)')
is_(sink_a.wait_count(N2), N2, '... to its sink')

b = instance('b', PB, '127.0.0.2:2525')
b.start()
a_spool = a.path('spool')
rc, out, err = ctl(b, 'spool', 'import', 'status')
ok(rc == 0 and 'no spool import has run' in out, 'status before any import', rc, out, err)
rc, out, err = ctl(b, 'spool', 'import', a_spool)
ok(rc == 1 and 'in use by another sluiced' in err, 'A\'s spool while A runs: refused', rc, out,
   err)
a.stop()
a_qids = set(q for q, _, _ in sent)

# planted in A's spool: garbage under a segment name, and a directory under another
with open(os.path.join(a_spool, 'seg-00-7FFFFFF0.sl'), 'wb') as f:
    f.write(b'not a segment: garbage ' * 200)
os.mkdir(os.path.join(a_spool, 'seg-00-7FFFFFF1.sl'))
planted = ['seg-00-7FFFFFF0.sl', 'seg-00-7FFFFFF1.sl']

# ---------------------------------------------------------------- refusals
for args, rx, what in (
        ((b.path('spool'),), r'own spool', 'B\'s own spool'),
        ((b.path('spool') + '/',), r'own spool', 'B\'s own spool, spelt with a slash'),
        ((a.conf_path,), r'is not a directory', 'a file'),
        ((a.path('nowhere'),), r'No such file or directory', 'a missing directory'),
        (('spool',), r'not an absolute path', 'a relative path'),
        ((a.path('log'),), r'holds no sluice spool', 'a directory that is no spool'),
        ((a_spool, '0'), r'concurrency "0" is not 1\.\.64', 'concurrency 0'),
        ((a_spool, 'x'), r'concurrency "x"', 'concurrency x'),
        ((a_spool, '1', 'more'), r'usage: spool import', 'too many words')):
    rc, out, err = ctl(b, 'spool', 'import', *args)
    ok(rc == 1 and re.search(rx, err), 'refused: %s' % what, rc, out, err)
is_(os.listdir(a.path('log')).count('lock'), 0, 'a refused directory is left untouched')

# ---------------------------------------------------------------- the import
rc, out, err = ctl(b, 'spool', 'import', a_spool, '2')
is_((rc, out), (0, 'import of %s started\n' % a_spool), 'spool import A: started at once')
status = wait_import(b)
like(status, r'^import of %s finished after \d+s: imported %d messages from %s '
     r'\(2 skipped: damaged or unreadable, 0 failed\)$' % (re.escape(a_spool), N + N2,
                                                          re.escape(a_spool)),
     'spool import status: finished, %d imported, 2 skipped, 0 failed' % (N + N2))
rc, out, err = ctl(b, 'spool', 'import')
is_(out, status, '`spool import` without a word says the same')
notice = b.wait_log('paniclog', r'spool import: imported %d messages from ' % (N + N2))
ok(notice, 'the paniclog has the outcome', b.paniclog()[-2000:])
panic = b.paniclog()
ok(re.search(r'spool import %s: spool seg-00-7FFFFFF0\.sl: no valid segment header' %
             re.escape(a_spool), panic) and
   re.search(r'spool import %s: spool seg-00-7FFFFFF1\.sl: cannot read: not a file' %
             re.escape(a_spool), panic),
   'a paniclog line for each skipped file', panic[-3000:])

want = {lf(data): rcpts for _, rcpts, data in sent}
got = sink_b.wait_count(N + N2, timeout=60)
is_(got, N + N2, 'B delivers %d transactions to its sink' % (N + N2))


def match():
    matched, extra = {}, []
    for m in sink_b.messages():
        key = next((k for k in want if m.content.endswith(k)), None)
        if key is None:
            extra.append(m)
        else:
            matched.setdefault(key, []).append(m)
    return matched, extra


# smtp-sink writes each dump file as the transaction goes: one counted may
# still be empty or partial for a moment, so look until they are complete.
t.wait_for(lambda: len(match()[0]) >= N + N2 and not match()[1], timeout=20)
matched, extra = match()
is_(len(matched), N + N2, 'each message arrived, byte for byte after the headers A added')
is_(extra + [m for ms in matched.values() for m in ms[1:]], [], 'none twice, nothing else')
ok(all(ms[0].content.count(b'Received:') == 1 and
       ms[0].content.startswith(b'Received:') for ms in matched.values()),
   'each has A\'s Received: header and no other (the import adds no trace header)')
ok(all(sorted(re.sub(r'^(?:TO:)?<([^>]*)>.*', r'\1', r, flags=re.I) for r in ms[0].rcpts) ==
       sorted(r for r in want[k] if r.endswith('@a.test')) for k, ms in matched.items()),
   'recipients final in A are not delivered again (b.test), the others are',
   [(ms[0].rcpts, want[k]) for k, ms in matched.items()][:3])

r_lines = b.r_lines()
b_qids = set(f[1] for f in r_lines)
is_(len(b_qids), N + N2, 'B\'s mainlog: reception lines for %d messages' % (N + N2))
is_(b_qids & a_qids, set(), '... under new queue ids, none of A\'s')
outs = b.wait_outcomes(N + N2, 'D')
is_(sorted(set(o.qid for o in outs)), sorted(b_qids), 'B\'s mainlog: a D line for each of them')
is_(len(outs), N + N2, '... one per a.test recipient')

left = sorted(f for f in os.listdir(a_spool) if f.startswith('seg-'))
is_(left, planted, 'A\'s spool holds no segment but the two planted (and skipped) files')

# again: nothing is imported twice
rc, out, err = ctl(b, 'spool', 'import', a_spool)
status = wait_import(b)
like(status, r': imported 0 messages from %s \(2 skipped' % re.escape(a_spool),
     'importing A\'s spool again imports nothing')
sink_b.wait_count(N + N2 + 1, timeout=1)
is_(sink_b.count(), N + N2, '... and the sink gets nothing more')

# ---------------------------------------------------------------- a damaged record
c = instance('c', PC, '127.0.0.3:2525', 'Suspend_Delivery = true\n')
c.start()
c_sent = inject(PC, [(['c%d@a.test' % i], t.message('c %d' % i, body(i, 'MARK%d' % i)))
                     for i in range(3)])
ok(len(c_sent) == 3 and all(c.wait_r_lines(q) for q, _, _ in c_sent),
   'C accepts 3 messages and logs them')
c.stop()
c_spool = c.path('spool')
segs = [f for f in os.listdir(c_spool) if re.match(r'seg-.*\.sl$', f)]
damaged = None
for name in segs:
    p = os.path.join(c_spool, name)
    with open(p, 'r+b') as f:
        img = f.read()
        at = img.find(b'MARK1 1 line 1:')
        if at >= 0:
            f.seek(at)
            f.write(b'X')
            damaged = name
ok(damaged, 'one byte of the middle message of C\'s segment changed', segs)
# two commands in one session: the second finds the first still reading C's segment
rc, out, err = ctl(b, stdin=('spool import %s\nspool import %s\n' % (c_spool, c_spool)).encode())
ok(rc == 1 and out == 'import of %s started\n' % c_spool and
   'an import of %s is already running' % c_spool in err,
   'a second import while one runs: refused', rc, out, err)
status = wait_import(b)
like(status, r': imported 2 messages from %s \(1 skipped: damaged or unreadable, 0 failed\)$' %
     re.escape(c_spool), 'C: 2 imported, the damaged one skipped')
ok(re.search(r'spool import %s: spool %s: damaged record at \d+' %
             (re.escape(c_spool), re.escape(damaged or '?')), b.paniclog()),
   '... with a paniclog line naming its segment')
is_(sink_b.wait_count(N + N2 + 2), N + N2 + 2, 'the two intact messages are delivered')
ok(damaged in os.listdir(c_spool), 'the damaged segment stays in C\'s spool')
rc, out, err = ctl(b, 'spool', 'import', c_spool)
status = wait_import(b)
like(status, r': imported 0 messages from %s \(1 skipped' % re.escape(c_spool),
     'importing C again imports nothing, and reports the damage again')
sink_b.wait_count(N + N2 + 3, timeout=1)
is_(sink_b.count(), N + N2 + 2, '... and the sink gets nothing more')
diag(status)

# ---------------------------------------------------------------- A starts again on its spool
RECOVERY = r'spool .*: \d+ segments, (\d+) messages to deliver'
n = len(re.findall(RECOVERY, a.paniclog()))
a.start()
got = t.wait_for(lambda: re.findall(RECOVERY, a.paniclog())[n:])
is_(got, ['0'], 'A restarted on its spool: nothing left to deliver')
a.stop()

# ---------------------------------------------------------------- a shutdown during an import
M = 2000
e = instance('e', PC + 1, '127.0.0.3:2525', 'Suspend_Delivery = true\n')
e.start()
e_sent = inject(PC + 1, [(['e%d@a.test' % i], t.message('e %d' % i)) for i in range(M)])
is_(len(e_sent), M, 'E accepts %d messages' % M)
e.stop()
before = b_qids | set(f[1] for f in b.r_lines())
rc, out, err = ctl(b, 'spool', 'import', e.path('spool'))
ok(rc == 0, 'B starts importing E\'s spool', rc, out, err)
# stop B once the first batch is in (or the import is over, on a fast machine)
t.wait_for(lambda: re.search(r'running .*: [1-9]\d* of|finished',
                             ctl(b, 'spool', 'import', 'status')[1]), interval=0.001)
b.stop()   # the import stops after the batches in flight
moved = set(f[1] for f in b.r_lines()) - before
ok(re.search(r'spool import: (import of .* stopped by shutdown: imported %d of %d|imported %d '
             r'messages from)' % (len(moved), M, M), b.paniclog()),
   'B says how far the import got (%d of %d)' % (len(moved), M))
diag(re.findall(r'spool import: .*', b.paniclog())[-1])
n = len(re.findall(RECOVERY, e.paniclog()))
e.start()
got = t.wait_for(lambda: re.findall(RECOVERY, e.paniclog())[n:])
is_(len(moved) + int(got[0] if got else -1), M,
    'nothing lost, nothing twice: %d in B, %s still in E' % (len(moved), got))
e.stop()
t.done()
