#!/usr/bin/env python3
"""c0004-sluicectl-tty: sluicectl on a terminal (line editing and history).

Inside a private network namespace, sluiced with a Control_Listener on a
Unix socket (ALWAYS-ALLOW); sluicectl runs on a pseudo-terminal with HOME
in a temporary directory:
  - the "sluicectl> " prompt appears; `version` runs and prints its reply;
  - the Up arrow recalls the previous command and Enter runs it again;
  - an empty line runs nothing and is not kept in the history;
  - Ctrl-D ends the session with exit status 0, and the history file
    ($HOME/.sluicectl_history, mode 0600) holds the commands in order;
  - a second session reads that history back (Up recalls the last command
    of the first); Tab completes nothing (no file names); `quit` ends it
    with exit status 0;
  - a third session ended by Ctrl-C (SIGINT) has its commands in the
    history all the same (it is written after each command).
Every read from the terminal has a deadline.
"""
import fcntl
import os
import re
import select
import signal
import stat
import struct
import sys
import termios
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, diag  # noqa: E402

t.netns()

CTL = os.path.join(t.TOP_BUILDDIR, 'sluicectl')
PROMPT = rb'sluicectl> '
UP, ENTER, CTRL_C, CTRL_D = b'\x1b[A', b'\r', b'\x03', b'\x04'


class Tty:
    """sluicectl on a pseudo-terminal (24x80, TERM=vt100) as its controlling
    terminal.

    libedit prints its prompt before it puts the terminal in raw mode (at its
    first read), and a key that arrives in between is taken by the line
    discipline in canonical mode: echoed as "^[[A", and a Ctrl-D is lost (it
    is no end of file in raw mode).  A person never types that fast; a script
    does, so send() waits until the terminal is raw.  To see that, the script
    keeps the slave side open as well, so the program's end shows as its
    exit (wait()), not as an end of file on the master."""

    def __init__(self, args, env):
        self.fd, self.slave = os.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack('HHHH', 24, 80, 0, 0))
        self.pid = os.fork()
        if self.pid == 0:
            try:
                os.setsid()
                fcntl.ioctl(self.slave, termios.TIOCSCTTY, 0)
                for n in (0, 1, 2):
                    os.dup2(self.slave, n)
                os.execve(args[0], args, env)
            finally:
                os._exit(127)
        self.out = b''     # read but not yet matched
        self.before = b''  # what came before the last match
        self.seen = b''    # everything read, for diagnostics

    def is_raw(self):
        return not termios.tcgetattr(self.slave)[3] & termios.ICANON

    def send(self, keys):
        """Type keys once the terminal is in raw mode (see above)."""
        if not t.wait_for(self.is_raw):
            diag('the terminal is not in raw mode after %d s' % t.DEADLINE)
        os.write(self.fd, keys)

    def _read(self, timeout):
        r, _, _ = select.select([self.fd], [], [], max(timeout, 0))
        if r:
            chunk = os.read(self.fd, 4096)
            self.out += chunk
            self.seen += chunk

    def expect(self, pattern, timeout=t.DEADLINE):
        """Read until `pattern` (bytes) matches what was read since the last
        match; returns the match (and keeps what came before it in
        self.before), or None at the deadline."""
        rx = re.compile(pattern)
        end = time.monotonic() + timeout
        while True:
            m = rx.search(self.out)
            if m:
                self.before = self.out[:m.start()]
                self.out = self.out[m.end():]
                return m
            if time.monotonic() >= end:
                return None
            self._read(end - time.monotonic())

    def wait(self, timeout=t.DEADLINE):
        """Read the output until the program exits; its exit status (minus the
        signal that killed it), or None (and the program killed) at the deadline."""
        end = time.monotonic() + timeout
        while True:
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                rc = os.waitstatus_to_exitcode(st)
                break
            if time.monotonic() >= end:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                rc = None
                break
            self._read(0.05)
        os.close(self.fd)
        os.close(self.slave)
        return rc


d = t.Sluiced('', name='ctl-tty')
sock = os.path.join(d.dir, 'control.sock')
d.write_conf('Control_Listener = ( "%s" [ 0.0.0.0/0 = ( ALWAYS-ALLOW ) ] )\n' % sock)
d.start()

home = t.tmpdir('home')
hist_path = os.path.join(home, '.sluicectl_history')
env = {'HOME': home, 'TERM': 'vt100', 'PATH': os.environ.get('PATH', '/usr/bin:/bin')}
VERSION = rb'sluiced \d+\.\d+\.\d+\r?\n'


def history():
    """The commands in the history file (libedit's "_HiStOrY_V2_" header dropped)."""
    with open(hist_path) as f:
        return [ln for ln in f.read().splitlines() if not ln.startswith('_HiStOrY_')]


# ---------------------------------------------------------------- a first session
tty = Tty([CTL, '-s', sock], env)
ok(tty.expect(PROMPT), 'the prompt appears', tty.seen)
tty.send(b'version' + ENTER)
ok(tty.expect(VERSION) and tty.expect(PROMPT), 'version runs and prints its reply', tty.seen)
tty.send(UP)
ok(tty.expect(rb'version'), 'Up recalls the previous command', tty.seen)
tty.send(ENTER)
ok(tty.expect(VERSION) and tty.expect(PROMPT), '... and Enter runs it again', tty.seen)
tty.send(b'pid' + ENTER)
ok(tty.expect(rb'\n%d\r?\n' % d.pid) and tty.expect(PROMPT), 'pid runs', tty.seen)
tty.send(ENTER)
ok(tty.expect(PROMPT) and b'sluiced' not in tty.before and b'%d' % d.pid not in tty.before,
   'an empty line runs nothing: only a new prompt', tty.seen)
tty.send(CTRL_D)
is_(tty.wait(), 0, 'Ctrl-D ends the session with exit status 0')
ok(os.path.exists(hist_path), 'the history file is written', os.listdir(home))
if os.path.exists(hist_path):
    is_(history(), ['version', 'version', 'pid'],
        'it holds the commands in order, the empty line left out')
    is_(stat.S_IMODE(os.stat(hist_path).st_mode), 0o600, 'it is mode 0600')

# ---------------------------------------------------------------- the history is read back
tty = Tty([CTL, '-s', sock], env)
ok(tty.expect(PROMPT), 'a second session: the prompt', tty.seen)
tty.send(UP + ENTER)
ok(tty.expect(rb'\n%d\r?\n' % d.pid), 'Up recalls the last command of the first session '
   '(the history is read back)', tty.seen)
tty.send(b'ver\tsion' + ENTER)
ok(tty.expect(VERSION) and tty.expect(PROMPT), 'Tab completes nothing and inserts nothing',
   tty.seen)
tty.send(b'quit' + ENTER)
ok(tty.expect(rb'bye\r?\n'), 'quit: the console says bye', tty.seen)
is_(tty.wait(), 0, '... and the session ends with exit status 0')
diag('history: %r' % history())

# ---------------------------------------------------------------- Ctrl-C
tty = Tty([CTL, '-s', sock], env)
tty.expect(PROMPT)
tty.send(b'help' + ENTER)
ok(tty.expect(rb'config reload') and tty.expect(PROMPT), 'a third session: help', tty.seen)
tty.send(b'summ' + CTRL_C)
is_(tty.wait(), -signal.SIGINT, 'Ctrl-C interrupts sluicectl')
is_(history()[-2:], ['quit', 'help'], '... its commands are in the history all the same')

d.stop()
t.done()
