#!/usr/bin/env python3
"""test/bench/harness.py - the benchmark harness of `make bench`: sluice beside
Postfix and the loopback ceiling, in one run, on loopback only.

    harness.py [--record] [--smoke] [-n N] [-s SESSIONS] [--sizes 1024,51200]
               [--idle SESSIONS] [--no-postfix]

In this order, for each size (so the machine's noise hits all alike):
  ceiling        Postfix's smtp-source straight into smtp-sink (when installed),
                 and sluice-bench into its own sink;
  sluice         sluiced relaying to a sink (sluice-bench sink, counter polled
                 every 10 ms), injected by sluice-bench over SMTP and over
                 ECStream, with Force_Fsync on, then off;
  postfix        a private Postfix instance this script configures (when Postfix
                 is installed) relaying the same load, injected over SMTP.
Then sluiced holding IDLE (10,000) idle SMTP sessions: RSS per session.

Figures per run: accepted messages/s (sluice-bench), relayed messages/s (N /
time from the first injection to the N-th message at the sink), p50/p99
latency from the end of data to its reply, CPU seconds per 1,000 messages
of the MTA's process tree, and its peak memory (proportional set size of
the tree, sampled every 0.2 s; sluiced's own peak RSS when larger).  --record appends a table to
BENCHMARKS.md (date, kernel, CPU, commit, the exact command) and draws the
relay rates and latencies with gnuplot (PNG and SVG, in test/bench/results/)
when gnuplot is installed.  --smoke: N=200, 1 KiB, 8 sessions, 200 idle
sessions, sluice only; exits 1 when a run did not complete (the check that
`make check` runs).

Everything runs inside one private network namespace with only loopback
(the script re-executes itself under `unshare -n`); every step is bounded
in time; everything started is stopped on exit.
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
    total = 0
    for p in tree(pid):
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
    """The peak RSS of a process tree, sampled every 0.2 s."""

    def __init__(self, pid):
        self.pid, self.peak, self.halt = pid, 0, threading.Event()
        self.th = threading.Thread(target=self.run, daemon=True)
        self.th.start()

    def run(self):
        while not self.halt.is_set():
            self.peak = max(self.peak, tree_rss_kb(self.pid))
            self.halt.wait(0.2)

    def stop(self):
        self.halt.set()
        self.th.join()
        self.peak = max(self.peak, tree_rss_kb(self.pid))
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


# ---------------------------------------------------------------- one measured run

def relay_run(system, proto, port, pid, size, n, sessions, work, peak_fn=None):
    """Inject n messages into port; returns the figures (a dict)."""
    jfile = os.path.join(work, '%s-%s-%d.json' % (system, proto, size))
    cmd = [BENCH, 'inject', '-H', '127.0.0.1', '-p', str(port), '-P', proto, '-n', str(n),
           '-s', str(sessions), '-l', str(size), '-t', 'rcpt@sink.example',
           '-T', str(STEP_TIMEOUT), '-j', jfile]
    if proto == 'ecstream':
        cmd += ['-m', '0']
    sink = Sink(work)
    try:
        cpu0 = tree_cpu(pid)
        rss = RssSampler(pid)
        t0 = time.monotonic()
        inj = subprocess.run(cmd, capture_output=True, timeout=STEP_TIMEOUT + 30)
        t_end = sink.wait(n, time.monotonic() + STEP_TIMEOUT)
        cpu1 = tree_cpu(pid)
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
            r['peak_rss_kb'] / 1024, r['status']))
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


def record(rows, idle, argv, files):
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
           'the MTA\'s process tree', '', table(rows).rstrip('\n'), '']
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
    args = ap.parse_args()
    if os.environ.get('SL_BENCH_NETNS') != '1':
        os.environ['SL_BENCH_NETNS'] = '1'
        os.execvp('unshare', ['unshare', '-n', '--', 'sh', '-c',
                              'ip link set lo up && exec "$0" "$@"', sys.executable,
                              os.path.abspath(__file__)] + sys.argv[1:])
    if args.smoke:
        args.n, args.s, args.sizes, args.idle, args.no_postfix = 200, 8, '1024', 200, True
    for p in (SLUICED, BENCH):
        if not os.access(p, os.X_OK):
            log('harness: %s is not built' % p)
            return 2
    sizes = [int(x) for x in args.sizes.split(',') if x]
    postfix = not args.no_postfix and tool('postfix') is not None and \
        os.path.exists('/etc/postfix/master.cf')
    work = tempfile.mkdtemp(prefix='sluice-harness.', dir='/var/tmp')
    os.chmod(work, 0o755)  # Postfix's daemons (user postfix) must reach their directories
    rows = []
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
            if postfix:
                try:
                    pf = Postfix(work, size)
                except (OSError, RuntimeError, subprocess.SubprocessError) as e:
                    log('postfix did not start: %s' % e)
                    rows.append({'system': 'postfix', 'proto': 'smtp', 'size': size, 'n': args.n,
                                 'sessions': args.s, 'accepted': 0, 'accept_mps': 0.0,
                                 'relay_mps': 0.0, 'lat_p50_us': 0, 'lat_p99_us': 0,
                                 'cpu_s_per_1k': 0.0, 'peak_rss_kb': 0,
                                 'status': 'failed(postfix did not start)'})
                    continue
                try:
                    rows.append(relay_run('postfix', 'smtp', PF_PORT, pf.pid, size, args.n,
                                          args.s, work))
                    log(table(rows[-1:]).splitlines()[-1])
                finally:
                    pf.stop()
        idle = idle_run(args.idle, work) if args.idle > 0 else None
    finally:
        if not args.smoke:
            log('work directory: %s' % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
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
        record(rows, idle, sys.argv[1:], files)
        log('recorded in BENCHMARKS.md%s' % (' with ' + ', '.join(files) if files
                                             else ' (no gnuplot: no chart)'))
    bad = [r for r in rows if r['status'] != 'ok'] + (
        [idle] if idle and idle['status'] != 'ok' else [])
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
