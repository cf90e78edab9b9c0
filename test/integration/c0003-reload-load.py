#!/usr/bin/env python3
"""c0003-reload-load: 100 reloads while 20,000 messages flow.

Inside a private network namespace, sluiced relays to Postfix's smtp-sink
(the Gateway).  sluice-bench injects 20,000 messages (10,000 under a
sanitizer) over 50 concurrent SMTP sessions while sluicectl reloads the
configuration 100 times, alternating two valid files that differ in the
banner, a personality limit, one listener (port B exists only in the
second) and the accept threads of port A (~1, ~3):
  - zero failed transactions: every message got its 250, none refused,
    none lost (sluice-bench's count), no connection refused;
  - zero lost messages: the sink has every one;
  - every reload succeeded (generation 101 at the end);
  - a session opened before the reloads keeps its banner and still
    delivers a message after them; a new session sees the last file's
    banner; port B follows the files (open after the second, closed after
    the first);
  - ~N follows the files: raising ~1 to ~3 starts acc:<port>/1 and /2,
    lowering it to ~1 ends them (the socket stays open: a new connection
    gets its banner), raising it to ~2 starts a fresh acc:<port>/1.
"""
import os
import socket
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, like, diag  # noqa: E402

t.netns()

N = 10000 if t.sanitizer() else 20000
RELOADS = 100
# sluice-bench gives up after this many seconds: it retries refused connections,
# so a daemon that died would otherwise keep it going until the watchdog.
INJECT_CAP = 90
A, B = 2860, 2861
CTL = os.path.join(t.TOP_BUILDDIR, 'sluicectl')
BENCH = os.path.join(t.TOP_BUILDDIR, 'sluice-bench')
sink = t.SmtpSink('127.0.0.2', 2525).start()
d = t.Sluiced('', name='reload-load')
sock = os.path.join(d.dir, 'control.sock')


def conf(which, threads=1):
    banner = 'banner-%s.test' % which
    extra = '  127.0.0.1:%d\n' % B if which == 'two' else ''
    return '''
Relay_Domains = ( "sink.example" )
Gateway = "127.0.0.2:2525"
Control_Listener = ( "%s" [ 0.0.0.0/0 = ( ALWAYS-ALLOW ) ] )
ESMTP_Listener = (
  127.0.0.1:%d,1024~%d [
    0.0.0.0/0 = ( personality [ banner_hostname = "%s" max_recipients_per_message = %d ] )
  ]
%s)
''' % (sock, A, threads, banner, 50 if which == 'one' else 60, extra)


d.write_conf(conf('one'))
d.start()

old = t.Client(A)
like(old.banner.text if old.banner else '', r'banner-one\.test', 'a session opened before the '
     'reloads has the first banner')
old.ehlo()

out = {}


def inject():
    r = subprocess.run([BENCH, 'inject', '-H', '127.0.0.1', '-p', str(A), '-n', str(N),
                        '-s', '50', '-l', '1024', '-t', 'rcpt@sink.example', '-T', str(INJECT_CAP)],
                       capture_output=True, timeout=INJECT_CAP + 30)
    out['rc'], out['stdout'], out['stderr'] = r.returncode, r.stdout.decode(), r.stderr.decode()


th = threading.Thread(target=inject)
th.start()
failed = []
for i in range(RELOADS):
    d.write_conf(conf('two', threads=3) if i % 2 == 0 else conf('one'))
    r = subprocess.run([CTL, '-s', sock, 'config', 'reload'], capture_output=True, timeout=60)
    if r.returncode != 0:
        failed.append((i, r.stdout.decode() + r.stderr.decode()))
    time.sleep(0.02)
reloads_during = th.is_alive()
th.join(INJECT_CAP + 40)
if not ok(d.running(), 'sluiced is still running after the injection and the reloads',
          d.stderr()[-4000:]):
    t.bail('sluiced died under load')
is_(failed, [], '%d reloads through sluicectl, each one successful' % RELOADS)
diag('the injection was %s when the reloads ended' % ('still running' if reloads_during
                                                      else 'over'))
fig = dict(kv.split('=', 1) for kv in out.get('stdout', '').split() if '=' in kv)
diag('sluice-bench: %s' % out.get('stdout', '').strip())
ok(out.get('rc') == 0 and fig.get('accepted') == str(N) and fig.get('refused') == '0' and
   fig.get('lost') == '0', 'zero failed transactions: %s of %d accepted, %s refused, %s lost' % (
       fig.get('accepted'), N, fig.get('refused'), fig.get('lost')), out.get('stderr', '')[-500:])
is_(fig.get('errors'), '0', 'no connection was refused or reset during the reloads')
got = sink.wait_count(N, timeout=300)
ok(got >= N, 'zero lost messages: the sink has all %d' % N, got)
like(subprocess.run([CTL, '-s', sock, 'summary'], capture_output=True,
                    timeout=60).stdout.decode(),
     r'^configuration generation: %d$' % (RELOADS + 1), 'generation %d at the end' % (RELOADS + 1))

# The last file was 'one' (RELOADS is even): port B is closed, the banner is one's.
new = t.Client(A)
like(new.banner.text if new.banner else '', r'banner-one\.test', 'a new session sees the '
     'last file\'s banner')
new.close()


def port_open(port):
    with socket.socket() as s:
        return s.connect_ex(('127.0.0.1', port)) == 0


ok(t.wait_for(lambda: not port_open(B), timeout=10),
   'port B, only in the other file, is closed after the last reload')
d.write_conf(conf('two'))
subprocess.run([CTL, '-s', sock, 'config', 'reload'], capture_output=True, timeout=60)
ok(t.wait_for(lambda: port_open(B), timeout=10), 'one more reload, to the other file, opens B')
d.write_conf(conf('two', threads=3))
subprocess.run([CTL, '-s', sock, 'config', 'reload'], capture_output=True, timeout=60)
ok(t.wait_for(lambda: len([n for n in d.threads() if n.startswith('acc:%d/' % A)]) == 3,
              timeout=10), 'a reload raising ~1 to ~3 starts two more accept threads',
   sorted(n for n in d.threads() if n.startswith('acc:')))


def acc_threads():
    return sorted(n for n in d.threads() if n.startswith('acc:%d/' % A))


d.write_conf(conf('two', threads=1))
r = subprocess.run([CTL, '-s', sock, 'config', 'reload'], capture_output=True, timeout=60)
is_(r.returncode, 0, 'the reload lowering ~N succeeds')
ok(t.wait_for(lambda: acc_threads() == ['acc:%d/0' % A], timeout=10),
   'a reload lowering ~3 to ~1 ends acc:%d/1 and /2, acc:%d/0 stays' % (A, A), acc_threads())
fresh = t.Client(A)
ok(fresh.banner is not None and fresh.banner.code == 220,
   'the remaining accept thread still serves a new connection', fresh.banner)
fresh.close()
d.write_conf(conf('two', threads=2))
subprocess.run([CTL, '-s', sock, 'config', 'reload'], capture_output=True, timeout=60)
ok(t.wait_for(lambda: acc_threads() == ['acc:%d/0' % A, 'acc:%d/1' % A], timeout=10),
   'raising ~1 to ~2 again starts a fresh acc:%d/1' % A, acc_threads())
ok(d.wait_log('paniclog', r'listener 127\.0\.0\.1:%d: 1 accept threads \(was 3\)' % A,
              timeout=10), 'the paniclog has the notice of the lowered ~N')
rs = t.send_message(old, 'from@src.test', ['old@sink.example'],
                    t.message('old session') + b'.\r\n', ehlo=False)
ok(rs[-1] is not None and rs[-1].code == 250, 'the session opened before the reloads still '
   'delivers a message', rs)
old.cmd('QUIT')
old.close()
d.stop()
t.done()
