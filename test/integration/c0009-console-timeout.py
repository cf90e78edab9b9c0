#!/usr/bin/env python3
"""c0009-console-timeout: control_listener_timeout closes idle console sessions.

sluiced with control_listener_timeout = 2 and a Control_Listener on a Unix
socket:
  - a session that sends one command and then nothing is closed by sluiced
    after about 2 seconds (not before 1.5 s), with a notice in the paniclog;
  - a session that sends a command every 0.5 s is still answered after 4 s;
  - after a reload to control_listener_timeout = 0 (the default), an idle
    session is still open after 3.5 s.
Also: Use_MMAP, accepted for compatibility, gives its notice on standard
error at start-up, and control_listener_timeout (an option sluice reads)
gives none.
"""
import os
import socket
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, like, unlike  # noqa: E402

t.netns()

P = 2860


def conf(timeout):
    return '''
Use_MMAP = true
control_listener_timeout = %d
Control_Listener = ( "%%s/control.sock" [ 0.0.0.0/0 = ( ALWAYS-ALLOW ) ] )
''' % timeout + t.listener('127.0.0.1:%d' % P, t.ESC_ACL)


d = t.Sluiced('', name='ctltimeout')
sock_path = os.path.join(d.dir, 'control.sock')
d.write_conf(conf(2) % d.dir)
d.start()

like(d.stderr(), r'sluice\.conf:[0-9]+:1: Use_MMAP is accepted for compatibility and has no '
     r'effect in sluice \(', 'start-up prints the notice of an option without effect')
unlike(d.stderr(), r'control_listener_timeout is accepted',
       'an option sluice reads gets no notice')


def session():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(t.DEADLINE)
    s.connect(sock_path)
    return s


def ask(s, cmd=b'version\n'):
    """Send a command and read until its reply frame has come (any bytes)."""
    s.sendall(cmd)
    return s.recv(65536)


def closed_after(s, limit):
    """Seconds until sluiced closes s (recv gives EOF), or None within limit."""
    start = time.monotonic()
    s.settimeout(limit)
    try:
        while True:
            b = s.recv(4096)
            if b == b'':
                return time.monotonic() - start
    except (socket.timeout, TimeoutError):
        return None
    except OSError:
        return time.monotonic() - start


idle = session()
ok(len(ask(idle)) > 0, 'a console session is answered')
busy = session()
ok(len(ask(busy)) > 0, 'a second session is answered')

# The busy one keeps talking while the idle one waits.
t0 = time.monotonic()
idle.setblocking(False)
gone = None
busy_ok = True
while time.monotonic() - t0 < 4.5:
    try:
        if idle.recv(4096) == b'' and gone is None:
            gone = time.monotonic() - t0
    except BlockingIOError:
        pass
    except OSError:
        if gone is None:
            gone = time.monotonic() - t0
    busy_ok = busy_ok and len(ask(busy)) > 0
    time.sleep(0.5)
ok(gone is not None and 1.5 <= gone <= 4.0,
   'the idle session is closed after control_listener_timeout (%s s)' % gone)
ok(busy_ok, 'a session that keeps sending commands stays open past the timeout')
ok(t.wait_for(lambda: 'closed after 2 seconds idle (control_listener_timeout)' in d.paniclog()),
   'the paniclog says why the session was closed')
busy.close()
idle.close()

ok(d.reload(conf(0) % d.dir), 'reload: control_listener_timeout = 0')
s = session()
ok(len(ask(s)) > 0, 'a new session is answered')
is_(closed_after(s, 3.5), None, 'with 0, an idle session stays open')
s.close()

d.stop()
t.done()
