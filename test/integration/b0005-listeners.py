#!/usr/bin/env python3
"""b0005-listeners: the listening side against the real daemon: IPv4, IPv6
([::1]:port), *:port with proto=ipv4/ipv6/both, a Unix-socket ESMTP
listener, status="disabled", the listen backlog, ~N accept threads named
acc:<port>/<i>, ECStream and Control listeners bound, and a listener that
cannot bind (sluiced exits 1 naming the address and file:line)."""
import os
import re
import shutil
import socket
import stat
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, like, status  # noqa: E402

t.netns()

V4, V6, ANY4, ANY6, BOTH, DFLT, OFF, BACKLOG, THREADS, ECS = range(2580, 2590)
has_v6 = t.has_ipv6_loopback()
ACL = '[ 127.0.0.1/32 = ( personality [ banner_hostname = "acl.example" ] ) ]'
DUMP = '[ 0.0.0.0/0 = ( XDUMPCONTEXT [ extension = XDUMPCONTEXT ] ) ]'
lines = [
    'Relay_Domains = ( "local.test" )',
    'ESMTP_Listener = (',
    '  127.0.0.1:%d' % V4,
    '  *:%d <proto=ipv4> %s' % (ANY4, DUMP),
    '  127.0.0.1:%d <status="disabled">' % OFF,
    '  127.0.0.1:%d,7' % BACKLOG,
    '  127.0.0.1:%d,16~3 %s' % (THREADS, DUMP),
    '  ./sock/smtp.sock,9~2 %s' % ACL,
]
if has_v6:
    lines += ['  [::1]:%d' % V6, '  *:%d <proto=ipv6>' % ANY6, '  *:%d <proto=both>' % BOTH,
              '  *:%d' % DFLT]
lines += [')', 'ECStream_Listener = ( 127.0.0.1:%d )' % ECS,
          'Control_Listener = ( ./ctl/control.sock [ 0.0.0.0/0 = ( ALWAYS-ALLOW ) ] )', '']
d = t.Sluiced('\n'.join(lines)).start()
n_listeners = 7 + (4 if has_v6 else 0)   # ESMTP (without the disabled one), ECStream, Control
like(d.paniclog(), r'started \(pid %d\).* %d listeners' % (d.pid, n_listeners),
     'the paniclog counts the open listeners (a disabled one is not opened)')


def answers(port, host='127.0.0.1'):
    """The banner of host:port, or the error name when the connection fails."""
    try:
        with t.Client(port, host=host) as c:
            return c.banner.last if c.banner else 'no banner'
    except OSError as e:
        return type(e).__name__


def one_message(c):
    rs = t.send_message(c, 'a@local.test', ['b@local.test'], t.message('listener') + b'.\r\n')
    return rs[-1]


BANNER = '220 %s ESMTP sluice' % t.HOSTNAME
REFUSED = 'ConnectionRefusedError'

# ---------------------------------------------------------------- addresses and families
is_(answers(V4), BANNER, '127.0.0.1:port: IPv4 clients get the banner')
is_(answers(ANY4), BANNER, '*:port <proto=ipv4>: 127.0.0.1 is served')
is_(answers(OFF), REFUSED, 'status="disabled": nothing listens on that address')
if has_v6:
    is_(answers(V6, '::1'), BANNER, '[::1]:port: IPv6 clients get the banner')
    is_(answers(V6), REFUSED, '[::1]:port: nothing on 127.0.0.1')
    is_(answers(ANY4, '::1'), REFUSED, '*:port <proto=ipv4>: nothing on ::1')
    is_(answers(ANY6, '::1'), BANNER, '*:port <proto=ipv6>: ::1 is served')
    is_(answers(ANY6), REFUSED, '*:port <proto=ipv6>: IPv4 is not (IPV6_V6ONLY)')
    is_(answers(BOTH), BANNER, '*:port <proto=both>: IPv4 is served')
    is_(answers(BOTH, '::1'), BANNER, '*:port <proto=both>: IPv6 is served')
    is_(answers(DFLT), BANNER, '*:port without proto: IPv4 is served (both is the default)')
    is_(answers(DFLT, '::1'), BANNER, '*:port without proto: IPv6 is served')
    for host, peer in (('127.0.0.1', '127.0.0.1'), ('::1', '::1')):
        with t.Client(BOTH, host=host) as c:
            r = one_message(c)
        got = d.wait_r_lines(t.queue_id(r.text) if r else None)
        ok(r is not None and r.code == 250 and got and got[0][9] == peer,
           'a dual-stack listener logs a %s client as %s' % (host, peer), 'reply %s, R %s' % (r, got))
else:
    for n in range(11):
        t.skip('IPv6 listener', '::1 is not configured on lo')

# ---------------------------------------------------------------- Unix socket
sock = d.path('sock', 'smtp.sock')
st = os.stat(sock) if os.path.exists(sock) else None
ok(st is not None and stat.S_ISSOCK(st.st_mode), 'a relative Unix socket path is created under -D')
is_(st and oct(stat.S_IMODE(st.st_mode)), oct(0o666), 'the ESMTP socket is mode 0666')
with t.Client(path=sock) as c:
    is_(c.banner.last, '220 acl.example ESMTP sluice',
        'a Unix-socket client is served; the ACL sees it as 127.0.0.1')
    r = one_message(c)
    status(r, '250', 'a message over the Unix socket is queued')
got = d.wait_r_lines(t.queue_id(r.text) if r else None)
ok(got and got[0][5:9] == ['b', 'local.test', 'a', 'local.test'], 'and logged', 'R: %s' % got)
ctl = d.path('ctl', 'control.sock')
st = os.stat(ctl) if os.path.exists(ctl) else None
ok(st is not None and stat.S_ISSOCK(st.st_mode), 'the Control_Listener socket is bound')
is_(st and oct(stat.S_IMODE(st.st_mode)), oct(0o600), 'the control socket is mode 0600')
try:
    with socket.create_connection(('127.0.0.1', ECS), timeout=t.DEADLINE):
        ecs = 'connected'
except OSError as e:
    ecs = type(e).__name__
is_(ecs, 'connected', 'the ECStream_Listener address is bound and accepts connections')

# ---------------------------------------------------------------- backlog
def ss_backlogs(opts):
    """{local address: Send-Q} of listening sockets: Send-Q is the backlog.
    Lines read [Netid] State Recv-Q Send-Q Local-Address ..."""
    out = subprocess.run(['ss', opts], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         universal_newlines=True).stdout
    got = {}
    for f in (ln.split() for ln in out.splitlines()):
        i = f.index('LISTEN') if 'LISTEN' in f else -1
        if i >= 0 and len(f) > i + 3:
            got[f[i + 3]] = f[i + 2]
    return got


if shutil.which('ss'):
    backlog = ss_backlogs('-ltnH')
    is_(backlog.get('127.0.0.1:%d' % BACKLOG), '7', 'address,7: listen backlog 7')
    is_(backlog.get('127.0.0.1:%d' % V4), '5', 'no backlog given: 5 (sluice.conf(5) LISTENERS)')
    is_(backlog.get('127.0.0.1:%d' % THREADS), '16', 'address,16~3: listen backlog 16')
    is_(ss_backlogs('-lxnH').get(sock), '9', 'a Unix socket path,9~2: listen backlog 9')
else:
    for n in range(4):
        t.skip('listen backlog', 'ss(8) is not installed')

# ---------------------------------------------------------------- accept threads
names = d.threads()
acc = sorted(n for n in names if n.startswith('acc:'))
is_([n for n in acc if n.startswith('acc:%d/' % THREADS)],
    ['acc:%d/0' % THREADS, 'acc:%d/1' % THREADS, 'acc:%d/2' % THREADS],
    '~3: three accept threads named acc:<port>/0..2')
is_([n for n in acc if n.startswith('acc:%d/' % V4)], ['acc:%d/0' % V4],
    'without ~N: one accept thread')
is_([n for n in acc if n.startswith('acc:smtp.sock/')], ['acc:smtp.sock/0', 'acc:smtp.sock/1'],
    'a Unix socket with ~2: two accept threads named after the socket')
is_([n for n in acc if n.startswith('acc:%d/' % OFF)], [], 'a disabled listener has no thread')
clients = [t.Client(THREADS) for _ in range(12)] + [t.Client(ANY4) for _ in range(4)]
ok(all(c.banner and c.banner.code == 220 for c in clients),
   'sixteen concurrent sessions on two listeners (one with ~3) are all served')
ids = [(c.dumpcontext()[0] or {}).get('session_id') for c in clients]
ok(all(ids) and len(set(ids)) == len(ids), 'every session has its own id, across accept threads '
   'and listeners', 'ids: %s' % ids)
for c in clients:
    c.close()
d.stop()
ok(not os.path.exists(sock), 'the Unix socket is removed at stop')

# ---------------------------------------------------------------- a port that is taken
BUSY = 2590
holder = socket.socket()
holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
holder.bind(('127.0.0.1', BUSY))
holder.listen(1)
conf = 'ESMTP_Listener = (\n  127.0.0.1:%d\n  127.0.0.1:%d\n)\n' % (V4, BUSY)
b = t.Sluiced(conf, name='busy')
text = open(b.conf_path).read().splitlines()
lineno = next(i + 1 for i, ln in enumerate(text) if ln.strip() == '127.0.0.1:%d' % BUSY)
rc, err = b.run_to_exit()
is_(rc, 1, 'a listener that cannot bind: sluiced exits 1')
like(err, r'%s:%d: cannot listen on 127\.0\.0\.1:%d \(ESMTP_Listener\): bind: Address already in use'
     % (re.escape(b.conf_path), lineno, BUSY), 'and says which address, which file:line and why')
ok(not os.path.exists(b.path('sluiced.pid')), 'and leaves no pidfile')
is_(answers(V4), REFUSED, 'nothing else was left listening')
b.check_sanitizers()
holder.close()
t.done()
