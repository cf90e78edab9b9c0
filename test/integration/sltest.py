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
import threading
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


def sanitizer():
    """'asan'/'tsan' when sluiced is a sanitizer build, else ''."""
    s = os.environ.get('SL_SANITIZER', '')
    if s:
        return s
    try:
        with open(os.path.join(TOP_BUILDDIR, 'Makefile')) as f:
            m = re.search(r'^SL_SANITIZER = (\S+)', f.read(), re.M)
        return m.group(1) if m else ''
    except OSError:
        return ''


# ------------------------------------------------------------------ TAP

_n = 0
_failed = 0
_daemons = []
_peers = []      # receivers and servers of the delivery tests, stopped at the end
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
    for p in list(_peers):
        p.stop()
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
    for p in list(_peers):
        try:
            p.stop()
        except Exception:  # noqa: BLE001 (clean-up goes on whatever happened)
            pass
    if _tmp_root and not os.environ.get('SL_TEST_KEEP'):
        shutil.rmtree(_tmp_root, ignore_errors=True)


class _Tracked:
    """A process a test started itself (snmpd, snmptrapd), stopped at exit."""

    def __init__(self, proc):
        self.proc = proc

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def track(proc):
    """Stop subprocess.Popen `proc` when the script ends, however it ends; returns proc."""
    _peers.append(_Tracked(proc))
    return proc


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


def udp_bound(port):
    """True once a socket of this network namespace is bound to UDP port `port`."""
    for table in ('/proc/net/udp', '/proc/net/udp6'):
        try:
            with open(table) as f:
                next(f)
                for ln in f:
                    if int(ln.split()[1].rsplit(':', 1)[1], 16) == port:
                        return True
        except OSError:
            pass
    return False


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
  bouncelog = "log/bouncelog.ec"
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
        if not rep:
            return ok(True, '%s: no sanitizer report on stderr' % self.name)
        # The whole report (stacks included), so a CI log alone explains it.
        lines = self.stderr().splitlines()
        start = next(i for i, ln in enumerate(lines) if _SANITIZER_RE.search(ln))
        return ok(False, '%s: no sanitizer report on stderr' % self.name,
                  *lines[start:start + 120])

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

    def bouncelog(self):
        return self._read('bouncelog.ec')

    def outcomes(self, kinds='DTP', qid=None, domain=None):
        """The mainlog's delivery lines (D, T, P) as Outcome objects, in order;
        only those of `kinds`, of message `qid` and to `domain` when given."""
        out = []
        for ln in self.mainlog().splitlines():
            o = Outcome.parse(ln)
            if o is not None and o.kind in kinds and (qid is None or o.qid == qid) and \
                    (domain is None or o.domain == domain):
                out.append(o)
        return out

    def wait_outcomes(self, n, kinds='DTP', qid=None, domain=None, timeout=DEADLINE):
        """Wait until there are at least n such lines; returns them (fewer on timeout)."""
        get = lambda: self.outcomes(kinds, qid, domain)  # noqa: E731
        return wait_for(lambda: (lambda x: x if len(x) >= n else None)(get()), timeout) or get()

    def bounces(self, qid=None):
        """The bouncelog's lines as Bounce objects (of message `qid` when given)."""
        out = []
        for ln in self.bouncelog().splitlines():
            b = Bounce.parse(ln)
            if b is not None and (qid is None or b.qid == qid):
                out.append(b)
        return out

    def spool_segments(self):
        """Names of the segment files in the spool directory, sorted."""
        try:
            return sorted(f for f in os.listdir(self.path('spool')) if re.match(r'seg-.*\.sl$', f))
        except OSError:
            return []

    def reload(self, conf=None):
        """Rewrite the configuration (when given) and send SIGHUP; waits for the
        paniclog to report the next generation and returns that line."""
        def mine():   # the paniclog since this process started
            text = self.paniclog()
            at = text.rfind('started (pid %d)' % self.pid)
            return text[at:] if at >= 0 else ''
        gens = re.findall(r'generation (\d+)', mine())
        want = (max(int(g) for g in gens) if gens else 1) + 1
        if conf is not None:
            self.write_conf(conf)
        self.proc.send_signal(signal.SIGHUP)
        rx = re.compile(r'^.*reloaded.*generation %d\b.*$' % want, re.M)
        return wait_for(lambda: (lambda m: m.group(0) if m else None)(rx.search(mine())))

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


# A rejectlog line, Momentum's version-2 layout (log_formats C.1.3; sluiced(8)):
# time: R= L= C= PATH= PATH_GRP= P= E= M= CTXCONN=[..] CTXMESS=[..] text
_CTX = r'((?:[^\]"]|"(?:[^"\\]|\\.)*")*)'
REJECT_RE = re.compile(r'^(\d+): R="([^"]*)" L="([^"]*)" C="([^"]*)" PATH="([^"]*)" '
                       r'PATH_GRP="([^"]*)" P="([^"]*)" E=(\d{3}) M=(\S+) '
                       r'CTXCONN=\[' + _CTX + r'\] CTXMESS=\[' + _CTX + r'\] (.*)$')


def split_reject_ctx(text):
    """'k=v,k2="a b"' (a CTXCONN/CTXMESS body) as a dict, quotes and escapes undone."""
    out, i, n = {}, 0, len(text)
    while i < n:
        eq = text.index('=', i)
        key, i = text[i:eq], eq + 1
        val = ''
        if i < n and text[i] == '"':
            i += 1
            while i < n and text[i] != '"':
                if text[i] == '\\' and i + 1 < n:
                    i += 1
                val += text[i]
                i += 1
            i += 1
        else:
            while i < n and text[i] != ',':
                val += text[i]
                i += 1
        out[key] = val
        i += 1  # the ','
    return out


def parse_reject(line):
    """A rejectlog line as a dict (time, R, L, C, PATH, PATH_GRP, P, E, M,
    CTXCONN, CTXMESS as dicts, text), or None if it is not in the format."""
    m = REJECT_RE.match(line or '')
    if m is None:
        return None
    g = m.groups()
    return dict(time=int(g[0]), R=g[1], L=g[2], C=g[3], PATH=g[4], PATH_GRP=g[5], P=g[6],
                E=int(g[7]), M=g[8], CTXCONN=split_reject_ctx(g[9]),
                CTXMESS=split_reject_ctx(g[10]), text=g[11])


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


# ------------------------------------------------------------------ delivery: logs

def unescape_eclog(field):
    """A mainlog/bouncelog field without its escapes (\\@ \\\\ \\n \\r)."""
    out, i = '', 0
    while i < len(field):
        if field[i] == '\\' and i + 1 < len(field):
            out += {'n': '\n', 'r': '\r'}.get(field[i + 1], field[i + 1])
            i += 2
        else:
            out += field[i]
            i += 1
    return out


class Outcome:
    """One D, T or P line of the mainlog (stages/eclog.h):
        time@msgid@batchid@connid@D@domain@size@group@binding@retries@secs@ip
        time@msgid@batchid@connid@T|P@domain@bytes@group@binding@stage@retries@secs@ip@response
    Numbers are ints (secs a float); stage is None on D lines."""

    def __init__(self, f):
        self.fields = f
        self.time, self.qid, self.batch, self.conn_id, self.kind = int(f[0]), f[1], f[2], f[3], f[4]
        self.domain = unescape_eclog(f[5])
        self.size = int(f[6])
        self.group, self.binding = unescape_eclog(f[7]), unescape_eclog(f[8])
        if self.kind == 'D':
            self.stage = None
            self.retries, self.secs, self.ip = int(f[9]), float(f[10]), unescape_eclog(f[11])
            self.response = ''
        else:
            self.stage, self.retries, self.secs = int(f[9]), int(f[10]), float(f[11])
            self.ip, self.response = unescape_eclog(f[12]), unescape_eclog(f[13])

    @staticmethod
    def parse(line):
        f = split_eclog(line)
        if len(f) < 5 or f[4] not in ('D', 'T', 'P'):
            return None
        if (f[4] == 'D' and len(f) != 12) or (f[4] != 'D' and len(f) != 14):
            return Outcome.Bad(line)
        try:
            return Outcome(f)
        except ValueError:
            return Outcome.Bad(line)

    class Bad:
        """A D/T/P line that does not have the documented fields (asserted against)."""
        kind = 'bad'
        qid = domain = None

        def __init__(self, line):
            self.line = line

        def __repr__(self):
            return 'BAD LINE %r' % self.line

    def __repr__(self):
        return '@'.join(self.fields)


class Bounce:
    """One bouncelog line (proto/bounce.h):
    time@msgid@batchid@connid@B@rcpt_local@rcpt_domain@sender_local@sender_domain@
        group@binding@stage@class@size@ip@text"""

    def __init__(self, f):
        self.fields = f
        self.time, self.qid, self.kind = int(f[0]), f[1], f[4]
        self.rcpt = unescape_eclog(f[5]) + '@' + unescape_eclog(f[6])
        self.sender = unescape_eclog(f[7]) + ('@' + unescape_eclog(f[8]) if f[8] else '')
        self.group, self.binding = unescape_eclog(f[9]), unescape_eclog(f[10])
        self.stage, self.code, self.size = int(f[11]), int(f[12]), int(f[13])
        self.ip, self.text = unescape_eclog(f[14]), unescape_eclog(f[15])

    @staticmethod
    def parse(line):
        f = split_eclog(line)
        if len(f) != 16 or f[4] not in ('B', 'T'):
            return None
        try:
            return Bounce(f)
        except ValueError:
            return None

    def __repr__(self):
        return '@'.join(self.fields)


# ------------------------------------------------------------------ delivery: peers

def require_modules(*names):
    """Call before netns().  When a module does not import here but Debian's
    /usr/bin/python3 (where python3-<module> packages install) is another
    interpreter that has it, re-run the script with that one; else skip all."""
    import importlib
    missing = []
    for n in names:
        try:
            importlib.import_module(n)
        except ImportError:
            missing.append(n)
    if not missing:
        return
    deb = '/usr/bin/python3'
    if os.environ.get('SL_REEXEC_PY') != '1' and os.access(deb, os.X_OK) and \
            os.path.realpath(deb) != os.path.realpath(sys.executable):
        probe = subprocess.run([deb, '-c', 'import ' + ','.join(missing)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if probe.returncode == 0:
            sys.stdout.flush()
            os.execve(deb, [deb, os.path.abspath(sys.argv[0])] + sys.argv[1:],
                      dict(os.environ, SL_REEXEC_PY='1'))
    skip_all('Python modules missing: %s (Debian: apt-get install %s)' % (
        ', '.join(missing), ' '.join('python3-' + m for m in missing)))


def port_listening(addr, port):
    """True when a TCP socket listens on addr:port in this namespace (/proc/net/tcp;
    no probe connection, which a peer would count)."""
    want = '%s:%04X' % (''.join('%02X' % int(b) for b in reversed(addr.split('.'))), port)
    try:
        with open('/proc/net/tcp') as f:
            for ln in f.readlines()[1:]:
                p = ln.split()
                if p[1] == want and p[3] == '0A':
                    return True
    except OSError:
        pass
    return False


class SinkMsg:
    """One transaction smtp-sink dumped: client address, EHLO argument, MAIL and
    RCPT arguments, and the content as received (LF line ends, dot-stuffing
    removed, smtp-sink's own Received: header left out)."""

    def __init__(self, path):
        with open(path, 'rb') as f:
            raw = f.read()
        self.path = path
        self.mtime = os.path.getmtime(path)
        self.client = self.proto = self.helo = self.mail = None
        self.rcpts = []
        pos = 0
        while True:
            nl = raw.find(b'\n', pos)
            if nl < 0:
                break
            ln = raw[pos:nl].decode('utf-8', 'replace')
            k, _, v = ln.partition(': ')
            if k == 'Received':   # three lines: from, by, date
                for _ in range(2):
                    nl = raw.find(b'\n', nl + 1)
                pos = nl + 1
                break
            if k == 'X-Client-Addr':
                self.client = v
            elif k == 'X-Client-Proto':
                self.proto = v
            elif k == 'X-Helo-Args':
                self.helo = v
            elif k == 'X-Mail-Args':
                self.mail = v
            elif k == 'X-Rcpt-Args':
                self.rcpts.append(v)
            pos = nl + 1
        content = raw[pos:]
        self.content = content[:-1] if content.endswith(b'\n\n') else content   # the dump's blank line
        m = re.search(rb'^Message-ID:\s*(<[^>\n]*>)', self.content, re.M | re.I)
        self.msgid = m.group(1).decode('utf-8', 'replace') if m else None

    def header(self, name):
        """The first header field `name` (unfolded), or None."""
        head = self.content.split(b'\n\n', 1)[0].decode('utf-8', 'replace')
        m = re.search(r'^%s:[ \t]*(.*(?:\n[ \t].*)*)' % re.escape(name), head, re.M | re.I)
        return re.sub(r'\n[ \t]+', ' ', m.group(1)) if m else None

    def __repr__(self):
        return 'SinkMsg(client=%s helo=%s mail=%s rcpts=%s msgid=%s)' % (
            self.client, self.helo, self.mail, self.rcpts, self.msgid)


class SmtpSink:
    """Postfix's smtp-sink on addr:port, dumping each transaction to its own
    file (-d) so that tests see envelope and content; -c counts sessions.
    Extra smtp-sink options go in `args` (e.g. ['-L'] for LMTP)."""

    def __init__(self, addr, port, name=None, args=(), dump=True):
        if shutil.which('smtp-sink') is None:
            skip_all('smtp-sink (Debian package postfix) is not installed')
        self.addr, self.port = addr, port
        self.name = name or 'sink-%s-%d' % (addr, port)
        self.dir = tmpdir(self.name)
        self.dump = os.path.join(self.dir, 'dump')
        os.makedirs(self.dump, exist_ok=True)
        self.args = list(args)
        self.is_dump = dump
        self.proc = None
        self.out_path = os.path.join(self.dir, 'stdout')
        _peers.append(self)

    def start(self):
        cmd = ['smtp-sink', '-u', 'root', '-c'] + \
            (['-d', os.path.join(self.dump, 'm.')] if self.is_dump else []) + \
            self.args + ['%s:%d' % (self.addr, self.port), '256']
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=open(self.out_path, 'ab'), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        if not wait_for(lambda: port_listening(self.addr, self.port) or
                        self.proc.poll() is not None) or self.proc.poll() is not None:
            bail('%s did not start: %s' % (self.name, self.output()))
        return self

    def output(self):
        try:
            with open(self.out_path, 'rb') as f:
                return f.read().decode('utf-8', 'replace')
        except OSError:
            return ''

    def counters(self):
        """smtp-sink's last "sess=N quit=N mesg=N" as a dict (sessions count when they end)."""
        m = re.findall(r'sess=(\d+) quit=(\d+) mesg=(\d+)', self.output())
        if not m:
            return {'sess': 0, 'quit': 0, 'mesg': 0}
        return dict(zip(('sess', 'quit', 'mesg'), map(int, m[-1])))

    def files(self):
        try:
            return [os.path.join(self.dump, f) for f in os.listdir(self.dump)]
        except OSError:
            return []

    def count(self):
        return len(self.files())

    def messages(self):
        """Every dumped transaction, oldest first."""
        out = []
        for p in self.files():
            try:
                out.append(SinkMsg(p))
            except OSError:
                pass
        return sorted(out, key=lambda m: m.mtime)

    def wait_count(self, n, timeout=DEADLINE):
        wait_for(lambda: self.count() >= n, timeout)
        # smtp-sink creates a dump file when a transaction starts and fills
        # it as it goes: give the ones counted a moment to have their envelope.
        wait_for(lambda: all(m.mail is not None for m in self.messages()), min(timeout, 5))
        return self.count()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=DEADLINE)
            except subprocess.TimeoutExpired:
                pass


def dns_query(server, name, qtype=1, timeout=0.5):
    """One UDP DNS query; the reply's RCODE, or None without an answer."""
    import struct
    q = struct.pack('>HHHHHH', 0x4242, 0x0100, 1, 0, 0, 0)
    q += b''.join(bytes([len(lb)]) + lb.encode() for lb in name.split('.')) + b'\0'
    q += struct.pack('>HH', qtype, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(q, server)
            r = s.recv(4096)
        except OSError:
            return None
    return r[3] & 0x0f if len(r) >= 12 else None


class DnsMasq:
    """dnsmasq answering for the .test names only from its options (MX and
    host records given as dnsmasq options, e.g. --mx-host=a.test,mx.a.test,10
    --host-record=mx.a.test,127.0.0.2), on addr:port.  resolv_conf() writes
    a file for sluice's Resolv_Conf that points at it."""

    def __init__(self, args, addr='127.0.0.1', port=5353, name='dnsmasq'):
        if shutil.which('dnsmasq') is None:
            skip_all('dnsmasq is not installed')
        self.addr, self.port, self.name = addr, port, name
        self.dir = tmpdir(name)
        self.log = os.path.join(self.dir, 'log')
        self.args = list(args)
        self.proc = None
        _peers.append(self)

    def start(self):
        cmd = ['dnsmasq', '--keep-in-foreground', '--pid-file=', '--log-facility=' + self.log,
               '--port=%d' % self.port, '--bind-interfaces', '--no-resolv', '--no-hosts',
               '--conf-file=/dev/null', '--log-queries', '--user=root',
               '--local=/test/', '--local-ttl=300', '--listen-address=' + self.addr] + self.args
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.dir, 'stderr'), 'w'),
                                     start_new_session=True)
        if not wait_for(lambda: self.proc.poll() is not None or
                        dns_query((self.addr, self.port), 'ready.probe.test') is not None) \
                or self.proc.poll() is not None:
            bail('dnsmasq did not answer: %s' % open(os.path.join(self.dir, 'stderr')).read())
        return self

    def resolv_conf(self, name='resolv.conf'):
        path = os.path.join(self.dir, name)
        with open(path, 'w') as f:
            f.write('nameserver %s:%d\noptions timeout:1 attempts:2\n' % (self.addr, self.port))
        return path

    def queries(self, pattern):
        """How many logged queries match `pattern` (e.g. r'query\\[MX\\] a\\.test ')."""
        try:
            with open(self.log, errors='replace') as f:
                return len(re.findall(pattern, f.read()))
        except OSError:
            return 0

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=DEADLINE)
            except subprocess.TimeoutExpired:
                pass


class RcvConn:
    """What a Receiver saw of one connection."""

    def __init__(self, idx, peer, local):
        self.idx, self.peer, self.local = idx, peer, local
        self.opened = time.monotonic()
        self.closed = None
        self.ehlo = None
        self.cmds = []        # command lines, in order
        self.msgs = 0         # transactions answered 250 at the end of data
        self.quit = False     # the client sent QUIT
        self.closed_by_us = False

    def __repr__(self):
        return 'RcvConn(%d peer=%s ehlo=%s msgs=%d quit=%s cmds=%d)' % (
            self.idx, self.peer, self.ehlo, self.msgs, self.quit, len(self.cmds))


class RcvMsg:
    """One transaction a Receiver took: envelope, content (CRLF, unstuffed)."""

    def __init__(self, conn, sender, rcpts, data):
        self.conn, self.peer, self.ehlo = conn.idx, conn.peer[0], conn.ehlo
        self.sender, self.rcpts, self.data = sender, list(rcpts), data
        self.t = time.monotonic()
        m = re.search(rb'^Message-ID:\s*(<[^>\r\n]*>)', data, re.M | re.I)
        self.msgid = m.group(1).decode('utf-8', 'replace') if m else None

    def __repr__(self):
        return 'RcvMsg(conn=%d from=%s to=%s msgid=%s)' % (self.conn, self.sender, self.rcpts,
                                                          self.msgid)


class Receiver:
    """A scripted SMTP/LMTP server on threads, for byte-level control and
    counting: connections (peer address, EHLO name, commands, QUIT),
    concurrent connections (the maximum seen) and messages.

    Behaviour, changeable at any time from the test:
      greeting     the 220 line; None: accept and never say anything
      ehlo_reply   f(RcvConn) -> reply for EHLO/LHLO/HELO, or None for the
                   usual capabilities
      rset_reply   f(RcvConn) -> reply line for RSET (default 250)
      mail_reply   f(RcvConn, sender) -> reply line for MAIL (default 250)
      rcpt_reply   f(address) -> reply line for RCPT (default 250)
      data_reply   f(RcvMsg) -> reply for the end of data (LMTP: f is called
                   once per accepted recipient, msg.rcpts[0] being that one)
      hold         seconds to wait before answering the end of data
      close_idle   seconds: close a connection that sent nothing for that long
                   after a transaction (as servers drop cached connections)
    A reply of None closes the connection without an answer; a 421 reply
    closes it after the answer; 'HANG' never answers (the connection stays
    open until the client closes it)."""

    def __init__(self, addr, port, name=None, lmtp=False):
        self.addr, self.port, self.lmtp = addr, port, lmtp
        self.name = name or 'receiver-%s-%d' % (addr, port)
        self.greeting = '220 %s ESMTP test receiver' % self.name
        self.mail_reply = lambda c, sender: '250 2.1.0 Ok'
        self.rcpt_reply = lambda a: '250 2.1.5 Ok'
        self.data_reply = lambda m: '250 2.0.0 Ok: queued'
        self.ehlo_reply = lambda c: None
        self.rset_reply = lambda c: '250 2.0.0 Ok'
        self.hold = 0.0
        self.close_idle = None
        self.conns = []
        self.msgs = []
        self.current = 0
        self.max_concurrent = 0
        self.lock = threading.Lock()
        self.sock = None
        self.halt = threading.Event()
        self.threads = []
        _peers.append(self)

    def start(self):
        self.halt.clear()
        self.sock = socket.socket(socket.AF_INET6 if ':' in self.addr else socket.AF_INET,
                                  socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((self.addr, self.port))
        self.sock.listen(128)
        self.sock.settimeout(0.1)
        th = threading.Thread(target=self._accept, daemon=True)
        th.start()
        self.threads.append(th)
        return self

    def stop(self):
        """Stop listening and close every connection (as a crash would)."""
        self.halt.set()
        for th in list(self.threads):
            th.join(5)
        self.threads = []
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _accept(self):
        while not self.halt.is_set():
            try:
                s, peer = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            with self.lock:
                c = RcvConn(len(self.conns), peer, s.getsockname())
                self.conns.append(c)
                self.current += 1
                self.max_concurrent = max(self.max_concurrent, self.current)
            th = threading.Thread(target=self._serve, args=(s, c), daemon=True)
            th.start()
            self.threads.append(th)

    def _serve(self, s, c):
        try:
            self._session(s, c)
        except OSError:
            pass
        finally:
            try:
                s.close()
            except OSError:
                pass
            with self.lock:
                c.closed = time.monotonic()
                self.current -= 1

    def _session(self, s, c):
        buf = [b'']
        s.settimeout(0.1)

        def line(idle=None):
            start = time.monotonic()
            while b'\n' not in buf[0]:
                if self.halt.is_set():
                    return None
                if idle is not None and time.monotonic() - start >= idle:
                    return 'IDLE'
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    continue
                if not chunk:
                    return None
                buf[0] += chunk
            ln, buf[0] = buf[0].split(b'\n', 1)
            return ln.rstrip(b'\r')

        def send(text):
            if text is None:
                c.closed_by_us = True
                return False
            if text == 'HANG':
                while line() is not None:
                    pass
                return False
            s.sendall(text.encode() + b'\r\n')
            if text.startswith('421'):
                c.closed_by_us = True
                return False
            return True

        if self.greeting is None:
            while not self.halt.is_set() and line() is not None:
                pass
            return
        if not send(self.greeting):
            return
        sender, rcpts, after_txn = None, [], False
        while True:
            ln = line(self.close_idle if after_txn and self.close_idle else None)
            if ln is None:
                return
            if ln == 'IDLE':
                c.closed_by_us = True
                return
            text = ln.decode('utf-8', 'replace')
            with self.lock:
                c.cmds.append(text)
            verb = text.split(' ', 1)[0].upper()
            if verb in ('EHLO', 'LHLO', 'HELO'):
                c.ehlo = text[5:].strip()
                r = self.ehlo_reply(c)
                if r is not None:
                    ok_ = send(r)
                elif verb == 'HELO':
                    ok_ = send('250 %s' % self.name)
                else:
                    ok_ = send('250-%s\r\n250-PIPELINING\r\n250-8BITMIME\r\n'
                               '250-ENHANCEDSTATUSCODES\r\n250 SIZE 100000000' % self.name)
            elif verb == 'MAIL':
                m = re.match(r'(?i)MAIL FROM:\s*<([^>]*)>', text)
                sender, rcpts = (m.group(1) if m else text), []
                ok_ = send(self.mail_reply(c, sender))
            elif verb == 'RCPT':
                m = re.match(r'(?i)RCPT TO:\s*<([^>]*)>', text)
                a = m.group(1) if m else text
                r = self.rcpt_reply(a)
                if r is not None and r.startswith('2'):
                    rcpts.append(a)
                ok_ = send(r)
            elif verb == 'DATA':
                if sender is None or not rcpts:
                    ok_ = send('554 5.5.1 no valid recipients')
                    continue
                if not send('354 go ahead'):
                    return
                lines = []
                while True:
                    dl = line()
                    if dl is None:
                        return
                    if dl == b'.':
                        break
                    lines.append(dl[1:] if dl.startswith(b'.') else dl)
                data = b''.join(x + b'\r\n' for x in lines)
                if self.hold:
                    time.sleep(self.hold)
                replies = []
                for r in (rcpts if self.lmtp else [None]):
                    msg = RcvMsg(c, sender, [r] if r else rcpts, data)
                    reply = self.data_reply(msg)
                    if reply is not None and reply.startswith('2'):
                        with self.lock:
                            self.msgs.append(msg)
                            c.msgs += 1
                    replies.append(reply)
                ok_ = True
                for reply in replies:
                    ok_ = ok_ and send(reply)
                sender, rcpts, after_txn = None, [], True
            elif verb == 'RSET':
                sender, rcpts = None, []
                ok_ = send(self.rset_reply(c))
            elif verb == 'NOOP':
                ok_ = send('250 2.0.0 Ok')
            elif verb == 'QUIT':
                c.quit = True
                send('221 2.0.0 Bye')
                return
            else:
                ok_ = send('502 5.5.2 command not implemented')
            if not ok_:
                return

    # -- what it saw
    def wait_msgs(self, n, timeout=DEADLINE):
        wait_for(lambda: len(self.msgs) >= n, timeout)
        return len(self.msgs)

    def wait_conns(self, n, timeout=DEADLINE):
        wait_for(lambda: len(self.conns) >= n, timeout)
        return len(self.conns)

    def open_conns(self):
        with self.lock:
            return self.current


class AioReceiver:
    """aiosmtpd (Debian python3-aiosmtpd) as a receiving MTA that fails
    recipients on demand by local part (RULES: tempfail... 451, reject... 550
    5.1.1, mailboxfull... 552 5.2.2, blocked... 550 5.7.1; tempfailonce...
    451 the first time that address is tried, 250 after), and records every
    transaction: peer address, EHLO name, envelope, content (CRLF, unstuffed)
    and every RCPT answer.  accept_all = True accepts every recipient (a
    destination that recovered), and so does an address in the set
    `accept`.  lmtp=True serves LMTP (one reply per recipient after the
    content: datafailonce... gets 452 4.2.2 there the first time)."""

    RULES = [   # (local part prefix, reply), the first match wins
        ('tempfailonce', '451 4.3.0 <%s>: temporary failure, try again later'),
        ('tempfail', '451 4.3.0 <%s>: temporary failure, try again later'),
        ('reject', '550 5.1.1 <%s>: Recipient address rejected: User unknown'),
        ('mailboxfull', '552 5.2.2 <%s>: Mailbox full'),
        ('blocked', '550 5.7.1 <%s>: Message rejected as spam'),
    ]

    def __init__(self, addr, port, lmtp=False, name=None):
        from aiosmtpd.controller import Controller
        from aiosmtpd.lmtp import LMTP
        self.addr, self.port, self.lmtp = addr, port, lmtp
        self.name = name or 'aiosmtpd-%s-%d' % (addr, port)
        self.accept_all = False
        self.accept = set()
        self.data_failed = set()
        self.rules = list(self.RULES)
        self.envelopes = []   # dicts: peer, helo, sender, rcpts, content
        self.rcpt_log = []    # (address, reply)
        self.lock = threading.Lock()
        outer = self

        class Handler:
            async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
                local = address.split('@', 1)[0].lower()
                reply = '250 2.1.5 OK'
                with outer.lock:
                    tried = any(a == address for a, _ in outer.rcpt_log)
                    if not outer.accept_all and address.lower() not in outer.accept and \
                            not (tried and local.startswith('tempfailonce')):
                        for key, r in outer.rules:
                            if local.startswith(key):
                                reply = r % address if '%s' in r else r
                                break
                    outer.rcpt_log.append((address, reply))
                if reply.startswith('2'):
                    envelope.rcpt_tos.append(address)
                return reply

            async def handle_DATA(self, server, session, envelope):
                with outer.lock:
                    outer.envelopes.append({
                        'peer': session.peer[0], 'helo': session.host_name,
                        'sender': '' if envelope.mail_from == '<>' else envelope.mail_from,
                        'rcpts': list(envelope.rcpt_tos),
                        'content': envelope.original_content or envelope.content,
                        't': time.monotonic()})
                if outer.lmtp:
                    # One reply per recipient; datafailonce... is 452 the first time.
                    replies = []
                    with outer.lock:
                        for a in envelope.rcpt_tos:
                            if a.lower().startswith('datafailonce') and a not in outer.data_failed:
                                outer.data_failed.add(a)
                                replies.append('452 4.2.2 <%s>: over quota, try later' % a)
                            else:
                                replies.append('250 2.0.0 <%s> OK' % a)
                    return '\r\n'.join(replies)
                return '250 2.0.0 OK'

        class LmtpController(Controller):
            def factory(self):
                return LMTP(self.handler, **self.SMTP_kwargs)

        cls = LmtpController if lmtp else Controller
        self.ctl = cls(Handler(), hostname=addr, port=port, server_hostname=self.name,
                       ready_timeout=DEADLINE)
        self.is_running = False
        _peers.append(self)

    def start(self):
        self.ctl.start()
        self.is_running = True
        return self

    def stop(self):
        if self.is_running:
            self.is_running = False
            self.ctl.stop()

    def wait_envelopes(self, n, timeout=DEADLINE):
        wait_for(lambda: len(self.envelopes) >= n, timeout)
        return len(self.envelopes)


# ------------------------------------------------------------------ delivery: injecting

def name_of(ip):
    """The name the system's resolver gives address `ip` (/etc/hosts inside a
    test's namespace), or None."""
    try:
        return socket.gethostbyaddr(ip)[0]
    except OSError:
        return None


def max_overlap(conns, shrink=0.25):
    """The most connections open at once over `conns` (Receiver connection
    records, of any receivers), each counted as closed `shrink` seconds
    before the receiver saw it close."""
    ev = []
    for c in conns:
        end = (c.closed - shrink) if c.closed is not None else float('inf')
        if end > c.opened:
            ev += [(c.opened, 1), (end, -1)]
    cur = best = 0
    for _, delta in sorted(ev, key=lambda e: (e[0], e[1])):
        cur += delta
        best = max(best, cur)
    return best


def inject_many(port, rcpts_tags, binding=None, sender='from@src.test'):
    """One message per (recipient, subject) over one SMTP session, each with
    an X-Binding header when `binding` is given; returns the queue ids (None
    for a message refused)."""
    s = smtp(port)
    s.ehlo('client.test')
    ids = []
    for rcpt, tag in rcpts_tags:
        s.mail(sender)
        s.rcpt(rcpt)
        code, resp = s.data(message(tag, headers=['X-Binding: %s' % binding] if binding
                                    else []))
        ids.append(queue_id(resp) if code == 250 else None)
    s.quit()
    return ids


def inject(port, sender, rcpts, data, host='127.0.0.1'):
    """One message over SMTP (smtplib); returns its queue id, or None when it
    was refused (the refusal is printed as a diagnostic)."""
    try:
        s = smtp(port, host)
        s.ehlo('client.test')
        s.mail(sender)
        for r in rcpts:
            code, resp = s.rcpt(r)
            if code != 250:
                diag('RCPT %s: %d %s' % (r, code, resp))
        code, resp = s.data(data)
        s.quit()
    except (smtplib.SMTPException, OSError) as e:
        diag('inject: %r' % e)
        return None
    return queue_id(resp) if code == 250 else None


class Dsn:
    """A delivery status notification (RFC 3464) parsed with Python's email
    package: .ctype, .report_type, .parts (content types), .frm, .to,
    .subject, .auto_submitted, .per_message (dict of the first block),
    .rcpts (one dict per recipient block, field names lower case), .original
    (the third part's Message or None), .text (the first part's text)."""

    def __init__(self, content):
        import email
        m = email.message_from_bytes(content)
        self.msg = m
        self.ctype = m.get_content_type()
        self.report_type = m.get_param('report-type')
        self.frm, self.to, self.subject = m['From'], m['To'], m['Subject']
        self.auto_submitted = m['Auto-Submitted']
        parts = m.get_payload() if m.is_multipart() else []
        self.parts = [p.get_content_type() for p in parts]
        self.text = parts[0].get_payload(decode=True).decode('utf-8', 'replace') if parts else ''
        self.per_message, self.rcpts = {}, []
        if len(parts) > 1 and parts[1].get_content_type() in ('message/delivery-status',
                                                              'message/global-delivery-status'):
            blocks = parts[1].get_payload()
            if blocks:
                self.per_message = {k.lower(): v for k, v in blocks[0].items()}
                self.rcpts = [{k.lower(): re.sub(r'\s*\r?\n\s+', ' ', v) for k, v in b.items()}
                              for b in blocks[1:]]
        self.original = parts[2] if len(parts) > 2 else None

    def rcpt(self, addr):
        """The recipient block whose Final-Recipient is addr (or None)."""
        for r in self.rcpts:
            if r.get('final-recipient', '').lower().endswith(';' + addr.lower()) or \
                    r.get('final-recipient', '').lower().endswith('; ' + addr.lower()):
                return r
        return None

    def __repr__(self):
        return 'Dsn(%s %s from=%s to=%s parts=%s rcpts=%s)' % (
            self.ctype, self.report_type, self.frm, self.to, self.parts, self.rcpts)


class SynCounter:
    """Counts TCP connection attempts (SYN without ACK) to ip:port on lo with
    a packet socket, so a port where nothing listens can be watched too.
    .times: when each attempt was seen (time.monotonic())."""

    def __init__(self, ip, port):
        self.ip, self.port = socket.inet_aton(ip), port
        self.times = []
        self.halt = threading.Event()
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        self.sock.bind(('lo', 0))
        self.sock.settimeout(0.1)
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()
        _peers.append(self)

    def _run(self):
        while not self.halt.is_set():
            try:
                pkt, addr = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                break
            if addr[2] != socket.PACKET_OUTGOING or len(pkt) < 14 + 20 + 20:
                continue
            ip = pkt[14:]
            if pkt[12:14] != b'\x08\x00' or ip[9] != 6 or ip[16:20] != self.ip:
                continue
            tcp = ip[(ip[0] & 0x0f) * 4:]
            if int.from_bytes(tcp[2:4], 'big') == self.port and tcp[13] & 0x12 == 0x02:
                self.times.append(time.monotonic())

    def count(self):
        return len(self.times)

    def stop(self):
        self.halt.set()
        self.th.join(5)
        self.sock.close()
