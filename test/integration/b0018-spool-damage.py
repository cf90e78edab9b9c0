#!/usr/bin/env python3
"""b0018-spool-damage: sluiced starts on a damaged spool and delivers
exactly the intact messages.

Messages are queued while delivery is suspended, in 16 KiB segments, and
sluiced is stopped.  The test then reads the segment files itself
(sluice-spool(5): 24-byte record headers "SLRC" crc type flags len offset,
records 8-aligned, a message record's envelope holding its queue id at
payload bytes 8..31) and damages three segments:
  - a byte of one message's body is flipped (its CRC no longer matches);
  - garbage is written after the last record of another (a torn tail);
  - a third is truncated in the middle of its last message record.
sluiced is started again on that spool with Postfix's smtp-sink as the
Gateway: it starts, logs each damaged record and torn tail to the
paniclog (naming the segment), delivers every intact message once and
byte for byte, never the flipped or the truncated one, and stops cleanly.
"""
import os
import re
import struct
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, diag  # noqa: E402

t.netns()

P = 2960
sink = t.SmtpSink('127.0.0.2', 2525)


def conf(suspended):
    return '''
Relay_Domains = ( "local.test" )
Gateway = "127.0.0.2:2525"
Retry_Interval = 1
Suspend_Delivery = %s
Spool_Segment_Size = 16k
''' % ('true' if suspended else 'false') + t.listener('127.0.0.1:%d' % P, t.ESC_ACL)


d = t.Sluiced(conf(True), name='damage').start()


def records(path):
    """[(offset, type, len, qid or None)] of the intact-looking records of a segment."""
    with open(path, 'rb') as f:
        data = f.read()
    out, off = [], 0
    while off + 24 <= len(data):
        magic, crc, typ, flags, ln, roff = struct.unpack_from('<4sIHHIQ', data, off)
        if magic != b'SLRC' or roff != off:
            break
        qid = None
        if typ == 2:
            qid = data[off + 24 + 8:off + 24 + 32].rstrip(b'\0').decode()
        out.append((off, typ, ln, qid))
        off += (24 + ln + 7) & ~7
    return out, off


# ---------------------------------------------------------------- queue and stop
N = 48
sent = {}   # qid -> data
for i in range(N):
    body = ''.join('message %d line %d: some text to take room in the segment\r\n' % (i, k)
                   for k in range(12))
    data = t.message('damage %d' % i, body=body)
    q = t.inject(P, 'from@local.test', ['r%d@local.test' % i], data)
    if q:
        sent[q] = data
is_(len(sent), N, '%d messages queued' % N + ' while delivery is suspended')
d.stop()
segs = d.spool_segments()
ok(len(segs) >= 4, 'they fill %d segments of 16 KiB' % len(segs), segs)

# ---------------------------------------------------------------- damage three segments
books = {}
for s in segs:
    books[s] = records(d.path('spool', s))
msg_segs = [s for s in segs if sum(1 for r in books[s][0] if r[1] == 2) >= 2]
ok(len(msg_segs) >= 3, 'three segments with at least two messages each to damage', msg_segs)
flip_seg, tail_seg, cut_seg = msg_segs[0], msg_segs[1], msg_segs[2]

# a byte of the body of the second message of flip_seg
off, typ, ln, flipped = [r for r in books[flip_seg][0] if r[1] == 2][1]
with open(d.path('spool', flip_seg), 'r+b') as f:
    f.seek(off + 24 + ln - 20)
    b = f.read(1)
    f.seek(off + 24 + ln - 20)
    f.write(bytes([b[0] ^ 0x20]))

# garbage after the last record of tail_seg
end = books[tail_seg][1]
with open(d.path('spool', tail_seg), 'r+b') as f:
    f.seek(end)
    f.write(b'SLRC\x01\x02garbage after the last record' * 4)

# cut_seg truncated in the middle of its last message record
off, typ, ln, cut = [r for r in books[cut_seg][0] if r[1] == 2][-1]
ok(all(r[0] <= off for r in books[cut_seg][0]), 'the cut message is the last record of %s'
   % cut_seg)
cut_off = off
os.truncate(d.path('spool', cut_seg), off + 24 + ln // 2)

intact = set(sent) - {flipped, cut}
is_(len(intact), N - 2, 'two messages damaged (%s flipped, %s cut), the rest intact' % (flipped, cut))

# ---------------------------------------------------------------- restart on the damaged spool
RECOVERY = r'\] spool .*: \d+ segments, \d+ messages to deliver.*'
n_rec = len(re.findall(RECOVERY, d.paniclog()))
sink.start()
d.write_conf(conf(False))
d.start()
line = t.wait_for(lambda: (re.findall(RECOVERY, d.paniclog())[n_rec:] or [None])[0])
m = re.search(r'(\d+) messages to deliver, \d+ finished, (\d+) damaged records skipped, '
              r'(\d+) torn bytes', line or '')
ok(m, 'sluiced starts on the damaged spool and reports its recovery', line)
if m:
    is_(int(m.group(1)), N - 2, 'recovery has the %d intact messages to deliver' % (N - 2))
    ok(int(m.group(2)) >= 1, 'it counts the damaged record (%s)' % m.group(2))
    ok(int(m.group(3)) > 0, 'it counts torn bytes (%s)' % m.group(3))
panic = d.paniclog()
ok(re.search(r'spool recovery: spool %s: damaged (record|bytes) at %d' %
             (re.escape(flip_seg), [r for r in books[flip_seg][0] if r[1] == 2][1][0]), panic),
   'the paniclog names the damaged record in %s' % flip_seg)
ok(re.search(r'spool recovery: spool %s: torn tail: \d+ bytes after the last good record at %d'
             % (re.escape(tail_seg), end), panic),
   'the paniclog names the torn tail of %s' % tail_seg)
ok(re.search(r'spool recovery: spool %s: torn tail: \d+ bytes after the last good record at %d'
             % (re.escape(cut_seg), cut_off), panic),
   'the paniclog names the truncated record of %s' % cut_seg,
   [ln for ln in panic.splitlines() if 'spool recovery' in ln])

got = d.wait_outcomes(N - 2, 'D')
is_(sorted(set(o.qid for o in got)), sorted(intact), 'every intact message is delivered')
sink.wait_count(N - 2)
msgs = sink.messages()
is_(len(msgs), N - 2, 'the sink got %d transactions' % (N - 2))
by_id = {}
for mm in msgs:
    by_id.setdefault(mm.msgid, []).append(mm)
bad = []
for q in intact:
    mid = re.search(rb'Message-ID: (<[^>]+>)', sent[q]).group(1).decode()
    arrived = by_id.get(mid, [])
    want = sent[q].replace(b'\r\n', b'\n')
    if len(arrived) != 1 or not arrived[0].content.endswith(want):
        bad.append((q, len(arrived)))
is_(bad, [], 'each intact message arrived once, byte for byte')
for q, what in ((flipped, 'the flipped'), (cut, 'the truncated')):
    mid = re.search(rb'Message-ID: (<[^>]+>)', sent[q]).group(1).decode()
    is_(by_id.get(mid, []), [], '%s message is never delivered, not even in part' % what)
is_(d.outcomes('D', qid=flipped) + d.outcomes('D', qid=cut), [], '... and has no D line')
ok(d.running(), 'sluiced is still running')
d.stop()
diag('segments %s; damaged %s, %s, %s' % (len(segs), flip_seg, tail_seg, cut_seg))
t.done()
