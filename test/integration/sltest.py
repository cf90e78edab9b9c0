"""sltest - shared helpers for sluice's Python integration tests.

A test script imports this module, calls netns() first (it re-runs the
script inside a private network namespace where only `lo` is up, so nothing
can leave the machine), starts one or more real sluiced daemons with
Sluiced(...), drives them with smtplib, swaks or the raw Client below, and
asserts with ok/is_/like/unlike/status.  done() prints the TAP plan and
exits 0 only when every assertion passed.

Every wait has a deadline (DEADLINE seconds, generous because the daemon
may be an ASan or TSan build); a watchdog ends a script that hangs.  The
daemon's stderr is kept per daemon and checked for sanitizer reports when
it stops.  Environment: top_builddir (where sluiced is), top_srcdir;
both default to the repository root.  SL_TEST_KEEP=1 keeps the temporary
directory.  Python standard library only.
"""
import atexit
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
import traceback

_HERE = os.path.dirname(os.path.abspath(__file__))
TOP_SRCDIR = os.environ.get('top_srcdir') or os.path.dirname(os.path.dirname(_HERE))
TOP_BUILDDIR = os.environ.get('top_builddir') or TOP_SRCDIR
SLUICED = os.path.join(TOP_BUILDDIR, 'sluiced')

DEADLINE = 20.0   # seconds to wait for anything that should happen
WATCHDOG = 150    # seconds before a hung script is stopped
HOSTNAME = 'sluice.test'
_TRACE = os.environ.get('SL_TEST_TRACE') == '1'   # print the raw client's exchanges

_SANITIZER_RE = re.compile(r'WARNING: ThreadSanitizer|ERROR: AddressSanitizer|'
                           r'ERROR: LeakSanitizer|runtime error')

# ------------------------------------------------------------------ TAP

_n = 0
_failed = 0
_daemons = []
_tmp_root = None


def diag(msg):
    for line in str(msg).splitlines() or ['']:
        print('# ' + line)
    sys.stdout.flush()


def ok(cond, name, *why):
    """One assertion: prints ok/not ok N - name; `why` is printed on failure."""
    global _n, _failed
    _n += 1
    name = name.replace('#', 'no.').replace('\n', ' ')
    if cond:
        print('ok %d - %s' % (_n, name))
    else:
        _failed += 1
        print('not ok %d - %s' % (_n, name))
        for w in why:
            diag(w)
    sys.stdout.flush()
    return bool(cond)


def is_(got, expected, name):
    return ok(got == expected, name, 'got:      %r' % (got,), 'expected: %r' % (expected,))


def like(got, pattern, name):
    return ok(re.search(pattern, str(got), re.M) is not None, name,
              'got:      %s' % (got,), 'expected to match: %s' % pattern)


def unlike(got, pattern, name):
    return ok(re.search(pattern, str(got), re.M) is None, name,
              'got:      %s' % (got,), 'expected not to match: %s' % pattern)


def skip(name, reason):
    global _n
    _n += 1
    print('ok %d - %s # SKIP %s' % (_n, name, reason))
    sys.stdout.flush()


def skip_all(reason):
    print('1..0 # SKIP %s' % reason)
    sys.exit(0)


def bail(reason):
    print('Bail out! %s' % reason.replace('\n', ' '))
    sys.stdout.flush()
    _cleanup()
    os._exit(1)


def done():
    """Stop what is left, print the plan and exit (0 only if all passed)."""
    for d in list(_daemons):
        if d.running():
            d.stop()
    print('1..%d' % _n)
    sys.stdout.flush()
    sys.exit(0 if _failed == 0 and _n > 0 else 1)


def status(reply, expected, name):
    """Assert a reply's code and enhanced code, e.g. status(r, '250 2.0.0', ...)
    or status(r, '500', ...) when no enhanced code is expected."""
    got = reply.status if reply is not None else '(no reply: connection closed)'
    return ok(got == expected, name, 'got:      %s' % (reply,), 'expected: %s ...' % expected)


# ------------------------------------------------------------------ set-up

def _cleanup():
    for d in list(_daemons):
        d.kill()
    if _tmp_root and not os.environ.get('SL_TEST_KEEP'):
        shutil.rmtree(_tmp_root, ignore_errors=True)


def _excepthook(etype, value, tb):
    diag(''.join(traceback.format_exception(etype, value, tb)))
    print('Bail out! unexpected %s: %s' % (etype.__name__, value))
    sys.stdout.flush()


def _watchdog(signum, frame):
    print('not ok %d - watchdog: the script ran longer than %d s' % (_n + 1, WATCHDOG))
    bail('watchdog expired')


def netns():
    """Re-run this script in a private network namespace with only lo up.

    Skips the whole script when namespaces are not available.  Inside,
    checks that loopback works and that sluiced is built, and sets up the
    watchdog and the temporary directory."""
    global _tmp_root
    if os.environ.get('SL_IN_NETNS') != '1':
        try:
            rc = subprocess.run(['unshare', '-n', 'true'], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, timeout=DEADLINE).returncode
        except (OSError, subprocess.SubprocessError):
            rc = 1
        if rc != 0:
            skip_all('cannot create a network namespace (need root or user namespaces)')
        env = dict(os.environ, SL_IN_NETNS='1', PYTHONDONTWRITEBYTECODE='1')
        sys.stdout.flush()
        script = os.path.abspath(sys.argv[0])
        os.execvpe('unshare', ['unshare', '-n', 'sh', '-c',
                               'ip link set lo up 2>/dev/null || ifconfig lo up; exec "$0" "$@"',
                               sys.executable, script] + sys.argv[1:], env)
    if not _loopback_works():
        bail('loopback does not work in the network namespace (is ip(8) installed?)')
    if not os.access(SLUICED, os.X_OK):
        bail('%s is not built' % SLUICED)
    sys.excepthook = _excepthook
    signal.signal(signal.SIGALRM, _watchdog)
    signal.alarm(WATCHDOG)
    _tmp_root = tempfile.mkdtemp(prefix='sluice-it.')
    atexit.register(_cleanup)
    if os.environ.get('SL_TEST_KEEP'):
        diag('temporary directory: %s' % _tmp_root)


def _loopback_works():
    try:
        with socket.socket() as srv:
            srv.bind(('127.0.0.1', 0))
            srv.listen(1)
            with socket.create_connection(srv.getsockname(), timeout=5):
                pass
        return True
    except OSError:
        return False


def has_ipv6_loopback():
    """True when ::1 can be bound in this namespace."""
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(('::1', 0))
        return True
    except OSError:
        return False


def wait_for(pred, timeout=DEADLINE, interval=0.02):
    """Poll pred() until it returns a true value (returned) or the deadline (None)."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= end:
            return None
        time.sleep(interval)
        interval = min(interval * 1.5, 0.2)


def tmpdir(name):
    path = os.path.join(_tmp_root, name)
    os.makedirs(path, exist_ok=True)
    return path


# ------------------------------------------------------------------ the daemon

BASE_CONF = '''\
# written by sltest.py
{hostname}SpoolBase = "spool"
Pidfile = "sluiced.pid"
ec_logger {{
  mainlog = "log/mainlog.ec"
  rejectlog = "log/rejectlog.ec"
  paniclog = "log/paniclog.ec"
  acctlog = "log/acctlog.ec"
  heartbeat = 3600
}}
'''


def listener(addr, acl='', attrs=''):
    """An ESMTP_Listener stanza for one address with an ACL body (the entries)."""
    s = 'ESMTP_Listener = (\n  %s%s' % (addr, ' <%s>' % attrs if attrs else '')
    if acl:
        s += ' [\n' + '\n'.join('    ' + ln for ln in acl.strip('\n').splitlines()) + '\n  ]'
    return s + '\n)\n'


# The ACL most tests use: enhanced status codes for everyone.
ESC_ACL = '0.0.0.0/0 = ( ENHANCEDSTATUSCODES [ extension = ENHANCEDSTATUSCODES ] )\n'


class Sluiced:
    """A sluiced daemon with its own state directory and configuration.

    conf is appended to a base (Hostname, SpoolBase, Pidfile, ec_logger);
    relative paths resolve against the state directory (-D)."""

    def __init__(self, conf, name='sluiced', hostname=HOSTNAME, state_dir=None):
        self.name = name
        self.dir = state_dir or tmpdir(name)
        self.conf_path = os.path.join(self.dir, 'sluice.conf')
        self.stderr_path = os.path.join(self.dir, 'stderr')
        self.proc = None
        self.rc = None
        self._err_off = 0
        self.write_conf(conf, hostname)
        _daemons.append(self)

    def write_conf(self, conf, hostname=HOSTNAME):
        text = BASE_CONF.format(hostname='Hostname = "%s"\n' % hostname if hostname else '')
        with open(self.conf_path, 'w') as f:
            f.write(text + conf)

    def path(self, *rel):
        return os.path.join(self.dir, *rel)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def spawn(self, args=()):
        """Start sluiced -F without waiting; returns the Popen."""
        err = open(self.stderr_path, 'ab')
        self._err_off = err.tell()
        self.proc = subprocess.Popen([SLUICED, '-F', '-c', self.conf_path, '-D', self.dir] +
                                     list(args), stdin=subprocess.DEVNULL, stdout=err,
                                     stderr=err, cwd=self.dir, start_new_session=True)
        err.close()
        self.rc = None
        return self.proc

    def start(self, args=()):
        """Start it and wait until it says it started; bails out of the whole
        script if it does not.  sluiced logs "started" after every listener
        is bound and listening and its accept threads run, so the ports
        accept from then on; a probe connection is avoided on purpose (it
        would count against listener_sessions until the daemon notices it
        closed)."""
        self.spawn(args)
        pid = self.proc.pid
        started = 'started (pid %d)' % pid
        if not wait_for(lambda: started in self.paniclog() or self.proc.poll() is not None):
            bail('%s did not start within %d s: %s' % (self.name, DEADLINE, self.stderr()))
        if self.proc.poll() is not None:
            bail('%s exited with %s at start: %s' % (self.name, self.proc.returncode,
                                                      self.stderr()))
        return self

    def run_to_exit(self, args=(), timeout=DEADLINE):
        """Run sluiced -F expecting it to exit by itself; returns (rc, stderr)."""
        self.spawn(args)
        try:
            self.rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self.rc = None
        return self.rc, self.stderr()

    def stderr(self):
        try:
            with open(self.stderr_path, 'rb') as f:
                f.seek(self._err_off)
                return f.read().decode('utf-8', 'replace')
        except OSError:
            return ''

    def sanitizer_report(self):
        return [ln for ln in self.stderr().splitlines() if _SANITIZER_RE.search(ln)]

    def stop(self, sig=signal.SIGTERM, check=True, timeout=30):
        """Stop it with `sig` and wait; with check, assert exit status 0 and a
        clean stderr (no sanitizer report).  Returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self.rc = None
        if check:
            is_(self.rc, 0, '%s: exits 0 on %s' % (self.name, signal.Signals(sig).name))
            self.check_sanitizers()
        return self.rc

    def check_sanitizers(self):
        rep = self.sanitizer_report()
        return ok(not rep, '%s: no sanitizer report on stderr' % self.name, *rep[:20])

    def kill(self):
        """SIGKILL (the test's crash, or clean-up); waits for the process."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=DEADLINE)
            except subprocess.TimeoutExpired:
                pass
        if self.proc is not None:
            self.rc = self.proc.returncode

    # -------------------------------------------------------------- logs

    def _read(self, rel):
        try:
            with open(self.path('log', rel), 'rb') as f:
                return f.read().decode('utf-8', 'replace')
        except OSError:
            return ''

    def paniclog(self):
        return self._read('paniclog.ec')

    def mainlog(self):
        return self._read('mainlog.ec')

    def rejectlog(self):
        return self._read('rejectlog.ec')

    def rejectlog_lines(self):
        return [ln for ln in self.rejectlog().splitlines() if ln]

    def r_lines(self, qid=None):
        """The mainlog reception lines, split into their @-fields (escapes kept)."""
        out = []
        for ln in self.mainlog().splitlines():
            f = split_eclog(ln)
            if len(f) > 4 and f[4] == 'R' and (qid is None or f[1] == qid):
                out.append(f)
        return out

    def wait_r_lines(self, qid, n=1, timeout=DEADLINE):
        """Wait until the mainlog holds at least n R lines for qid; returns them."""
        return wait_for(lambda: (lambda ls: ls if len(ls) >= n else None)(self.r_lines(qid)),
                        timeout) or self.r_lines(qid)

    def wait_log(self, which, pattern, timeout=DEADLINE):
        """Wait for a line matching `pattern` in 'paniclog'/'mainlog'/'rejectlog';
        returns the whole line, or None."""
        rx = re.compile(pattern)

        def find():
            for ln in getattr(self, which)().splitlines():
                if rx.search(ln):
                    return ln
            return None
        return wait_for(find, timeout)

    def rejects_from(self, port, timeout=None):
        """Rejectlog lines of the client whose source port was `port`
        (R="127.0.0.1:port"); with timeout, wait until there is one."""
        rx = re.compile(r'R="[^"]*:%d"' % port)
        get = lambda: [ln for ln in self.rejectlog_lines() if rx.search(ln)]  # noqa: E731
        if timeout:
            wait_for(get, timeout)
        return get()

    def sync_mainlog(self, port, host='127.0.0.1'):
        """Send a marker message and wait for its R line: the mainlog is written
        in order, so every earlier reception is in the file afterwards."""
        s = smtp(port, host)
        s.ehlo('sync.test')
        s.mail('sync@local.test')
        s.rcpt('sync@local.test')
        code, resp = s.data(message('sync'))
        s.quit()
        qid = queue_id(resp)
        self.wait_r_lines(qid)
        return qid

    def sync_rejectlog(self, port, host='127.0.0.1'):
        """Make one refusal and wait for its rejectlog line (same ordering idea)."""
        c = Client(port, host)
        lport = c.local_port
        c.cmd('SYNC-REJECTLOG')
        c.close()
        return self.rejects_from(lport, timeout=DEADLINE)

    def threads(self):
        """Names of the daemon's threads (/proc/PID/task/*/comm)."""
        names = []
        base = '/proc/%d/task' % self.pid
        for tid in os.listdir(base):
            try:
                with open(os.path.join(base, tid, 'comm')) as f:
                    names.append(f.read().strip())
            except OSError:
                pass
        return names


def split_eclog(line):
    """Split a mainlog line at '@' that is not escaped ('\\@')."""
    fields, cur, i = [], '', 0
    while i < len(line):
        ch = line[i]
        if ch == '\\' and i + 1 < len(line):
            cur += line[i:i + 2]
            i += 2
            continue
        if ch == '@':
            fields.append(cur)
            cur = ''
        else:
            cur += ch
        i += 1
    fields.append(cur)
    return fields


QID_RE = r'[0-9A-F]{8}-[0-9A-F]{12}'
CONNID_RE = r'[0-9A-F]{8}-[0-9A-F]{12}'


def queue_id(text):
    """The id in 'Ok: queued as <id>' (bytes or str), or None."""
    if isinstance(text, bytes):
        text = text.decode('utf-8', 'replace')
    m = re.search(r'queued as (\S+)', str(text))
    return m.group(1) if m else None


# ------------------------------------------------------------------ clients

def message(subject='test', body='Hello.\r\n', date=True, msgid=True, headers=()):
    """A small RFC 5322 message as bytes with CRLF line ends."""
    h = ['From: <sender@local.test>', 'To: <rcpt@local.test>', 'Subject: %s' % subject]
    if date:
        h.append('Date: Thu, 26 Nov 2026 12:00:00 +0000')
    if msgid:
        h.append('Message-ID: <%s.%f@client.test>' % (subject.replace(' ', '-'), time.time()))
    h.extend(headers)
    return ('\r\n'.join(h) + '\r\n\r\n' + body).encode()


def smtp(port, host='127.0.0.1'):
    """An smtplib client (not yet greeted) with the deadline as its timeout."""
    return smtplib.SMTP(host, port, local_hostname='client.test', timeout=DEADLINE)


class Reply:
    """One SMTP reply: code, the text of each line, and the raw lines."""

    def __init__(self, raw_lines):
        self.raw = raw_lines
        self.code = 0
        self.lines = []
        for ln in raw_lines:
            m = re.match(r'^(\d{3})([ -]?)(.*)$', ln)
            if m:
                self.code = int(m.group(1))
                self.lines.append(m.group(3))
            else:
                self.code = 0
                self.lines.append(ln)
        last = self.lines[-1] if self.lines else ''
        m = re.match(r'^([245]\.\d{1,3}\.\d{1,3})(?: |$)', last)
        self.esc = m.group(1) if m else None
        self.text = '\n'.join(self.lines)

    @property
    def status(self):
        """'250 2.0.0' (code and enhanced code of the last line) or '250'."""
        return '%d %s' % (self.code, self.esc) if self.esc else '%d' % self.code

    @property
    def last(self):
        return self.raw[-1] if self.raw else ''

    def __str__(self):
        return ' | '.join(self.raw)

    __repr__ = __str__


class Client:
    """A raw SMTP client over a socket, for byte-exact exchanges.

    Client(port) connects to 127.0.0.1:port (host='::1' for IPv6,
    path='/x' for a Unix socket; source='127.0.0.2' to connect from another
    loopback address) and reads the greeting into .banner.
    Every read has a deadline; reply() returns None when the server
    closed the connection."""

    def __init__(self, port=None, host='127.0.0.1', path=None, timeout=DEADLINE, greet=True,
                 source=None):
        if path is not None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            addr = path
        else:
            fam = socket.AF_INET6 if ':' in host else socket.AF_INET
            self.sock = socket.socket(fam, socket.SOCK_STREAM)
            addr = (host, port)
            if source:  # any 127/8 address works on lo: a client from 127.0.0.2
                self.sock.bind((source, 0))
        self.timeout = timeout
        self.sock.settimeout(timeout)
        self.sock.connect(addr)
        self.buf = b''
        self.eof = False
        self.banner = self.reply() if greet else None

    @property
    def local_port(self):
        name = self.sock.getsockname()
        return name[1] if isinstance(name, tuple) else 0

    def send(self, data):
        if isinstance(data, str):
            data = data.encode('utf-8', 'surrogateescape')
        if _TRACE:
            diag('C: %r' % data[:300])
        self.sock.sendall(data)

    def _fill(self, end):
        left = end - time.monotonic()
        if left <= 0 or self.eof:
            return False
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return False
        except OSError:
            chunk = b''
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def line(self, timeout=None):
        """The next line without its CRLF (str), or None on EOF or deadline."""
        end = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while b'\n' not in self.buf:
            if not self._fill(end):
                return None
        ln, self.buf = self.buf.split(b'\n', 1)
        if _TRACE:
            diag('S: %r' % ln)
        return ln.rstrip(b'\r').decode('utf-8', 'replace')

    def reply(self, timeout=None):
        """The next complete (possibly multi-line) reply, or None."""
        end = time.monotonic() + (timeout if timeout is not None else self.timeout)
        lines = []
        while True:
            ln = self.line(max(0.0, end - time.monotonic()))
            if ln is None:
                return Reply(lines) if lines else None
            lines.append(ln)
            if len(ln) < 4 or ln[3] != '-':
                return Reply(lines)

    def replies(self, n, timeout=None):
        """n replies (None for each one that did not come)."""
        end = time.monotonic() + (timeout if timeout is not None else self.timeout)
        return [self.reply(max(0.0, end - time.monotonic())) for _ in range(n)]

    def cmd(self, text, timeout=None):
        """Send one command line (CRLF added) and read its reply."""
        self.send(text + '\r\n')
        return self.reply(timeout)

    def ehlo(self, name='client.test'):
        return self.cmd('EHLO ' + name)

    def dumpcontext(self):
        """XDUMPCONTEXT as {name: value} of its "[connection] name value" lines
        (None when refused), and the reply."""
        r = self.cmd('XDUMPCONTEXT')
        if r is None or r.code != 250:
            return None, r
        ctx = {}
        for ln in r.lines:
            m = re.match(r'^(?:2\.0\.0 )?\[connection\] (\S+) ?(.*)$', ln)
            if m:
                ctx[m.group(1)] = m.group(2)
        return ctx, r

    def closed(self, timeout=None):
        """True when the server closes the connection before the deadline
        (bytes that arrive first stay in .buf)."""
        end = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while not self.eof:
            if not self._fill(end) and not self.eof:
                return False
        return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def send_message(c, sender, rcpts, data, ehlo=True):
    """Run one transaction on a raw Client, one command at a time; `data` is
    sent as given (it must carry its own CRLF.CRLF).  Returns the replies
    [ehlo?, mail, rcpt..., data, end-of-data]; stops early at a refusal of
    MAIL or DATA (None in the places not reached)."""
    out = []
    if ehlo:
        out.append(c.ehlo())
    r = c.cmd('MAIL FROM:<%s>' % sender)
    out.append(r)
    if r is None or r.code != 250:
        return out + [None] * (len(rcpts) + 2)
    for a in rcpts:
        out.append(c.cmd('RCPT TO:<%s>' % a))
    r = c.cmd('DATA')
    out.append(r)
    if r is None or r.code != 354:
        return out + [None]
    c.send(data)
    out.append(c.reply())
    return out
