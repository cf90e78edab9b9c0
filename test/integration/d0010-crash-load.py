#!/usr/bin/env python3
"""d0010-crash-load: crash safety of delivery under load.

Inside a private network namespace, Postfix's smtp-sink on 127.0.0.2:2525
is the Gateway and dumps every transaction it completed (so Message-IDs
can be counted); sluiced listens on 127.0.0.1:2770.
  - THREADS injector threads, each with its own plain SMTP session (one
    command at a time, no PIPELINING), send messages with unique
    Message-IDs until N of them got a 250 to their DATA; a thread whose
    session fails (connection refused or reset, a 4xx or 421) reconnects
    after a short back-off and goes on with a new message: a message
    without a 250 does not count (it may or may not be delivered);
  - while injection and delivery flow, sluiced is SIGKILLed when 20%, 50%
    and 80% of the N messages have their 250, and started again each time
    on the same SpoolBase (its recovery line is read from the paniclog);
  - afterwards every message that got a 250 is at the sink at least once;
    the duplicates (Message-IDs the sink has more than once: delivered, but
    the progress not yet committed at the SIGKILL) are reported and can be
    no more than what the recoveries handed back; a message that was sent
    but never got its 250 and is at the sink anyway (accepted, the 250 lost
    with the SIGKILL) is reported; nothing at the sink was not sent;
  - no P line (nothing failed for good); a clean stop exits 0 with no
    sanitizer report, and a restart after it has nothing to deliver and
    keeps at most its active segment.

N is 20000 for the plain build: the whole script took 5-12 s of wall clock
on 2 shared cores (1900-4700 messages/s with their 250).  Under a sanitizer
(SL_SANITIZER, or the build directory's Makefile says so) it is N_SANITIZER,
10000 (20000 took 15 s with ASan, 20 s with TSan; half leaves room on a
loaded machine).  Every wait is bounded: the wait for the sink gives up when
it has seen no progress for t.DEADLINE seconds (or at an overall cap);
nothing asserts wall-clock figures.
"""
import os
import re
import sys
import threading
import time
from collections import Counter

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, diag  # noqa: E402

N = 20000            # messages that must get a 250 (plain build)
N_SANITIZER = 10000  # the same under ASan/TSan (2-3 times slower)
THREADS = 8          # injector sessions
KILL_AT = (0.2, 0.5, 0.8)   # SIGKILL when this share of N has its 250
SINK_CAP = 90        # seconds: overall cap of the final wait for the sink

t.netns()

SAN = t.sanitizer()
if SAN:
    N = N_SANITIZER
P = 2770
sink = t.SmtpSink('127.0.0.2', 2525)
d = t.Sluiced('''
Relay_Domains = ( "a.test" )
Gateway = "127.0.0.2:2525"
Retry_Interval = 1
Host_Failure_Retry = 1
''' + t.listener('127.0.0.1:%d' % P, t.ESC_ACL), name='crash-load')


def recovery_lines():
    return re.findall(r'spool .*: (\d+) segments, (\d+) messages to deliver, (\d+) finished',
                      d.paniclog())


def start():
    """Start sluiced; returns the messages to deliver of its recovery line (None if absent).
    sluiced logs that line before "started", which start() waits for."""
    n = len(recovery_lines())
    d.start()
    got = t.wait_for(lambda: recovery_lines()[n:])
    return int(got[0][1]) if got else None


# ---------------------------------------------------------------- the sink's dump, incrementally

class SinkScan:
    """Message-IDs of the sink's dump files, reading each finished file once.
    smtp-sink writes a file through a buffer and closes it when the final dot
    has come (before its 250); a transaction cut off is unlinked.  A file with
    no Message-ID yet is read again next time; final() drops files that are
    gone (cut off after an early read)."""

    RX = re.compile(rb'^Message-ID:\s*(<[^>\r\n]*>)', re.M | re.I)

    def __init__(self, dump):
        self.dump = dump
        self.ids = {}   # file name -> Message-ID

    def scan(self):
        try:
            names = os.listdir(self.dump)
        except OSError:
            return self.ids
        for name in names:
            if name in self.ids:
                continue
            try:
                with open(os.path.join(self.dump, name), 'rb') as f:
                    m = self.RX.search(f.read())
            except OSError:
                continue
            if m:
                self.ids[name] = m.group(1).decode('utf-8', 'replace')
        return self.ids

    def final(self):
        """Counter of Message-IDs over the files that exist now."""
        self.scan()
        present = set(os.listdir(self.dump))
        return Counter(mid for name, mid in self.ids.items() if name in present)


# ---------------------------------------------------------------- the injector

class Injector:
    """THREADS sessions sending until `target` messages got a 250.
    acked: Message-IDs with a 250 (qids: their queue ids); tried: every
    Message-ID sent (its transaction started); failures: Counter of what
    went wrong (a reply code, or how the session ended)."""

    def __init__(self, target):
        self.target = target
        self.lock = threading.Lock()
        self.seq = 0
        self.acked = []
        self.qids = {}      # Message-ID -> queue id of its 250
        self.inflight = 0   # transactions under way
        self.tried = set()
        self.failures = Counter()
        self.halt = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(k,), daemon=True)
                        for k in range(THREADS)]

    def start(self):
        for th in self.threads:
            th.start()

    def count(self):
        return len(self.acked)

    def next_id(self):
        """The next message, or None once N have their 250 or are in flight."""
        with self.lock:
            if len(self.acked) + self.inflight >= self.target:
                return None
            self.inflight += 1
            self.seq += 1
            mid = '<cl%d.%d@client.test>' % (self.seq, os.getpid())
            self.tried.add(mid)
            return self.seq, mid

    def fail(self, why):
        with self.lock:
            self.failures[why] += 1

    def connect(self):
        """A greeted session, or None (refused, reset, not a 220)."""
        try:
            c = t.Client(P, timeout=t.DEADLINE)
        except OSError:
            self.fail('connect')
            return None
        if c.banner is None or c.banner.code != 220:
            self.fail('greeting %s' % (c.banner.code if c.banner else 'none'))
            c.close()
            return None
        try:
            r = c.ehlo()
        except OSError:
            r = None
        if r is None or r.code != 250:
            self.fail('ehlo')
            c.close()
            return None
        return c

    def one(self, c, seq, mid):
        """One transaction: the final 250 reply, False when the session is
        still good but the message was refused, None when it is not."""
        data = t.message('crash-load %d' % seq, msgid=False, headers=['Message-ID: ' + mid])
        for cmd, want in (('MAIL FROM:<from@src.test>', 250), ('RCPT TO:<r%d@a.test>' % seq, 250),
                          ('DATA', 354), (data.decode() + '.', 250)):
            r = c.cmd(cmd)
            if r is None:
                self.fail('closed')
                return None
            if r.code != want:
                self.fail('%d' % r.code)
                if r.code == 421:
                    return None
                if want == 354 or cmd.startswith('MAIL') or cmd.startswith('RCPT'):
                    c.cmd('RSET')
                return False
        return r

    def run(self, k):
        c = None
        backoff = 0.02
        while not self.halt.is_set():
            if c is None:
                c = self.connect()
                if c is None:
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 0.25)
                    continue
                backoff = 0.02
            nxt = self.next_id()
            if nxt is None:
                break
            try:
                res = self.one(c, *nxt)
            except OSError:
                self.fail('reset')
                res = None
            with self.lock:
                self.inflight -= 1
                if res:
                    self.acked.append(nxt[1])
                    self.qids[nxt[1]] = t.queue_id(res.text)
            if res is None:
                c.close()
                c = None
        if c is not None:
            try:
                c.cmd('QUIT', timeout=1)
            except OSError:
                pass
            c.close()

    def join(self, timeout):
        end = time.monotonic() + timeout
        for th in self.threads:
            th.join(max(0.0, end - time.monotonic()))
        return not any(th.is_alive() for th in self.threads)


# ---------------------------------------------------------------- run
diag('N = %d messages with a 250, %d sessions, SIGKILL at %s of them%s' % (
    N, THREADS, ', '.join('%d%%' % (k * 100) for k in KILL_AT),
    ' (sanitizer build: %s)' % SAN if SAN else ''))
sink.start()
scan = SinkScan(sink.dump)
todo0 = start()
is_(todo0, 0, 'a fresh spool: nothing to deliver')

t0 = time.monotonic()
inj = Injector(N)
inj.start()
recovered = []      # messages to deliver, per restart
for share in KILL_AT:
    want = int(N * share)
    # Bounded: the injection makes progress or the threads are gone.
    last, last_t = inj.count(), time.monotonic()
    while inj.count() < want and any(th.is_alive() for th in inj.threads):
        time.sleep(0.02)
        if inj.count() != last:
            last, last_t = inj.count(), time.monotonic()
        elif time.monotonic() - last_t > t.DEADLINE:
            break
    at = inj.count()
    delivered = len(scan.scan())
    d.kill()
    todo = start()
    recovered.append(todo)
    diag('SIGKILL at %d messages with a 250 (%d transactions at the sink); the restart '
         'recovered %s to deliver' % (at, delivered, todo))
    ok(at >= want and todo is not None,
       'SIGKILL at %d%% of the messages acknowledged, restart on the same spool: recovery '
       'reports what it has to deliver' % (share * 100), 'acknowledged: %d of %d' % (at, want),
       'recovery: %s' % todo)

# Injection ends: the threads stop by themselves once N have their 250.
last, last_t = inj.count(), time.monotonic()
while not inj.join(0.5):
    if inj.count() != last:
        last, last_t = inj.count(), time.monotonic()
    elif time.monotonic() - last_t > t.DEADLINE:
        inj.halt.set()
        inj.join(t.DEADLINE)
        break
t_inject = time.monotonic() - t0
acked = list(inj.acked)
is_(len(acked), N, 'the injector got a 250 for %d messages' % N)
is_(len(set(acked)), len(acked), 'their Message-IDs are unique')
diag('injection: %d messages with a 250 in %.1f s (%.0f/s), %d sent without one; session '
     'failures: %s' % (len(acked), t_inject, len(acked) / max(t_inject, 0.001),
                       len(inj.tried) - len(acked), dict(inj.failures)))

# Delivery: wait until the sink has every acknowledged message, bounded by progress.
want_ids = set(acked)
last, last_t, end = -1, time.monotonic(), time.monotonic() + SINK_CAP


def missing_now():
    return want_ids - set(scan.scan().values())


miss = missing_now()
while miss and time.monotonic() < end:
    n = len(scan.ids)
    if n != last:
        last, last_t = n, time.monotonic()
    elif time.monotonic() - last_t > t.DEADLINE:
        break
    time.sleep(0.3)
    miss = missing_now()
t_all = time.monotonic() - t0
diag('delivery: the sink had every acknowledged message %.1f s after the injection began'
     % t_all if not miss else 'delivery: %d acknowledged messages still missing at the sink '
     'after %.1f s' % (len(miss), t_all))

d.stop()   # asserts exit 0 and no sanitizer report
mainlog_p = d.outcomes('P')
sink_ids = scan.final()
missing = sorted(want_ids - set(sink_ids))
if not ok(not missing, 'every message that got a 250 is at the sink at least once (%d of %d)'
          % (len(want_ids) - len(missing), len(want_ids)),
          '%d missing, e.g. %s' % (len(missing), missing[:10])):
    for m in missing[:5]:   # what the mainlog says of them
        q = inj.qids.get(m)
        diag('%s queued as %s: %s' % (m, q, [ln for ln in d.mainlog().splitlines()
                                             if q and q in ln] or 'no mainlog line'))
dups = {m: c for m, c in sink_ids.items() if c > 1}
n_rec = sum(x or 0 for x in recovered)
diag('duplicates at the sink: %d Message-IDs (%d extra transactions); the %d restarts '
     'recovered %s messages to deliver (total %d)' % (
         len(dups), sum(c - 1 for c in dups.values()), len(recovered), recovered, n_rec))
ok(len(dups) <= n_rec, 'no more messages delivered twice (%d) than the recoveries handed '
   'back (%d)' % (len(dups), n_rec), 'e.g. %s' % sorted(dups.items())[:10])
unacked_at_sink = [m for m in sink_ids if m not in want_ids and m in inj.tried]
diag('sent without a 250 but at the sink (accepted, the 250 lost with a SIGKILL): %d of %d'
     % (len(unacked_at_sink), len(inj.tried) - len(acked)))
strange = [m for m in sink_ids if m not in inj.tried]
ok(not strange, 'everything at the sink was sent by the injector', strange[:10])
is_(mainlog_p, [], 'no P lines in the mainlog: nothing failed for good')

todo = start()
is_(todo, 0, 'after everything was delivered and a clean stop: a restart has nothing to deliver')
ok(len(d.spool_segments()) <= 1, 'and the spool holds at most the active segment',
   d.spool_segments())
d.stop()
t.done()
