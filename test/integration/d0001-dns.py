#!/usr/bin/env python3
"""d0001-dns: the delivery resolver (stages/deliver_dns.c) against real DNS servers.

Inside a private network namespace (only lo up, nothing leaves the machine)
the script starts two dnsmasq servers and a small scripted one, builds
test/integration/dns_probe.c with the repository's sources and runs it
against them, checking each result line (status, exchangers in preference
order, addresses, expiry) and the probe's query counter, which shows what
was answered from the cache or joined to a lookup in flight:

  127.0.0.1:5353  dnsmasq: MX with equal and different preferences, implicit
                  MX, null MX, NXDOMAIN, exchangers without addresses,
                  IPv6-only, CNAME, 40 long-named MX (TCP fallback), a
                  host with 20 addresses, a 1-second TTL
  127.0.0.1:5355  dnsmasq authoritative for auth.test: negative answers carry
                  an SOA (TTL 90); every other name is REFUSED (dnsmasq answers
                  with authority only on an interface's own address, so this
                  one shares 127.0.0.1 on another port)
  127.0.0.3:5353  scripted (this file): SERVFAIL, silence (timeouts), an
                  exchanger name with a control octet, a null MX mixed with a
                  real MX, a TTL with the top bit set
  127.0.0.1:5354  nothing: connection refused

Environment: top_srcdir (default: the repository root); SL_PROBE_CFLAGS adds
compiler flags (e.g. "-fsanitize=address,undefined" or "-fsanitize=thread")
to the probe; SL_TEST_KEEP=1 keeps the temporary directory.  Python
standard library only; every wait has a deadline.
"""
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import sltest as t  # noqa: E402  (TAP helpers only)
from sltest import ok, is_, like, diag  # noqa: E402

TOP = os.environ.get('top_srcdir') or os.path.dirname(os.path.dirname(HERE))
DEADLINE = 20.0
WATCHDOG = 300
SANITIZER_RE = re.compile(r'WARNING: ThreadSanitizer|ERROR: AddressSanitizer|'
                          r'ERROR: LeakSanitizer|runtime error')
SOURCES = ['engine/alloc.c', 'engine/log.c', 'engine/htable.c', 'engine/counter.c', 'proto/dns.c',
           'stages/deliver_dns.c', 'test/integration/dns_probe.c']

TMP = None
PROCS = []


# ------------------------------------------------------------------ set-up

def netns():
    """Re-run this script in a private network namespace with only lo up."""
    if os.environ.get('SL_IN_NETNS') == '1':
        return
    try:
        rc = subprocess.run(['unshare', '-n', 'true'], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, timeout=DEADLINE).returncode
    except (OSError, subprocess.SubprocessError):
        rc = 1
    if rc != 0:
        t.skip_all('cannot create a network namespace (need root or user namespaces)')
    env = dict(os.environ, SL_IN_NETNS='1', PYTHONDONTWRITEBYTECODE='1')
    sys.stdout.flush()
    os.execvpe('unshare', ['unshare', '-n', 'sh', '-c',
                           'ip link set lo up 2>/dev/null || ifconfig lo up; exec "$0" "$@"',
                           sys.executable, os.path.abspath(sys.argv[0])] + sys.argv[1:], env)


def cleanup():
    for p in PROCS:
        if p.poll() is None:
            p.kill()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
    if TMP and not os.environ.get('SL_TEST_KEEP'):
        shutil.rmtree(TMP, ignore_errors=True)


def bail(reason):
    cleanup()
    t.bail(reason)


def watchdog(signum, frame):
    print('not ok - watchdog: the script ran longer than %d s' % WATCHDOG)
    cleanup()
    os._exit(1)


def path(name):
    return os.path.join(TMP, name)


def write(name, text):
    with open(path(name), 'w') as f:
        f.write(text)
    return path(name)


def pkg_config(*args):
    r = subprocess.run(['pkg-config'] + list(args), capture_output=True, text=True,
                       timeout=DEADLINE)
    if r.returncode != 0:
        t.skip_all('pkg-config %s failed: %s' % (' '.join(args), r.stderr.strip()))
    return r.stdout.split()


def build_probe(name='dns_probe', extra=()):
    cfg = path('cfg')
    os.makedirs(cfg, exist_ok=True)
    write('cfg/config.h', '#define _GNU_SOURCE 1\n')
    cmd = (['gcc', '-std=gnu11', '-g', '-O1', '-Wall', '-Wextra', '-Werror',
            '-Wno-unused-parameter', '-I' + TOP, '-I' + cfg] +
           pkg_config('--cflags', 'libuv', 'libcares', 'liburcu-memb') +
           os.environ.get('SL_PROBE_CFLAGS', '').split() +
           list(extra) + [os.path.join(TOP, s) for s in SOURCES] + ['-o', path(name)] +
           os.environ.get('SL_PROBE_CFLAGS', '').split() +
           pkg_config('--libs', 'libuv', 'libcares', 'liburcu-memb', 'liburcu-cds') +
           ['-lpthread'])
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        bail('building the probe took longer than 300 s')
    if r.returncode != 0:
        bail('cannot build the probe: %s\n%s' % (' '.join(cmd), r.stderr))
    return path(name)


# ------------------------------------------------------------------ DNS wire helpers

def wire_name(labels):
    return b''.join(bytes([len(lb)]) + lb for lb in labels) + b'\0'


def dns_query(server, name, qtype=1, timeout=0.5):
    """One UDP query; the reply's RCODE, or None without an answer."""
    q = struct.pack('>HHHHHH', 0x4242, 0x0100, 1, 0, 0, 0)
    q += wire_name([lb.encode() for lb in name.split('.')]) + struct.pack('>HH', qtype, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(q, server)
            r = s.recv(4096)
        except OSError:
            return None
    return r[3] & 0x0f if len(r) >= 12 else None


def wait_for(pred, timeout=DEADLINE, interval=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    return None


def mx_rdata(pref, labels):
    return struct.pack('>H', pref) + wire_name(labels)


# What the scripted server answers: (name, qtype or '*') -> 'hang' | 'servfail' | records.
A, MX, AAAA = 1, 15, 28
FAKE = {
    ('hang.test', '*'): 'hang',
    ('servfail.test', '*'): 'servfail',
    ('weird.test', MX): [(MX, 300, mx_rdata(10, [b'bad\x01name', b'weird', b'test'])),
                         (MX, 300, mx_rdata(20, [b'ok', b'weird', b'test']))],
    ('ok.weird.test', A): [(A, 100, socket.inet_aton('127.0.0.40'))],
    ('ok.weird.test', AAAA): [],
    ('mixednull.test', MX): [(MX, 300, mx_rdata(0, [])),
                             (MX, 300, mx_rdata(10, [b'real', b'mixednull', b'test']))],
    ('real.mixednull.test', A): [(A, 300, socket.inet_aton('127.0.0.41'))],
    ('real.mixednull.test', AAAA): [],
    ('zerottl.test', A): [(A, 0x80000001, socket.inet_aton('127.0.0.42'))],
    ('zerottl.test', AAAA): [],
}


class FakeDNS(threading.Thread):
    """A UDP DNS server answering from FAKE (REFUSED for anything else)."""

    def __init__(self, addr):
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(addr)
        self.sock.settimeout(0.1)
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            try:
                q, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                break
            r = self.answer(q)
            if r is not None:
                self.sock.sendto(r, peer)
        self.sock.close()

    @staticmethod
    def answer(q):
        if len(q) < 17:
            return None
        qid = struct.unpack('>H', q[:2])[0]
        pos, labels = 12, []
        while pos < len(q) and q[pos] != 0:
            n = q[pos]
            labels.append(q[pos + 1:pos + 1 + n])
            pos += 1 + n
        pos += 1
        if pos + 4 > len(q):
            return None
        qtype = struct.unpack('>H', q[pos:pos + 2])[0]
        question = q[12:pos + 4]
        name = b'.'.join(labels).decode('latin-1').lower()
        rule = FAKE.get((name, qtype), FAKE.get((name, '*')))
        rcode, records = 0, []
        if rule == 'hang':
            return None
        if rule == 'servfail':
            rcode = 2
        elif rule is None:
            rcode = 5
        else:
            records = rule
        out = struct.pack('>HHHHHH', qid, 0x8180 | rcode, 1, len(records), 0, 0) + question
        for rtype, ttl, rdata in records:
            out += b'\xc0\x0c' + struct.pack('>HHIH', rtype, 1, ttl, len(rdata)) + rdata
        return out


def dnsmasq(name, addrs, port, args):
    """Start dnsmasq (forking TCP children: -k, not -d, which serves TCP inline)."""
    log = path(name + '.log')
    cmd = ['dnsmasq', '--keep-in-foreground', '--pid-file=', '--log-facility=' + log,
           '--port=%d' % port, '--bind-interfaces', '--no-resolv', '--no-hosts',
           '--conf-file=/dev/null', '--log-queries=extra', '--user=root'] + \
          ['--listen-address=' + a for a in addrs] + args
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=open(path(name + '.stderr'), 'w'))
    PROCS.append(p)
    if not wait_for(lambda: p.poll() is not None or
                    dns_query((addrs[0], port), 'ready.probe') is not None):
        bail('%s did not answer within %d s' % (name, DEADLINE))
    if p.poll() is not None:
        bail('%s exited: %s' % (name, open(path(name + '.stderr')).read()))
    return p, log


def log_count(log, pattern):
    with open(log, errors='replace') as f:
        return len(re.findall(pattern, f.read()))


# ------------------------------------------------------------------ the probe

RESULT_RE = re.compile(r'^(?:t(\d+) )?result (mx|host) (\S+) status=(\S+) implicit=(\d) '
                       r'ttl=(\S+) queries=(\d+) hosts=(\S*) why=(.*)$')
STEP_RE = re.compile(r'^(?:t(\d+) )?step (\d+) queries=(\d+)$')


class Host:
    def __init__(self, text):
        self.name, pref, self.status, addrs = text.split('/')
        self.pref = int(pref)
        self.addrs = addrs.split(',') if addrs else []

    def __repr__(self):
        return '%s/%d/%s/%s' % (self.name, self.pref, self.status, ','.join(self.addrs))


class Result:
    def __init__(self, m):
        self.thread = int(m.group(1) or 0)
        self.kind, self.name, self.status = m.group(2), m.group(3), m.group(4)
        self.implicit = m.group(5) == '1'
        self.ttl = None if m.group(6) == 'inf' else int(m.group(6))
        self.queries = int(m.group(7))
        self.hosts = [Host(h) for h in m.group(8).split(';')] if m.group(8) else []
        self.why = m.group(9)

    def __repr__(self):
        return 'result %s %s %s ttl=%s hosts=%s why=%s' % (
            self.kind, self.name, self.status, self.ttl, self.hosts, self.why)


class Run:
    def __init__(self, args, steps, timeout, program=None):
        start = time.monotonic()
        try:
            r = subprocess.run([program or PROBE] + args + steps, capture_output=True, text=True,
                               timeout=timeout)
            self.rc, self.out, self.err = r.returncode, r.stdout, r.stderr
        except subprocess.TimeoutExpired as e:
            self.rc, self.out, self.err = None, str(e.stdout or ''), str(e.stderr or '')
        self.elapsed = time.monotonic() - start
        self.lines = self.out.splitlines()
        self.results = [Result(m) for m in map(RESULT_RE.match, self.lines) if m]
        self.steps = {}
        for m in map(STEP_RE.match, self.lines):
            if m:
                self.steps[(int(m.group(1) or 0), int(m.group(2)))] = int(m.group(3))

    def result(self, kind, name, thread=0, nth=0):
        found = [r for r in self.results
                 if r.kind == kind and r.name == name and r.thread == thread]
        return found[nth] if len(found) > nth else None

    def step(self, n, thread=0):
        return self.steps.get((thread, n))

    def dump(self):
        return 'rc=%s elapsed=%.2fs\n%s\nstderr:\n%s' % (self.rc, self.elapsed, self.out,
                                                        self.err)


def probe(conf, steps, *opts, timeout=60, program=None):
    """Run the probe; assert it ended cleanly (rc 0, handles closed, no sanitizer report)."""
    r = Run(['-r', conf] + list(opts), steps, timeout, program)
    what = '%s %s' % (os.path.basename(conf), ' '.join(steps)[:60])
    threads = int(opts[opts.index('-j') + 1]) if '-j' in opts else 1
    ok(r.rc == 0 and sum(ln.endswith('loop closed rc=0') for ln in r.lines) == threads and
       not any('BUG' in ln for ln in r.lines) and not SANITIZER_RE.search(r.err),
       'probe [%s] closes cleanly: no callback inside a call, no handle left, '
       'no sanitizer report' % what, r.dump())
    return r


def check(r, res, name, cond, *why):
    try:
        good = res is not None and cond(res)
    except (TypeError, ValueError, IndexError, AttributeError) as e:
        good, why = False, why + ('check raised %r' % e,)
    return ok(good, name, repr(res), *why, r.dump())


# ------------------------------------------------------------------ the tests

netns()
signal.signal(signal.SIGALRM, watchdog)
signal.alarm(WATCHDOG)
for tool in ('dnsmasq', 'gcc', 'pkg-config'):
    if shutil.which(tool) is None:
        t.skip_all('%s is not installed' % tool)
TMP = tempfile.mkdtemp(prefix='sluice-dns.')
try:
    PROBE = build_probe()
    PROBE_SMALL = build_probe('dns_probe_small', ['-DDNS_CACHE_MAX_ENTRIES=4'])
    HAS_V6 = t.has_ipv6_loopback()

    many = []
    for n in range(1, 41):
        host = 'a-rather-long-exchanger-name-number-%02d.many.test' % n
        many += ['--mx-host=many.test,%s,%d' % (host, 41 - n),
                 '--host-record=%s,127.0.1.%d' % (host, n)]
    _, main_log = dnsmasq('main', ['127.0.0.1'] + (['::1'] if HAS_V6 else []), 5353, [
        '--local=/test/', '--local-ttl=300',
        '--mx-host=multi.test,mx1.multi.test,10', '--mx-host=multi.test,mx2.multi.test,10',
        '--mx-host=multi.test,mx3.multi.test,20',
        '--host-record=mx1.multi.test,127.0.0.11,fd00::11,30',
        '--host-record=mx2.multi.test,127.0.0.12',
        '--mx-host=join.test,mx.join.test,10', '--host-record=mx.join.test,127.0.0.50',
        '--host-record=implicit.test,127.0.0.20',
        '--mx-host=nullmx.test,.,0',
        '--mx-host=noaddr.test,gone1.noaddr.test,10', '--mx-host=noaddr.test,gone2.noaddr.test,20',
        '--txt-record=gone2.noaddr.test,no addresses here',
        '--mx-host=v6only.test,v6.v6only.test,10', '--host-record=v6.v6only.test,fd00::6',
        '--cname=alias.test,implicit.test',
        '--host-record=short.test,127.0.0.5,1',
    ] + many + ['--host-record=manyaddr.test,127.0.2.%d' % n for n in range(1, 21)])
    dnsmasq('auth', ['127.0.0.1'], 5355, [
        '--auth-server=ns.auth.test,127.0.0.1', '--auth-zone=auth.test', '--auth-ttl=90',
        '--host-record=h.auth.test,127.0.0.30'])
    fake = FakeDNS(('127.0.0.3', 5353))
    fake.start()

    MAIN = write('main.conf', '# the main dnsmasq\nnameserver 127.0.0.1:5353\n')
    AUTH = write('auth.conf', 'nameserver 127.0.0.1:5355\n')
    FAKE_CONF = write('fake.conf', 'nameserver 127.0.0.3:5353\n')
    DEAD = write('dead.conf', 'nameserver 127.0.0.1:5354\n')

    # ---------------------------------------------------------------- MX, hosts, cache
    r = probe(MAIN, ['mx:multi.test', 'mx:multi.test', 'mx:join.test+mx:join.test+mx:JOIN.test.',
                     'host:mx.join.test', 'mx:implicit.test', 'mx:nullmx.test', 'mx:nx.test',
                     'mx:noaddr.test', 'mx:v6only.test', 'mx:alias.test', 'mx:many.test',
                     'host:manyaddr.test', 'mx:[127.0.0.9]+host:192.0.2.1+host:[::1]',
                     'mx:bad..name+host:bad%name', 'host:nx.test'])
    m = r.result('mx', 'multi.test')
    check(r, m, 'multi.test: OK, explicit MX, three exchangers',
          lambda x: x.status == 'OK' and not x.implicit and len(x.hosts) == 3)
    check(r, m, 'multi.test: the two preference-10 exchangers first, then preference 20',
          lambda x: sorted(h.name for h in x.hosts[:2]) == ['mx1.multi.test', 'mx2.multi.test']
          and [h.pref for h in x.hosts] == [10, 10, 20] and x.hosts[2].name == 'mx3.multi.test')
    check(r, m, 'multi.test: each exchanger has its own status and addresses (IPv4 first)',
          lambda x: {h.name: (h.status, h.addrs) for h in x.hosts} == {
              'mx1.multi.test': ('OK', ['127.0.0.11', 'fd00::11']),
              'mx2.multi.test': ('OK', ['127.0.0.12']),
              'mx3.multi.test': ('NXDOMAIN', [])})
    check(r, m, 'multi.test: kept for the smallest TTL used (mx1 A/AAAA: 30 s of 300)',
          lambda x: 25 <= x.ttl <= 30)
    is_(r.step(0), 7, 'multi.test cost 7 queries: MX, then A and AAAA of three exchangers')
    m2 = r.result('mx', 'multi.test', nth=1)
    check(r, m2, 'a second lookup within the TTL is answered from the cache',
          lambda x: x.status == 'OK' and len(x.hosts) == 3)
    is_(r.step(1), 7, '... without a query')
    joined = [x for x in r.results if x.name.lower().rstrip('.') == 'join.test']
    ok(len(joined) == 3 and all(x.status == 'OK' and [h.addrs for h in x.hosts] ==
                                [['127.0.0.50']] for x in joined),
       'three concurrent lookups of join.test (any case, trailing dot) all answer', r.dump())
    is_((r.step(2) or 0) - (r.step(1) or 0), 3, '... with one MX, one A and one AAAA query')
    check(r, r.result('host', 'mx.join.test'), 'an exchanger\'s addresses serve sl_dns_host',
          lambda x: x.status == 'OK' and x.hosts[0].addrs == ['127.0.0.50'])
    is_(r.step(3), r.step(2), '... from the cache')
    check(r, r.result('mx', 'implicit.test'), 'no MX but an A record: implicit MX (RFC 5321 5.1)',
          lambda x: x.status == 'OK' and x.implicit and len(x.hosts) == 1 and
          (x.hosts[0].name, x.hosts[0].pref, x.hosts[0].addrs) == ('implicit.test', 0,
                                                                  ['127.0.0.20']))
    check(r, r.result('mx', 'implicit.test'), '... kept 60 s: the MX NODATA had no SOA',
          lambda x: 55 <= x.ttl <= 60)
    check(r, r.result('mx', 'nullmx.test'), 'a null MX (RFC 7505) is NULL_MX, no hosts',
          lambda x: x.status == 'NULL_MX' and not x.hosts and 'null MX' in x.why)
    is_((r.step(5) or 0) - (r.step(4) or 0), 1, '... after one query')
    check(r, r.result('mx', 'nx.test'), 'NXDOMAIN, kept 60 s without an SOA',
          lambda x: x.status == 'NXDOMAIN' and 55 <= x.ttl <= 60 and
          x.why == 'NXDOMAIN for nx.test')
    check(r, r.result('mx', 'noaddr.test'),
          'every exchanger permanently without an address: NODATA, each host its status',
          lambda x: x.status == 'NODATA' and [(h.name, h.status) for h in x.hosts] ==
          [('gone1.noaddr.test', 'NXDOMAIN'), ('gone2.noaddr.test', 'NODATA')] and
          'no A/AAAA records for any MX host of noaddr.test' in x.why)
    check(r, r.result('mx', 'v6only.test'), 'an exchanger with only AAAA is OK',
          lambda x: x.status == 'OK' and x.hosts[0].addrs == ['fd00::6'])
    check(r, r.result('mx', 'alias.test'), 'a CNAME without MX: implicit MX through the CNAME',
          lambda x: x.status == 'OK' and x.implicit and x.hosts[0].addrs == ['127.0.0.20'])
    check(r, r.result('mx', 'many.test'),
          '40 MX (too big for UDP, asked again over TCP): the 32 lowest preferences, in order',
          lambda x: x.status == 'OK' and [h.pref for h in x.hosts] == list(range(1, 33)) and
          all(h.addrs == ['127.0.1.%d' % (41 - h.pref)] for h in x.hosts))
    check(r, r.result('host', 'manyaddr.test'), 'a host with 20 addresses keeps 16',
          lambda x: x.status == 'OK' and len(set(x.hosts[0].addrs)) == 16)
    check(r, r.result('mx', '[127.0.0.9]'), 'a domain literal answers its address, no expiry',
          lambda x: x.status == 'OK' and x.ttl is None and x.hosts[0].addrs == ['127.0.0.9'])
    check(r, r.result('host', '[::1]'), 'a host literal [::1] answers ::1',
          lambda x: x.status == 'OK' and x.hosts[0].addrs == ['::1'])
    is_(r.step(12), r.step(11), '... literals cost no query')
    check(r, r.result('mx', 'bad..name'), 'an invalid domain name is NXDOMAIN without a query',
          lambda x: x.status == 'NXDOMAIN' and 'invalid domain name' in x.why)
    check(r, r.result('host', 'bad%name'), 'so is an invalid host name',
          lambda x: x.status == 'NXDOMAIN' and x.why == 'invalid host name "bad%name"')
    is_(r.step(13), r.step(12), '... without a query')
    check(r, r.result('host', 'nx.test'), 'sl_dns_host of a missing name: NXDOMAIN',
          lambda x: x.status == 'NXDOMAIN' and x.hosts[0].status == 'NXDOMAIN')

    # ---------------------------------------------------------------- a full cache
    r = probe(MAIN, ['mx:multi.test', 'mx:implicit.test', 'mx:multi.test',
                     'host:mx1.multi.test+host:mx2.multi.test+host:mx3.multi.test'],
              program=PROBE_SMALL)
    ok(r.step(0) == 7 and r.step(1) == 10, 'a cache of 4 results: multi.test (4 results), '
       'then implicit.test (2 more, the 2 oldest go)', r.dump())
    check(r, r.result('mx', 'multi.test', nth=1), '... multi.test is still answered right',
          lambda x: x.status == 'OK' and len(x.hosts) == 3 and
          sorted(h.name for h in x.hosts) == ['mx1.multi.test', 'mx2.multi.test',
                                              'mx3.multi.test'])
    is_(r.step(2), r.step(1), '... from the cache (it was used recently)')
    is_((r.step(3) or 0) - (r.step(2) or 0), 4,
        '... while two evicted exchangers are asked again (A and AAAA), one is not')
    ok(all(x.status == ('NXDOMAIN' if x.name == 'mx3.multi.test' else 'OK')
           for x in r.results if x.kind == 'host'), '... and all three answer right', r.dump())

    # ---------------------------------------------------------------- expiry and Min_DNS_TTL
    r = probe(MAIN, ['host:short.test', 'sleep:1500', 'host:short.test'])
    check(r, r.result('host', 'short.test'), 'a 1-second TTL is kept 1 s',
          lambda x: x.status == 'OK' and x.ttl == 1)
    ok(r.step(2) is not None and r.step(0) is not None and r.step(2) - r.step(0) == 2,
       'after it expired the name is asked again (A and AAAA)', r.dump())
    r = probe(MAIN, ['host:short.test', 'sleep:1500', 'host:short.test', 'mx:multi.test'],
              '-m', '120')
    check(r, r.result('host', 'short.test'), 'Min_DNS_TTL 120 raises the 1-second TTL',
          lambda x: x.ttl == 120)
    is_(r.step(2), r.step(0), '... so 1.5 s later it is still answered from the cache')
    check(r, r.result('mx', 'multi.test'), '... and every answer of multi.test, negative too',
          lambda x: x.status == 'OK' and x.ttl == 120)

    # ---------------------------------------------------------------- authoritative server
    r = probe(AUTH, ['mx:nx.auth.test', 'mx:h.auth.test', 'mx:multi.test'])
    check(r, r.result('mx', 'nx.auth.test'), 'NXDOMAIN with an SOA: kept min(SOA TTL, MINIMUM)',
          lambda x: x.status == 'NXDOMAIN' and 85 <= x.ttl <= 90)
    check(r, r.result('mx', 'h.auth.test'), 'implicit MX from an authoritative server, TTL 90',
          lambda x: x.status == 'OK' and x.implicit and 85 <= x.ttl <= 90 and
          x.hosts[0].addrs == ['127.0.0.30'])
    check(r, r.result('mx', 'multi.test'), 'REFUSED is TEMPFAIL, kept 5 s',
          lambda x: x.status == 'TEMPFAIL' and not x.hosts and x.ttl == 5 and
          x.why.startswith('MX lookup for multi.test: '))

    # ---------------------------------------------------------------- scripted server
    r = probe(FAKE_CONF, ['mx:servfail.test', 'mx:servfail.test', 'mx:hang.test',
                          'mx:weird.test', 'mx:mixednull.test', 'host:zerottl.test',
                          'host:zerottl.test'], '-t', '300', '-n', '2')
    check(r, r.result('mx', 'servfail.test'), 'SERVFAIL is TEMPFAIL',
          lambda x: x.status == 'TEMPFAIL' and x.ttl == 5)
    is_(r.step(1), r.step(0), 'a TEMPFAIL is held 5 s: the second lookup sends no query')
    check(r, r.result('mx', 'hang.test'), 'no answer: TEMPFAIL after the timeout',
          lambda x: x.status == 'TEMPFAIL' and 'Timeout' in x.why)
    ok(r.elapsed < 10, 'timeout 300 ms x 2 tries ends the lookup in time (%.2fs)' % r.elapsed,
       r.dump())
    check(r, r.result('mx', 'weird.test'),
          'an exchanger name with a control octet is dropped; the valid one stays',
          lambda x: x.status == 'OK' and [(h.name, h.pref, h.addrs) for h in x.hosts] ==
          [('ok.weird.test', 20, ['127.0.0.40'])])
    check(r, r.result('mx', 'mixednull.test'),
          'a null MX mixed with a real MX is not RFC 7505: the real one is used',
          lambda x: x.status == 'OK' and [h.name for h in x.hosts] == ['real.mixednull.test'])
    check(r, r.result('host', 'zerottl.test'), 'a TTL with the top bit set counts as 0',
          lambda x: x.status == 'OK' and x.ttl == 0 and x.hosts[0].addrs == ['127.0.0.42'])
    is_((r.step(6) or 0) - (r.step(5) or 0), 2, '... so it is not cached: asked again')

    # ---------------------------------------------------------------- dead and failing over
    r = probe(DEAD, ['mx:multi.test', 'host:x.test'], '-t', '300', '-n', '2')
    check(r, r.result('mx', 'multi.test'), 'a port where nothing listens: TEMPFAIL',
          lambda x: x.status == 'TEMPFAIL' and not x.hosts)
    check(r, r.result('host', 'x.test'), '... for sl_dns_host too',
          lambda x: x.status == 'TEMPFAIL' and x.hosts[0].status == 'TEMPFAIL')
    ok(r.elapsed < 10, 'connection refused ends quickly (%.2fs)' % r.elapsed, r.dump())
    conf = write('failover.conf', 'nameserver 127.0.0.1:5354\nnameserver 127.0.0.1:5353\n')
    r = probe(conf, ['mx:implicit.test'], '-t', '300', '-n', '2')
    check(r, r.result('mx', 'implicit.test'), 'the first nameserver dead: the second answers',
          lambda x: x.status == 'OK')
    if HAS_V6:
        conf = write('v6.conf', 'nameserver [::1]:5353\n')
        r = probe(conf, ['mx:implicit.test'])
        check(r, r.result('mx', 'implicit.test'), 'nameserver [::1]:5353 works',
              lambda x: x.status == 'OK')
    else:
        t.skip('nameserver [::1]:5353 works', 'no IPv6 loopback')

    # ---------------------------------------------------------------- resolv.conf
    conf = write('search.conf', 'nameserver 127.0.0.1:5353\nsearch nowhere.test multi.test\n')
    r = probe(conf, ['host:mx1', 'mx:mx1'])
    check(r, r.result('host', 'mx1'), 'a single-label host uses the search list',
          lambda x: x.status == 'OK' and x.hosts[0].addrs == ['127.0.0.11', 'fd00::11'])
    check(r, r.result('mx', 'mx1'), 'an MX lookup never does (mail domains are absolute)',
          lambda x: x.status != 'OK')
    conf = write('sort.conf', 'nameserver 127.0.0.1:5353\nsortlist fd00::/16\n')
    r = probe(conf, ['host:mx1.multi.test'])
    check(r, r.result('host', 'mx1.multi.test'), 'sortlist puts matching addresses first',
          lambda x: x.hosts[0].addrs == ['fd00::11', '127.0.0.11'])
    conf = write('opts.conf', 'nameserver 127.0.0.3:5353\noptions timeout:1 attempts:1\n')
    r = probe(conf, ['mx:hang.test'])
    check(r, r.result('mx', 'hang.test'), 'options timeout:1 attempts:1 are honoured',
          lambda x: x.status == 'TEMPFAIL')
    ok(0.8 <= r.elapsed < 6, '... one try of 1 s, not 3 of 2 s (%.2fs)' % r.elapsed, r.dump())
    conf = write('zone.conf', 'nameserver fe80::1%lo\nnameserver 127.0.0.1:5353\n')
    r = probe(conf, ['mx:implicit.test'])
    check(r, r.result('mx', 'implicit.test'), 'an unusable nameserver line is skipped',
          lambda x: x.status == 'OK')
    like(r.err, r'zone\.conf:1: "fe80::1%lo": IPv6 zone ids are not supported \(ignored\)',
         '... with a warning naming file and line')
    for name, text, pattern in [
            ('missing.conf', None, r'^error: \S+missing\.conf: No such file or directory$'),
            ('empty.conf', '', r'^error: \S+empty\.conf:0: no nameserver line$'),
            ('bad.conf', '# x\nnameserver bogus\n',
             r'^error: \S+bad\.conf:2: no usable nameserver: "bogus": not an IPv4 or IPv6'),
    ]:
        conf = write(name, text) if text is not None else path(name)
        r = Run(['-r', conf], ['mx:implicit.test'], DEADLINE)
        ok(r.rc == 3 and re.search(pattern, r.out, re.M) and
           not SANITIZER_RE.search(r.err), 'sl_dns_new refuses %s: %s' % (name, pattern),
           r.dump())

    # ---------------------------------------------------------------- closing
    r = probe(FAKE_CONF, ['mx:hang.test+host:hang.test+mx:hang.test+close+late'],
              '-t', '5000', '-n', '3')
    cancelled = [x for x in r.results if x.name == 'hang.test']
    ok(len(cancelled) == 3 and all(x.status == 'TEMPFAIL' for x in cancelled),
       'sl_dns_close: every pending lookup (two joined) is called back TEMPFAIL', r.dump())
    check(r, r.result('mx', 'late.test'), 'a lookup asked from such a callback is TEMPFAIL too',
          lambda x: x.status == 'TEMPFAIL' and 'shutting down' in x.why)
    ok('closed' in r.lines and all(r.lines.index('closed') > i for i, ln in enumerate(r.lines)
                                   if ln.startswith('result')),
       'done runs after the last callback', r.dump())
    ok(r.elapsed < 4, 'closing does not wait for the 5 s timeout (%.2fs)' % r.elapsed, r.dump())

    # ---------------------------------------------------------------- threads
    r = probe(MAIN, ['mx:multi.test', 'mx:multi.test+mx:implicit.test+host:mx.join.test'],
              '-j', '2')
    for i in range(2):
        ok(r.result('mx', 'multi.test', thread=i, nth=1) is not None and
           all(x.status == 'OK' for x in r.results if x.thread == i) and
           len([x for x in r.results if x.thread == i]) == 4 and r.step(0, thread=i) == 7 and
           r.step(1, thread=i) == 12,
           'thread %d: its own resolver and cache on its own loop' % i, r.dump())
except Exception as e:  # a bug in this script: say so in TAP, stop the servers
    diag(repr(e))
    bail('unexpected %s: %s' % (type(e).__name__, e))
finally:
    for p in PROCS:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()

# dnsmasq wrote its log on the way out: what did the servers see?
is_(log_count(main_log, r'query\[MX\] multi\.test '), 5,
    'dnsmasq saw one MX query for multi.test per resolver that asked it (3 runs, 2 threads)')
is_(log_count(main_log, r'query\[MX\] join\.test '), 1,
    'dnsmasq saw one MX query for the three concurrent join.test lookups')
is_(log_count(main_log, r'query\[MX\] many\.test '), 2,
    'many.test was asked twice: over UDP (truncated), then over TCP')
fake.halt.set()
fake.join(5)
cleanup()
t.done()
