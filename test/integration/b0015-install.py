#!/usr/bin/env python3
"""b0015-install: `make install` into a DESTDIR, and the installed daemon.

  - make install DESTDIR=... prefix=/usr sysconfdir=/etc localstatedir=/var
    puts the binaries, the man pages, the ECStream client library and its
    headers, a sample configuration (and sluice.conf from it), the systemd
    unit (Type=notify, ExecReload sends SIGHUP, Restart=on-failure, the
    install paths filled in) and the logrotate snippet in their places;
  - a second install keeps an edited sluice.conf;
  - the installed sluiced checks the installed configuration (-t), and run
    in the foreground on it (in a private network namespace) tells the
    service manager READY=1 with its MAINPID through $NOTIFY_SOCKET once it
    answers 220 on 127.0.0.1:2525, RELOADING=1 then READY=1 on SIGHUP, and
    STOPPING=1 on SIGTERM, then exits 0.
"""
import os
import re
import signal
import socket
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, like, diag  # noqa: E402

t.netns()

root = t.tmpdir('install-root')
dest = os.path.join(root, 'dest')


def install():
    return subprocess.run(['make', '-C', t.TOP_BUILDDIR, 'install', 'DESTDIR=' + dest,
                           'prefix=/usr', 'sysconfdir=/etc', 'localstatedir=/var'],
                          capture_output=True, timeout=600)


r = install()
is_(r.returncode, 0, 'make install DESTDIR=... prefix=/usr sysconfdir=/etc localstatedir=/var')
if r.returncode != 0:
    diag(r.stderr.decode()[-1500:])
want = ['usr/sbin/sluiced', 'usr/bin/sluice-inject', 'usr/bin/sluice-bench', 'usr/bin/sluicectl',
        'usr/share/man/man8/sluicectl.8',
        'usr/share/man/man8/sluiced.8', 'usr/share/man/man5/sluice.conf.5',
        'usr/share/man/man5/sluice-spool.5', 'usr/share/man/man7/sluice-ecstream.7',
        'usr/share/man/man1/sluice-inject.1', 'usr/share/man/man1/sluice-bench.1',
        'usr/lib/libsluice-ecstream.a', 'usr/include/sluice/proto/ecstream.h',
        'usr/include/sluice/engine/buf.h', 'etc/sluice/sluice.conf.sample',
        'etc/sluice/sluice.conf', 'usr/lib/systemd/system/sluiced.service',
        'etc/logrotate.d/sluice', 'usr/share/snmp/mibs/SLUICE-MIB.txt',
        'usr/share/snmp/mibs/SLUICE-SMI.txt']
missing = [p for p in want if not os.path.isfile(os.path.join(dest, p))]
is_(missing, [], 'every file is installed in its place')
for p in ('usr/sbin/sluiced', 'usr/bin/sluice-inject', 'usr/bin/sluice-bench'):
    ok(os.access(os.path.join(dest, p), os.X_OK), '%s is executable' % p)
unit = open(os.path.join(dest, 'usr/lib/systemd/system/sluiced.service')).read()
like(unit, r'^Type=notify$', 'the unit: Type=notify (the daemon says when it is ready)')
like(unit, r'^ExecStart=/usr/sbin/sluiced -F -c /etc/sluice/sluice\.conf -D /var/lib/sluice$',
     '... ExecStart with the install paths')
like(unit, r'^ExecReload=/bin/kill -HUP \$MAINPID$', '... ExecReload sends SIGHUP')
like(unit, r'^Restart=on-failure$', '... restarted on failure')
ok('@' not in unit, '... no placeholder left', unit)
rot = open(os.path.join(dest, 'etc/logrotate.d/sluice')).read()
like(rot, r'^/var/lib/sluice/sluice-state/log/\*\.ec \{', 'logrotate: the ec_logger files')
like(rot, r'/usr/bin/sluicectl -s /var/lib/sluice/sluice-state/control\.sock \\\n\s+reopen logs',
     '... and sluiced reopens them (sluicectl reopen logs)')
like(rot, r'kill -USR1 .*/var/lib/sluice/sluice-state/sluiced\.pid', '... or SIGUSR1 without a console')

conf = os.path.join(dest, 'etc/sluice/sluice.conf')
with open(conf, 'a') as f:
    f.write('\n# edited by the operator\n')
r = install()
ok(r.returncode == 0 and 'edited by the operator' in open(conf).read(),
   'a second install keeps an edited sluice.conf')

sluiced = os.path.join(dest, 'usr/sbin/sluiced')
state = os.path.join(root, 'state')
os.makedirs(state)  # systemd's StateDirectory= makes /var/lib/sluice
r = subprocess.run([sluiced, '-t', '-c', conf, '-D', state], capture_output=True, timeout=60)
is_(r.returncode, 0, 'the installed sluiced accepts the installed configuration (-t)')

# ---------------------------------------------------------------- sd_notify
nsock_path = os.path.join(root, 'notify.sock')
nsock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
nsock.bind(nsock_path)
nsock.settimeout(t.DEADLINE)
env = dict(os.environ, NOTIFY_SOCKET=nsock_path)
proc = subprocess.Popen([sluiced, '-F', '-c', conf, '-D', state], env=env,
                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def note():
    try:
        return nsock.recv(4096).decode()
    except socket.timeout:
        return None


first = note()
ok(first is not None and re.search(r'(^|\n)READY=1(\n|$)', first) and
   'MAINPID=%d' % proc.pid in first,
   'the installed daemon says READY=1 with MAINPID=%d' % proc.pid, first)
c = t.Client(2525)
is_(c.banner.code if c.banner else None, 220, '... and then answers 220 on 127.0.0.1:2525')
c.close()
proc.send_signal(signal.SIGHUP)
a, b = note(), note()
is_((a, b), ('RELOADING=1', 'READY=1'), 'SIGHUP: RELOADING=1, then READY=1')
proc.send_signal(signal.SIGTERM)
is_(note(), 'STOPPING=1', 'SIGTERM: STOPPING=1')
try:
    rc = proc.wait(timeout=60)
except subprocess.TimeoutExpired:
    proc.kill()
    rc = None
is_(rc, 0, '... and it exits 0')
err = proc.stderr.read().decode()
ok(not re.search(r'ERROR: (Address|Leak|Thread)Sanitizer|runtime error:', err),
   'no sanitizer report on stderr', err[-1500:])
nsock.close()
t.done()
