#!/usr/bin/env python3
"""test/bench/harness.py - the benchmark harness of `make bench`: sluice beside
Postfix, Exim, OpenSMTPD and the loopback ceiling, in one run, on loopback only.

    harness.py [--record] [--smoke] [-n N] [-s SESSIONS] [--sizes 1024,51200]
               [--idle SESSIONS] [--no-postfix] [--no-exim] [--no-opensmtpd]

In this order, for each size (so the machine's noise hits all alike):
  ceiling        Postfix's smtp-source straight into smtp-sink (when installed),
                 and sluice-bench into its own sink;
  sluice         sluiced relaying to a sink (sluice-bench sink, counter polled
                 every 10 ms), injected by sluice-bench over SMTP and over
                 ECStream, with Force_Fsync on, then off;
  postfix        a private Postfix instance this script configures (when Postfix
                 is installed) relaying the same load, injected over SMTP;
  exim           a private Exim (when found) relaying the same load;
  opensmtpd      a private OpenSMTPD (when found) relaying at most 2,000
                 messages from at most 5 sessions (it cannot take more: see
                 peer_notes).
Then sluiced holding IDLE (10,000) idle SMTP sessions: RSS per session.

Each peer MTA gets a fresh configuration, queue and port per size, all in the
work directory, relays everything to the sink with no DNS, queues durably
(fsync before its 250), and is stopped, with everything it started, after
its run.  Exim is $EXIM_BIN, else /opt/peers/exim4-daemon-light/usr/sbin/exim4,
else exim4 or exim on PATH; OpenSMTPD is $SMTPD_BIN, else
/opt/peers/opensmtpd/usr/sbin/smtpd, else smtpd on PATH; one not found is
skipped and named in the notes.  Their Debian packages conflict with postfix,
so on Debian they are extracted beside it rather than installed (as root):

    cd /tmp && apt-get download exim4-daemon-light exim4-base opensmtpd
    for p in exim4-daemon-light exim4-base opensmtpd; do
        mkdir -p /opt/peers/$p && dpkg-deb -x ${p}_*.deb /opt/peers/$p; done
    apt-get install libidn12 libevent-2.1-7 libgnutls-dane0   # their libraries
    useradd -r -M -d /nonexistent -s /usr/sbin/nologin Debian-exim     # system users
    mkdir -p /var/lib/opensmtpd/empty
    for u in opensmtpd opensmtpq; do
        useradd -r -M -d /var/lib/opensmtpd/empty -s /usr/sbin/nologin $u; done

Figures per run: accepted messages/s (sluice-bench), relayed messages/s (N /
time from the first injection to the N-th message at the sink), p50/p99
latency from the end of data to its reply, CPU seconds per 1,000 messages
of the MTA's process tree (Exim's and OpenSMTPD's: of their own cgroup when one
can be made, see class Peer), and its peak memory (proportional set size of the
tree, sampled every 0.2 s; sluiced's own peak RSS when larger).  --record
appends a table and its notes to BENCHMARKS.md (date, kernel, CPU, commit, the
exact command) and draws the relay rates and latencies with gnuplot (PNG and
SVG, in test/bench/results/) when gnuplot is installed.  --smoke: N=200,
1 KiB, 8 sessions, 200 idle sessions, sluice only; exits 1 when a run did not
complete (the check that `make check` runs).

Everything runs inside one private network namespace with only loopback
(the script re-executes itself under `unshare -n`); every step is bounded
in time; everything started is stopped on exit, Ctrl-C and SIGTERM.
"""
import argparse
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

TOP_SRCDIR = os.environ.get('top_srcdir') or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))
TOP_BUILDDIR = os.environ.get('top_builddir') or TOP_SRCDIR
SLUICED = os.path.join(TOP_BUILDDIR, 'sluiced')
BENCH = os.path.join(TOP_BUILDDIR, 'sluice-bench')
SINK_PORT, SMTP_PORT, ECS_PORT, PF_PORT = 2600, 2532, 2533, 2534
EXIM_PORT, SMTPD_PORT = 2535, 2536
EXIM_EXTRACTED = '/opt/peers/exim4-daemon-light/usr/sbin/exim4'
SMTPD_EXTRACTED = '/opt/peers/opensmtpd/usr/sbin/smtpd'
OPENSMTPD_N, OPENSMTPD_SESSIONS = 2000, 5   # its most (see peer_notes)
STEP_TIMEOUT = 600
CLK_TCK = os.sysconf('SC_CLK_TCK')


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def tool(name):
    for d in ('', '/usr/sbin/', '/usr/lib/postfix/sbin/'):
        p = shutil.which(name) if d == '' else d + name
        if p and os.access(p, os.X_OK):
            return p
    return None


def wait_port(port, secs=30):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        with socket.socket() as s:
            if s.connect_ex(('127.0.0.1', port)) == 0:
                return True
        time.sleep(0.05)
    return False


def keyvals(line):
    out = {}
    for kv in line.split():
        k, _, v = kv.partition('=')
        out[k] = v
    return out


# ---------------------------------------------------------------- process trees

def children(pid):
    try:
        with open('/proc/%d/task/%d/children' % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def tree(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children(p))
    return out


def proc_cpu(pid, with_children=True):
    """utime+stime (and the reaped children's) of one process, in seconds."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            f_ = f.read().rsplit(')', 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(f_[11]) + int(f_[12])
    if with_children:
        ticks += int(f_[13]) + int(f_[14])
    return ticks / CLK_TCK


def tree_cpu(pid):
    return sum(proc_cpu(p) for p in tree(pid))


def tree_rss_kb(pid):
    """The tree's proportional set size (shared pages divided among their users, so
    a hundred Postfix processes do not count their libraries a hundred times)."""
    return pss_kb(tree(pid))


def pss_kb(pids):
    total = 0
    for p in pids:
        try:
            with open('/proc/%d/smaps_rollup' % p) as f:
                for ln in f:
                    if ln.startswith('Pss:'):
                        total += int(ln.split()[1])
                        break
        except OSError:
            pass
    return total


class RssSampler:
    """The peak of rss_fn() (a tree's PSS in KiB), sampled every 0.2 s."""

    def __init__(self, rss_fn):
        self.rss_fn, self.peak, self.halt = rss_fn, 0, threading.Event()
        self.th = threading.Thread(target=self.run, daemon=True)
        self.th.start()

    def run(self):
        while not self.halt.is_set():
            self.peak = max(self.peak, self.rss_fn())
            self.halt.wait(0.2)

    def stop(self):
        self.halt.set()
        self.th.join()
        self.peak = max(self.peak, self.rss_fn())
        return self.peak


# ---------------------------------------------------------------- the sink and the MTAs

class Sink:
    def __init__(self, work, port=SINK_PORT):
        self.counter = os.path.join(work, 'sink.count')
        self.proc = subprocess.Popen([BENCH, 'sink', '-p', str(port), '-c', self.counter,
                                      '-T', str(STEP_TIMEOUT * 4)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_port(port):
            raise RuntimeError('sluice-bench sink did not start')

    def count(self):
        try:
            with open(self.counter) as f:
                return int(f.read().strip() or 0)
        except (OSError, ValueError):
            return 0

    def wait(self, n, deadline):
        while time.monotonic() < deadline:
            if self.count() >= n:
                return time.monotonic()
            time.sleep(0.01)
        return None

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Sluiced:
    def __init__(self, work, fsync):
        self.dir = os.path.join(work, 'sluiced-%s' % ('fsync' if fsync else 'nofsync'))
        os.makedirs(self.dir, exist_ok=True)
        conf = os.path.join(self.dir, 'sluice.conf')
        with open(conf, 'w') as f:
            f.write('''
ESMTP_Listener = ( 127.0.0.1:%d,4096 [ 127.0.0.0/8 = ( relay_for_sending_domains ) ] )
ECStream_Listener = ( 127.0.0.1:%d,1024 [ 127.0.0.0/8 = ( relay_for_sending_domains ) ] )
Relay_Domains = ( "sink.example" )
Gateway = "127.0.0.1:%d"
SpoolBase = "%s/spool"
Pidfile = "%s/sluiced.pid"
Force_Fsync = %s
ec_logger { mainlog = "%s/mainlog.ec" rejectlog = "%s/rejectlog.ec" paniclog = "%s/paniclog.ec" }
''' % (SMTP_PORT, ECS_PORT, SINK_PORT, self.dir, self.dir, 'true' if fsync else 'false',
                self.dir, self.dir, self.dir))
        self.stderr = open(os.path.join(self.dir, 'stderr'), 'w')
        self.proc = subprocess.Popen([SLUICED, '-F', '-c', conf, '-d', 'notice'],
                                     stdout=subprocess.DEVNULL, stderr=self.stderr,
                                     preexec_fn=raise_nofile)
        self.pid = self.proc.pid
        if not wait_port(SMTP_PORT) or not wait_port(ECS_PORT):
            raise RuntimeError('sluiced did not start: see %s/stderr' % self.dir)

    def peak_rss_kb(self):
        try:
            with open('/proc/%d/status' % self.pid) as f:
                for ln in f:
                    if ln.startswith('VmHWM:'):
                        return int(ln.split()[1])
        except OSError:
            pass
        return 0

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.stderr.close()


POSTFIX_MAIN = '''
compatibility_level = 3.6
queue_directory = %(d)s/spool
data_directory = %(d)s/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = bench.localdomain
mydomain = localdomain
myorigin = $myhostname
mydestination =
local_recipient_maps =
local_transport = error:local delivery disabled
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
relayhost = [127.0.0.1]:%(sink)d
smtp_dns_support_level = disabled
lmtp_dns_support_level = disabled
smtpd_peername_lookup = no
biff = no
maillog_file = %(d)s/maillog
'''


class Postfix:
    """A private Postfix instance: its own config and queue, relaying to the sink."""

    def __init__(self, work, tag):
        self.d = os.path.join(work, 'postfix-%s' % tag)
        os.makedirs(os.path.join(self.d, 'etc'))
        os.makedirs(os.path.join(self.d, 'spool'))
        os.makedirs(os.path.join(self.d, 'data'))
        etc = os.path.join(self.d, 'etc')
        shutil.copy('/etc/postfix/master.cf', os.path.join(etc, 'master.cf'))
        with open(os.path.join(etc, 'main.cf'), 'w') as f:
            f.write(POSTFIX_MAIN % {'d': self.d, 'sink': SINK_PORT})
        with open(os.path.join(etc, 'master.cf')) as f:
            lines = f.read().splitlines()
        lines = ['127.0.0.1:%d inet n - n - - smtpd' % PF_PORT if ln.startswith('smtp ')
                 and ' inet ' in ln else ln for ln in lines]
        with open(os.path.join(etc, 'master.cf'), 'w') as f:
            f.write('\n'.join(lines) + '\n')
        subprocess.run(['postconf', '-c', etc, '-F', '*/*/chroot = n'], check=True)
        shutil.chown(os.path.join(self.d, 'data'), 'postfix')
        subprocess.run(['postfix', '-c', etc, 'check'], capture_output=True)
        subprocess.run(['postfix', '-c', etc, 'start'], capture_output=True, check=True,
                       timeout=60)
        if not wait_port(PF_PORT):
            raise RuntimeError('postfix did not start')
        with open(os.path.join(self.d, 'spool', 'pid', 'master.pid')) as f:
            self.pid = int(f.read().split()[0])

    def stop(self):
        subprocess.run(['postfix', '-c', os.path.join(self.d, 'etc'), 'stop'],
                       capture_output=True, timeout=60)

    def cpu_s(self):
        return tree_cpu(self.pid)

    def rss_kb(self):
        return tree_rss_kb(self.pid)


# ---------------------------------------------------------------- Exim and OpenSMTPD
#
# Debian's exim4-daemon-light and opensmtpd conflict with postfix in dpkg (Conflicts:
# mail-transport-agent), so where Postfix is installed they are extracted beside it,
# under /opt/peers (README.md, "make bench"); an installed one is found as well.

def find_peer(env, extracted, names):
    """A peer MTA's binary: $env if set, else the extracted package's, else the first
    of names on PATH or in /usr/sbin; None when there is none."""
    if os.environ.get(env):
        cands = [os.environ[env]]
    else:
        cands = [extracted] + [shutil.which(x) or '/usr/sbin/' + x for x in names]
    return next((p for p in cands if os.path.isfile(p) and os.access(p, os.X_OK)), None)


def cgroup_make(name):
    """A new cgroup v2 below our own, or None (no cgroup2 mounted, or not writable).
    Its cpu.stat counts every process that ever ran in it, also those the kernel
    reaped itself because their parent ignores SIGCHLD, which no child time in /proc
    ever sees (Exim's receiving processes do that to their delivery processes)."""
    try:
        with open('/proc/self/mounts') as f:
            root = next(ln.split()[1] for ln in f if ln.split()[2] == 'cgroup2')
        with open('/proc/self/cgroup') as f:
            own = next(ln.strip()[3:] for ln in f if ln.startswith('0::'))
        path = os.path.join(root + own, name)
        os.mkdir(path)
    except (OSError, StopIteration, IndexError):
        return None
    if not os.path.exists(os.path.join(path, 'cpu.stat')):
        os.rmdir(path)
        return None
    return path


# Where no cgroup can be made: keeps every descendant of the command in its tree (an
# orphan is re-parented to it, not to init), so tree() finds them all and their CPU
# lands in its child times when it reaps them.  Forwards SIGTERM to the command and
# exits when no descendant is left.  The same as ../shared/bench/subreaper.c.
SUBREAPER = r'''
import ctypes, os, signal, sys
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
child = os.fork()
if child == 0:
    try:
        os.execvp(sys.argv[1], sys.argv[1:])
    except OSError as e:
        print('subreaper: %s: %s' % (sys.argv[1], e), file=sys.stderr)
    os._exit(127)


def term(*_):
    try:
        os.kill(child, signal.SIGTERM)
    except OSError:
        pass


signal.signal(signal.SIGTERM, term)
signal.signal(signal.SIGINT, signal.SIG_IGN)
while True:
    try:
        os.wait()
    except ChildProcessError:
        break
'''


class Peer:
    """A peer MTA (Exim, OpenSMTPD) this script runs in directory d: in a cgroup of
    its own when one can be made (CPU from its cpu.stat, memory over its processes,
    cgroup.kill at the end), else under SUBREAPER (CPU and memory of that tree, as
    for Postfix, missing processes the kernel reaped).  Either way nothing it starts
    can slip away, and stop() ends all of it within 35 s."""

    def start(self, d, argv, port):
        self.d, self.proc, self.log = d, None, None
        self.cg = cgroup_make('sluice-harness.%d.%s' % (os.getpid(), os.path.basename(d)))
        self.how = 'cgroup' if self.cg else 'subreaper'
        try:
            self.log = open(os.path.join(d, 'stderr'), 'w')
            if self.cg:
                procs = os.path.join(self.cg, 'cgroup.procs')

                def enter():
                    with open(procs, 'w') as f:
                        f.write(str(os.getpid()))
            else:
                argv, enter = [sys.executable, '-c', SUBREAPER] + argv, None
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         preexec_fn=enter)
            self.pid = self.proc.pid
            end = time.monotonic() + 30
            while not wait_port(port, 0.5):
                if self.proc.poll() is not None or time.monotonic() > end:
                    raise RuntimeError('nothing listens on 127.0.0.1:%d: see %s/stderr' %
                                       (port, d))
        except BaseException:
            self.stop()
            raise

    def pids(self):
        if self.cg:
            try:
                with open(os.path.join(self.cg, 'cgroup.procs')) as f:
                    return [int(x) for x in f.read().split()]
            except OSError:
                return []
        return tree(self.proc.pid)[1:] if self.proc else []

    def cpu_s(self):
        if self.cg:
            with open(os.path.join(self.cg, 'cpu.stat')) as f:
                return next(int(ln.split()[1]) for ln in f if ln.startswith('usage_usec')) / 1e6
        return tree_cpu(self.pid)

    def rss_kb(self):
        return pss_kb(self.pids())

    def stop(self):
        """SIGTERM, up to 20 s to end, then SIGKILL whatever is left (15 s at most)."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                pass
        kill = os.path.join(self.cg, 'cgroup.kill') if self.cg else ''
        end, left = time.monotonic() + 10, self.pids()
        while left and time.monotonic() < end:
            if os.path.exists(kill):
                with open(kill, 'w') as f:
                    f.write('1')
            else:
                for p in left:
                    try:
                        os.kill(p, signal.SIGKILL)
                    except OSError:
                        pass
            time.sleep(0.1)
            left = self.pids()
        if self.proc:
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                left.append(self.proc.pid)
        while self.cg:
            try:
                os.rmdir(self.cg)
                break
            except OSError:
                if time.monotonic() > end:
                    break
                time.sleep(0.1)
        if left:
            log('%s: processes %s did not end' % (self.d, left))
        if self.log:
            self.log.close()


# From ../shared/bench/peers/exim.conf (the reference configuration of the bench
# README's peers), with this script's port, spool, pid file and sink.
EXIM_CONF = '''
exim_path = %(exim)s
primary_hostname = bench.localdomain
qualify_domain = bench.localdomain
spool_directory = %(d)s/spool
log_file_path = %(d)s/log/%%slog
pid_file_path = %(d)s/exim.pid
exim_user = Debian-exim
exim_group = Debian-exim
never_users = root
daemon_smtp_ports = %(port)d
local_interfaces = 127.0.0.1
disable_ipv6 = true
keep_environment =
tls_advertise_hosts =
# no DNS or ident lookups (helo_lookup_domains: its default looks up the client
# whenever it HELOs with our name)
host_lookup =
helo_lookup_domains =
rfc1413_hosts =
host_lookup_order = byaddr
# the defaults (20 sessions, a backlog of 20) refuse or drop 50 sessions
smtp_accept_max = 500
smtp_accept_max_per_host = 500
smtp_connect_backlog = 1024
smtp_accept_queue_per_connection = 0
domainlist local_domains =
hostlist relay_from_hosts = 127.0.0.0/8
acl_smtp_rcpt = acl_check_rcpt
acl_smtp_data = acl_check_data

begin acl
acl_check_rcpt:
  accept  hosts = +relay_from_hosts
  deny    message = relay not permitted
acl_check_data:
  accept

begin routers
to_sink:
  driver = manualroute
  route_list = * 127.0.0.1
  self = send
  transport = to_sink_smtp
  no_more

begin transports
to_sink_smtp:
  driver = smtp
  port = %(sink)d
  allow_localhost
  hosts_avoid_tls = *
  hosts_try_chunking =
  hosts_try_prdr =

begin retry
*   *   F,1h,1m

begin rewrite
'''


class Exim(Peer):
    """A private Exim: spool (durable: -H/-D files, fsync) and logs in its directory,
    relaying each message at once (a delivery process and an SMTP connection per
    message) to the sink.  Run as the daemon (-bdf) under -C; without an entry in
    Exim's trusted_configs (peers.sh adds one in /etc/exim4; this script changes
    nothing outside its work directory) it drops root, which a relay to a port above
    1024 does not need, and appends "exim user lost privilege" to its paniclog once
    per delivery process: a few microseconds of some 10 ms of CPU per message."""

    def __init__(self, work, tag, exe):
        d = os.path.join(work, 'exim-%s' % tag)
        for sub in ('spool', 'log'):
            os.makedirs(os.path.join(d, sub))
            shutil.chown(os.path.join(d, sub), 'Debian-exim', 'Debian-exim')
        conf = os.path.join(d, 'exim.conf')
        with open(conf, 'w') as f:
            f.write(EXIM_CONF % {'d': d, 'exim': exe, 'port': EXIM_PORT, 'sink': SINK_PORT})
        # -q1m: a queue runner every minute, for retries only
        self.start(d, [exe, '-C', conf, '-bdf', '-q1m'], EXIM_PORT)


# From ../shared/bench/peers/smtpd.conf, with this script's ports.
SMTPD_CONF = '''
listen on 127.0.0.1 port %(port)d
action "to_sink" relay host smtp+notls://127.0.0.1:%(sink)d
match from any for any action "to_sink"
'''


class OpenSMTPD(Peer):
    """A private OpenSMTPD (smtpd -d: foreground, log to stderr).  Its queue (durable:
    fsync) is compiled in at /var/spool/smtpd and its control socket at
    /run/smtpd.sock, so it runs in a mount namespace of its own where this
    directory's var-spool and run are mounted over /var/spool and /run: the queue is
    here and nothing outside changes.  It resolves the sink's and the client's names
    with DNS before /etc/hosts, which fails at once in this script's network
    namespace."""

    def __init__(self, work, tag, exe):
        d = os.path.join(work, 'opensmtpd-%s' % tag)
        os.makedirs(os.path.join(d, 'var-spool'))
        os.makedirs(os.path.join(d, 'run'))
        conf = os.path.join(d, 'smtpd.conf')
        with open(conf, 'w') as f:
            f.write(SMTPD_CONF % {'port': SMTPD_PORT, 'sink': SINK_PORT})
        os.chmod(conf, 0o600)
        self.start(d, ['unshare', '-m', '--', 'sh', '-c',
                       'mount --bind "$1" /var/spool && mount --bind "$2" /run && shift 2 && '
                       'exec "$@"', 'sh', os.path.join(d, 'var-spool'), os.path.join(d, 'run'),
                       exe, '-d', '-f', conf], SMTPD_PORT)


# ---------------------------------------------------------------- one measured run

def relay_run(system, proto, port, pid, size, n, sessions, work, peak_fn=None, cpu_fn=None,
              rss_fn=None):
    """Inject n messages into port; returns the figures (a dict).  The MTA's CPU
    seconds and memory are those of pid's process tree unless cpu_fn and rss_fn
    measure them otherwise (a peer in a cgroup of its own: class Peer)."""
    jfile = os.path.join(work, '%s-%s-%d.json' % (system, proto, size))
    cpu_fn = cpu_fn or (lambda: tree_cpu(pid))
    cmd = [BENCH, 'inject', '-H', '127.0.0.1', '-p', str(port), '-P', proto, '-n', str(n),
           '-s', str(sessions), '-l', str(size), '-t', 'rcpt@sink.example',
           '-T', str(STEP_TIMEOUT), '-j', jfile]
    if proto == 'ecstream':
        cmd += ['-m', '0']
    sink = Sink(work)
    try:
        cpu0 = cpu_fn()
        rss = RssSampler(rss_fn or (lambda: tree_rss_kb(pid)))
        t0 = time.monotonic()
        inj = subprocess.run(cmd, capture_output=True, timeout=STEP_TIMEOUT + 30)
        t_end = sink.wait(n, time.monotonic() + STEP_TIMEOUT)
        cpu1 = cpu_fn()
        peak = rss.stop()
        if peak_fn is not None:
            peak = max(peak, peak_fn())
    finally:
        sink.stop()
    fig = keyvals(inj.stdout.decode().strip().splitlines()[-1]) if inj.stdout else {}
    accepted = int(fig.get('accepted', 0))
    row = {
        'system': system, 'proto': proto, 'size': size, 'n': n, 'sessions': sessions,
        'accepted': accepted, 'accept_mps': float(fig.get('accept_mps', 0)),
        'relay_mps': n / (t_end - t0) if t_end else 0.0,
        'lat_p50_us': int(fig.get('lat_p50_us', 0)), 'lat_p99_us': int(fig.get('lat_p99_us', 0)),
        'cpu_s_per_1k': (cpu1 - cpu0) / n * 1000, 'peak_rss_kb': peak,
        'status': 'ok' if inj.returncode == 0 and t_end and accepted == n else
        'failed(inject rc=%d, accepted %d, at sink %d)' % (
            inj.returncode, accepted, 0 if t_end else -1),
    }
    if row['status'] != 'ok':
        log('%s %s: %s %s' % (system, proto, inj.stderr.decode()[-400:], fig))
    return row


def ceiling_runs(size, n, sessions, work, rows):
    src, snk = tool('smtp-source'), tool('smtp-sink')
    if src and snk:
        port = SINK_PORT + 1
        # -u: smtp-sink will not run as root; -m: as many sessions as the source opens
        p = subprocess.Popen([snk, '-u', 'nobody', '-m', '1000', '127.0.0.1:%d' % port, '1024'],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_port(port)
            t0 = time.monotonic()
            r = subprocess.run([src, '-s', str(sessions), '-m', str(n), '-l', str(size),
                                '-f', 'sender@bench.example', '-t', 'rcpt@sink.example',
                                '127.0.0.1:%d' % port], capture_output=True,
                               timeout=STEP_TIMEOUT)
            el = time.monotonic() - t0
            if r.returncode != 0:
                log('smtp-source: %s' % r.stderr.decode()[-300:])
        finally:
            p.terminate()
            p.wait()
        log('ceiling smtp-source -> smtp-sink, %d octets: %.0f msg/s' % (size, n / el))
        rows.append({'system': 'ceiling', 'proto': 'smtp-source', 'size': size, 'n': n,
                     'sessions': sessions, 'accepted': n if r.returncode == 0 else 0,
                     'accept_mps': n / el, 'relay_mps': n / el, 'lat_p50_us': 0,
                     'lat_p99_us': 0, 'cpu_s_per_1k': 0.0, 'peak_rss_kb': 0,
                     'status': 'ok' if r.returncode == 0 else 'failed'})
    sink = Sink(work, SINK_PORT + 2)
    jfile = os.path.join(work, 'ceiling-bench-%d.json' % size)
    try:
        r = subprocess.run([BENCH, 'inject', '-H', '127.0.0.1', '-p', str(SINK_PORT + 2),
                            '-n', str(n), '-s', str(sessions), '-l', str(size), '-t',
                            'rcpt@sink.example', '-T', str(STEP_TIMEOUT), '-j', jfile],
                           capture_output=True, timeout=STEP_TIMEOUT + 30)
    finally:
        sink.stop()
    fig = keyvals(r.stdout.decode().strip().splitlines()[-1]) if r.stdout else {}
    rows.append({'system': 'ceiling', 'proto': 'sluice-bench', 'size': size, 'n': n,
                 'sessions': sessions, 'accepted': int(fig.get('accepted', 0)),
                 'accept_mps': float(fig.get('accept_mps', 0)),
                 'relay_mps': float(fig.get('accept_mps', 0)),
                 'lat_p50_us': int(fig.get('lat_p50_us', 0)),
                 'lat_p99_us': int(fig.get('lat_p99_us', 0)), 'cpu_s_per_1k': 0.0,
                 'peak_rss_kb': 0, 'status': 'ok' if r.returncode == 0 else 'failed'})


def idle_run(sessions, work):
    d = Sluiced(work, fsync=True)
    try:
        time.sleep(0.5)
        before = tree_rss_kb(d.pid)
        held = subprocess.Popen([BENCH, 'idle', '-H', '127.0.0.1', '-p', str(SMTP_PORT),
                                 '-s', str(sessions), '-d', '4', '-T', '120'],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                preexec_fn=raise_nofile)
        peak = before
        while held.poll() is None:
            peak = max(peak, tree_rss_kb(d.pid))
            time.sleep(0.2)
        out = held.stdout.read().decode()
        fig = keyvals(out.strip().splitlines()[-1]) if out.strip() else {}
    finally:
        d.stop()
    est = int(fig.get('established', 0))
    return {'system': 'sluice', 'proto': 'idle', 'sessions': sessions, 'established': est,
            'rss_before_kb': before, 'rss_held_kb': peak,
            'rss_per_session_b': (peak - before) * 1024 / est if est else 0,
            'status': 'ok' if held.returncode == 0 and est == sessions else
            'failed(%s)' % held.stderr.read().decode()[-200:]}


# ---------------------------------------------------------------- report

def table(rows):
    head = ('| system | injection | size | accepted/s | relayed/s | p50 ms | p99 ms | '
            'CPU s / 1k msgs | peak memory MiB | status |\n'
            '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n')
    out = []
    for r in rows:
        out.append('| %s | %s | %d | %.0f | %.0f | %.2f | %.2f | %.3f | %.1f | %s |' % (
            r['system'], r['proto'], r['size'], r['accept_mps'], r['relay_mps'],
            r['lat_p50_us'] / 1000, r['lat_p99_us'] / 1000, r['cpu_s_per_1k'],
            r['peak_rss_kb'] / 1024,
            r['status'] + (' (%s)' % r['note'] if r.get('note') else '')))
    return head + '\n'.join(out) + '\n'


def charts(rows, stem):
    """Relay rates and latencies, PNG and SVG; returns the files drawn."""
    gp = shutil.which('gnuplot')
    if gp is None:
        return []
    data = stem + '.dat'
    labels = []
    with open(data, 'w') as f:
        f.write('# label relay_mps p50_ms p99_ms\n')
        for r in rows:
            label = '%s/%s/%dK' % (r['system'], r['proto'], r['size'] // 1024)
            labels.append(label)
            f.write('"%s" %.0f %.3f %.3f\n' % (label, r['relay_mps'],
                                               r['lat_p50_us'] / 1000, r['lat_p99_us'] / 1000))
    files = []
    for term, ext in (('pngcairo size 1200,700', 'png'), ('svg size 1200,700', 'svg')):
        if ext == 'png' and subprocess.run([gp, '-e', 'set terminal pngcairo'],
                                           capture_output=True).returncode != 0:
            term = 'png size 1200,700'
        out = '%s.%s' % (stem, ext)
        script = '''
set terminal %s
set output '%s'
set multiplot layout 1,2 title 'sluice relay benchmark (%s)'
set style data histograms
set style fill solid 0.8 border -1
set xtics rotate by -45 font ',8'
set ylabel 'relayed messages/s'
set key off
plot '%s' using 2:xtic(1) title 'relayed/s'
set ylabel 'latency, ms (end of data to reply)'
set key on
plot '%s' using 3:xtic(1) title 'p50', '' using 4 title 'p99'
unset multiplot
''' % (term, out, time.strftime('%Y-%m-%d'), data, data)
        if subprocess.run([gp], input=script.encode(), capture_output=True).returncode == 0:
            files.append(out)
    return files


def git_commit():
    try:
        r = subprocess.run(['git', '-C', TOP_SRCDIR, 'log', '-1', '--format=%h'],
                           capture_output=True, timeout=10)
        dirty = subprocess.run(['git', '-C', TOP_SRCDIR, 'status', '--porcelain',
                                '--untracked-files=no'], capture_output=True, timeout=10)
        return r.stdout.decode().strip() + (' + uncommitted changes' if dirty.stdout else '')
    except (OSError, subprocess.SubprocessError):
        return 'unknown'


def peer_notes(rows, hows):
    """What the table's notes say about the peers' rows."""
    notes = []
    capped = [r for r in rows if r['system'] == 'opensmtpd' and r.get('note')]
    if capped:
        notes.append('opensmtpd: a smaller load (%s): OpenSMTPD 6.8 listens with a backlog '
                     'of 5, so with more sessions the SYNs it drops are sent again after '
                     '1 s and acceptance collapses; and it relays at 14-15 messages/s '
                     'whatever the load, over one connection at a time, mostly idle '
                     '("hiwat reached ... holding envelopes"; not investigated), so the '
                     'full load would not end within %d s' % (capped[0]['note'],
                                                              STEP_TIMEOUT))
    if 'cgroup' in hows:
        notes.append('exim, opensmtpd: CPU from a cgroup of their own (cpu.stat: every '
                     'process, also those the kernel reaps for a parent ignoring SIGCHLD, '
                     'as Exim\'s receiving processes do), memory the PSS of its processes; '
                     'postfix, sluice: their process tree (Postfix\'s master reaps every '
                     'child; sluiced is one process), where nothing is missed')
    if 'subreaper' in hows:
        notes.append('exim, opensmtpd: CPU and memory of their process tree under a '
                     'subreaper (no cgroup v2 could be made), which misses processes the '
                     'kernel reaps: it undercounts Exim, whose receiving processes ignore '
                     'SIGCHLD (on the project VM it saw 4.2-4.7 of the 11.6-12.4 ms per '
                     'message its cgroup counted)')
    return notes


def record(rows, idle, argv, files, notes):
    with open('/proc/cpuinfo') as f:
        cpu = next((ln.split(':', 1)[1].strip() for ln in f if ln.startswith('model name')),
                   '?')
    sec = ['', '## %s: benchmark harness (relay, latency, CPU, memory)' %
           time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()), '',
           '- kernel: %s' % os.uname().release,
           '- CPU: %s (%d online)' % (cpu, os.cpu_count()),
           '- commit: %s' % git_commit(),
           '- run: `test/bench/harness.py %s` (make bench; inside unshare -n)' % ' '.join(argv),
           '- accepted/s: sluice-bench\'s count of 250s over its run; relayed/s: N over the '
           'time to the N-th message at the sink; latency: end of data to its reply; CPU: '
           'the MTA\'s process tree (or cgroup: see the notes below the table)', '',
           table(rows).rstrip('\n'), '']
    if notes:
        sec += ['- %s' % note for note in notes] + ['']
    if idle:
        sec.append('idle sessions: %(established)d of %(sessions)d held by sluiced; RSS '
                   '%(rss_before_kb)d KiB before, %(rss_held_kb)d KiB held: '
                   '%(rss_per_session_b).0f bytes per session (%(status)s)' % idle)
        sec.append('')
    for p in files:
        if p.endswith('.png'):
            sec.append('![relay rates and latencies](%s)' % os.path.relpath(p, TOP_SRCDIR))
            sec.append('')
    with open(os.path.join(TOP_SRCDIR, 'BENCHMARKS.md'), 'a') as f:
        f.write('\n'.join(sec) + '\n')


def main():
    ap = argparse.ArgumentParser(description='sluice benchmark harness')
    ap.add_argument('--record', action='store_true')
    ap.add_argument('--smoke', action='store_true')
    ap.add_argument('-n', type=int, default=20000)
    ap.add_argument('-s', type=int, default=50)
    ap.add_argument('--sizes', default='1024,51200')
    ap.add_argument('--idle', type=int, default=10000)
    ap.add_argument('--no-postfix', action='store_true')
    ap.add_argument('--no-exim', action='store_true')
    ap.add_argument('--no-opensmtpd', action='store_true')
    args = ap.parse_args()
    if os.environ.get('SL_BENCH_NETNS') != '1':
        os.environ['SL_BENCH_NETNS'] = '1'
        os.execvp('unshare', ['unshare', '-n', '--', 'sh', '-c',
                              'ip link set lo up && exec "$0" "$@"', sys.executable,
                              os.path.abspath(__file__)] + sys.argv[1:])
    if args.smoke:
        args.n, args.s, args.sizes, args.idle = 200, 8, '1024', 200
        args.no_postfix = args.no_exim = args.no_opensmtpd = True
    for p in (SLUICED, BENCH):
        if not os.access(p, os.X_OK):
            log('harness: %s is not built' % p)
            return 2
    sizes = [int(x) for x in args.sizes.split(',') if x]
    peers, notes = [], []
    if not args.no_postfix and tool('postfix') is not None and \
            os.path.exists('/etc/postfix/master.cf'):
        peers.append(('postfix', Postfix, PF_PORT))
    for name, env, extracted, names, cls, port, off in (
            ('exim', 'EXIM_BIN', EXIM_EXTRACTED, ('exim4', 'exim'), Exim, EXIM_PORT,
             args.no_exim),
            ('opensmtpd', 'SMTPD_BIN', SMTPD_EXTRACTED, ('smtpd',), OpenSMTPD, SMTPD_PORT,
             args.no_opensmtpd)):
        exe = None if off else find_peer(env, extracted, names)
        if exe:
            log('%s: %s' % (name, exe))
            peers.append((name, lambda w, t, c=cls, e=exe: c(w, t, e), port))
        elif not off:
            notes.append('%s: not installed (%s; see README.md, "make bench")' % (
                name, '$%s=%s is not executable' % (env, os.environ[env]) if
                os.environ.get(env) else 'no $%s, no %s, no %s on PATH' % (
                    env, extracted, ' or '.join(names))))
            log(notes[-1])
    work = tempfile.mkdtemp(prefix='sluice-harness.', dir='/var/tmp')
    os.chmod(work, 0o755)  # Postfix's daemons (user postfix) must reach their directories
    rows, hows = [], set()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(3))
    try:
        for size in sizes:
            if not args.smoke:
                ceiling_runs(size, args.n, args.s, work, rows)
            for fsync in (True, False) if not args.smoke else (True,):
                d = Sluiced(work, fsync)
                try:
                    for proto, port in (('smtp', SMTP_PORT), ('ecstream', ECS_PORT)):
                        rows.append(relay_run('sluice-%s' % ('fsync' if fsync else 'nofsync'),
                                              proto, port, d.pid, size, args.n, args.s, work,
                                              d.peak_rss_kb))
                        log(table(rows[-1:]).splitlines()[-1])
                finally:
                    d.stop()
            for name, make, port in peers:
                n, sessions, note = args.n, args.s, None
                if name == 'opensmtpd' and (n > OPENSMTPD_N or sessions > OPENSMTPD_SESSIONS):
                    n, sessions = min(n, OPENSMTPD_N), min(sessions, OPENSMTPD_SESSIONS)
                    note = 'n=%d, %d sessions' % (n, sessions)
                try:
                    mta = make(work, size)
                except (OSError, LookupError, RuntimeError, subprocess.SubprocessError) as e:
                    log('%s did not start: %s' % (name, e))
                    rows.append({'system': name, 'proto': 'smtp', 'size': size, 'n': n,
                                 'sessions': sessions, 'accepted': 0, 'accept_mps': 0.0,
                                 'relay_mps': 0.0, 'lat_p50_us': 0, 'lat_p99_us': 0,
                                 'cpu_s_per_1k': 0.0, 'peak_rss_kb': 0,
                                 'status': 'failed(%s did not start)' % name})
                    continue
                try:
                    rows.append(relay_run(name, 'smtp', port, mta.pid, size, n, sessions, work,
                                          cpu_fn=mta.cpu_s, rss_fn=mta.rss_kb))
                    rows[-1]['note'] = note
                    log(table(rows[-1:]).splitlines()[-1])
                finally:
                    mta.stop()
                hows.add(getattr(mta, 'how', 'tree'))
        idle = idle_run(args.idle, work) if args.idle > 0 else None
    finally:
        if not args.smoke:
            log('work directory: %s' % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    notes += peer_notes(rows, hows)
    for note in notes:
        log(note)
    print(table(rows), end='')
    if idle:
        print('idle: %(established)d/%(sessions)d sessions, %(rss_per_session_b).0f bytes each '
              '(%(status)s)' % idle)
    print(json.dumps({'runs': rows, 'idle': idle}))
    if args.record:
        stem = os.path.join(TOP_SRCDIR, 'test', 'bench', 'results',
                            time.strftime('harness-%Y%m%d-%H%M', time.gmtime()))
        os.makedirs(os.path.dirname(stem), exist_ok=True)
        files = charts([r for r in rows if r['system'] != 'ceiling' or
                        r['proto'] == 'smtp-source'], stem)
        record(rows, idle, sys.argv[1:], files, notes)
        log('recorded in BENCHMARKS.md%s' % (' with ' + ', '.join(files) if files
                                             else ' (no gnuplot: no chart)'))
    bad = [r for r in rows if r['status'] != 'ok'] + (
        [idle] if idle and idle['status'] != 'ok' else [])
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
