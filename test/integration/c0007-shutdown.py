#!/usr/bin/env python3
"""c0007-shutdown: a graceful stop, and Shutdown_Timeout.

Inside a private network namespace, sluiced (Shutdown_Timeout = 3,
delivery suspended, so what is accepted stays in the spool) has three
client sessions when it gets SIGTERM:
  A  in the middle of sending a message (DATA, the body half sent);
  B  between commands (after EHLO);
  C  after MAIL FROM, then silent.
Checked:
  - B gets 421 4.3.2 at once and is closed;
  - A finishes its message after the signal and gets its 250 with a queue
    id, then 421 (no further command);
  - C gets 421 only when Shutdown_Timeout is over, and nothing of it was
    taken;
  - sluiced exits 0 (after the timeout, not long after), and the paniclog
    says one session was still in a transaction;
  - after a restart that delivers (to smtp-sink), A's message, and only
    it, arrives: a 250 given during the stop was durable.
  - `config get Shutdown_Timeout` says 3; the default is 5.
"""
import os
import re
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, like, diag  # noqa: E402

t.netns()

P = 2880
CTL = os.path.join(t.TOP_BUILDDIR, 'sluicectl')
sink = t.SmtpSink('127.0.0.2', 2525).start()
d = t.Sluiced('', name='shutdown')
sock = os.path.join(d.dir, 'control.sock')


def conf(suspend):
    return '''
Relay_Domains = ( "sink.test" )
Gateway = "127.0.0.2:2525"
Suspend_Delivery = %s
%s
Control_Listener = ( "%s" [ 0.0.0.0/0 = ( ALWAYS-ALLOW ) ] )
''' % ('true' if suspend else 'false', 'Shutdown_Timeout = 3' if suspend else '', sock) + \
        t.listener('127.0.0.1:%d' % P, t.ESC_ACL)


d.write_conf(conf(True))
d.start()
r = subprocess.run([CTL, '-s', sock, 'config', 'get', 'Shutdown_Timeout'], capture_output=True,
                   timeout=t.DEADLINE)
is_(r.stdout.decode(), 'Shutdown_Timeout = 3\n', 'config get Shutdown_Timeout: 3')

a = t.Client(P)
a.ehlo()
for cmd in ('MAIL FROM:<a@src.test>', 'RCPT TO:<a@sink.test>', 'DATA'):
    a.cmd(cmd)
a.send(b'Subject: finished during the stop\r\nDate: Thu, 26 Nov 2026 12:00:00 +0000\r\n'
       b'Message-ID: <stop@client.test>\r\n\r\nfirst half\r\n')
b = t.Client(P)
b.ehlo()
c = t.Client(P)
c.ehlo()
c.cmd('MAIL FROM:<c@src.test>')
time.sleep(0.2)

t0 = time.monotonic()
d.proc.send_signal(signal.SIGTERM)
rb = b.reply(timeout=5)
ok(rb is not None and rb.code == 421 and '4.3.2' in rb.text and time.monotonic() - t0 < 2.5,
   'B, between commands: 421 4.3.2 at once', rb)
ok(b.closed(timeout=5), '... and closed')
time.sleep(0.5)
a.send(b'second half\r\n.\r\n')
ra = a.reply(timeout=5)
ok(ra is not None and ra.code == 250 and time.monotonic() - t0 < 2.5,
   'A, in DATA at the signal: finishes its message and gets its 250', ra)
qid = re.search(r'queued as (\S+)', ra.text).group(1) if ra and 'queued as' in ra.text else None
ra2 = a.reply(timeout=5)
ok(ra2 is not None and ra2.code == 421, '... then 421, no further command', ra2)
rc_ = c.reply(timeout=10)
waited = time.monotonic() - t0
ok(rc_ is not None and rc_.code == 421 and 2.5 <= waited,
   'C, after MAIL and silent: 421 when Shutdown_Timeout (3 s) is over', rc_, waited)
try:
    d.proc.wait(timeout=30)
except subprocess.TimeoutExpired:
    pass
is_(d.proc.returncode, 0, 'sluiced exits 0')
diag('stopped %.1f s after the signal' % (time.monotonic() - t0))
like(d.paniclog(), r'1 session still in a transaction after 3000 ms', 'the paniclog says one '
     'session had to be cut')
d.check_sanitizers()

# A restart that delivers: the 250 given during the stop was durable.
d.write_conf(conf(False))
d.start()
ok(sink.wait_count(1, timeout=30) >= 1, 'after a restart A\'s message is delivered')
time.sleep(1.0)
is_(sink.count(), 1, '... and nothing of C')
ok(qid is not None and any(o.qid == qid and o.kind == 'D' for o in d.outcomes('D')),
   '... under the queue id of its 250', qid, d.outcomes())
r = subprocess.run([CTL, '-s', sock, 'config', 'get', 'Shutdown_Timeout'], capture_output=True,
                   timeout=t.DEADLINE)
is_(r.stdout.decode(), 'Shutdown_Timeout = 5\n', 'the default Shutdown_Timeout is 5')
d.stop()
t.done()
