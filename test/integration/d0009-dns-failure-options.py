#!/usr/bin/env python3
"""d0009-dns-failure-options: delivery options for unreachable hosts, DNS
failures, per-command timeouts and DNS expiry, each shown by its effect.

Inside a private network namespace, dnsmasq on 127.0.0.1:5353 serves the
.test domains and forwards fake.test to a scripted DNS server on
127.0.0.3:5353 (this file), which answers SERVFAIL to MX queries, answers
some A queries half a second late, and records every query.  Scripted SMTP
receivers (sltest.Receiver) listen on their own loopback addresses, port
2525; connection attempts to addresses where nothing answers are counted
with a packet socket (SYNs, and their source ports).  Two sluiced daemons:
the main one (dns_expire_interval = 1) and one with min_dns_ttl = 300.
  - MX_Failures_To_Delay = 2 with two dead MX hosts of equal preference
    (Host_Failure_Retry = 0, so only this option delays): 2 connection
    attempts per host, then a T line "no adequate servers (all failed)"
    and no attempt until the retry; MX_Failures_To_Delay = 5: 5 per host.
    With preferences 10 and 20, the preference-20 host must fail too
    before the domain is delayed;
  - connect_timeout_to_delay = 3 with Connect_Timeout = 2 (MX_Failures_To_Delay
    = 0, Host_Failure_Retry = 0): a listener whose backlog is full (SYNs
    dropped: a real connect timeout) and a server that never greets both
    get 3 attempts, then the T line; with 60 sluice goes on trying and
    delivers once the server greets, without a T line;
  - mx_failures_fallback_to_a = 1: after the MX lookup failed (SERVFAIL)
    once, the domain's A record is used and the mail delivered there; with
    100 the A record is never asked for; a dead exchanger is no failed
    lookup: the A record of its domain is not used;
  - fully_resolve_before_smtp (domains not in Relay_Domains; the
    preference-10 host's address comes 0.5 s late): true waits and sends to
    the preference-10 host; false starts at once with the preference-20
    host, whose address came first;
  - MailFrom_Timeout, Rcptto_Timeout, Body_Timeout = 2 (the others at their
    defaults of 300 s or more): a receiver stalling at that stage on the
    first connection gives a T line with that stage (2, 4, 9), and the
    retry is delivered on a second connection;
  - an MX whose exchanger's A record has a TTL of 1 s: the next message
    after it expired asks dnsmasq again; dns_expire_interval = 1: a domain
    whose message waits 30 s for its retry (the server said 451) is
    resolved again once its answer expired, before that retry;
    min_dns_ttl = 300 (second daemon) keeps the answer: one MX and one A
    query for two messages.
Counts, orderings, which server got the mail and log lines are asserted,
never an upper bound on time.
"""
import os
import socket
import struct
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, diag  # noqa: E402

t.netns()

P, P2 = 2790, 2791
PORT = 2525
FAKE_DNS = ('127.0.0.3', 5353)
ALL_FAILED = '451 4.4.1 no adequate servers (all failed)'

# ------------------------------------------------------------------ the scripted DNS server

A, MX, AAAA = 1, 15, 28
SLOW = 0.5   # seconds before the late answers go out
# (name, qtype) -> ('servfail' | records, delay); records are (type, ttl, rdata)
FAKE = {
    ('fba.fake.test', MX): ('servfail', 0),
    ('fba.fake.test', A): ([(A, 300, socket.inet_aton('127.0.0.30'))], 0),
    ('fba.fake.test', AAAA): ([], 0),
    ('fbb.fake.test', MX): ('servfail', 0),
    ('fbb.fake.test', A): ([(A, 300, socket.inet_aton('127.0.0.31'))], 0),
    ('fbb.fake.test', AAAA): ([], 0),
    ('h10f.fake.test', A): ([(A, 300, socket.inet_aton('127.0.0.40'))], SLOW),
    ('h10f.fake.test', AAAA): ([], SLOW),
    ('h10t.fake.test', A): ([(A, 300, socket.inet_aton('127.0.0.42'))], SLOW),
    ('h10t.fake.test', AAAA): ([], SLOW),
}


class FakeDNS(threading.Thread):
    """A UDP DNS server answering from FAKE (REFUSED for anything else),
    some answers late; .log holds (time.monotonic(), name, qtype) of every
    query and .sent the time each late answer went out."""

    def __init__(self, addr):
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(addr)
        self.sock.settimeout(0.1)
        self.halt = threading.Event()
        self.log = []
        self.sent = {}   # name -> time the last late answer was sent
        t._peers.append(self)

    def run(self):
        while not self.halt.is_set():
            try:
                q, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                break
            self.answer(q, peer)

    def answer(self, q, peer):
        if len(q) < 17:
            return
        pos, labels = 12, []
        while pos < len(q) and q[pos] != 0:
            labels.append(q[pos + 1:pos + 1 + q[pos]])
            pos += 1 + q[pos]
        pos += 1
        if pos + 4 > len(q):
            return
        qtype = struct.unpack('>H', q[pos:pos + 2])[0]
        name = b'.'.join(labels).decode('latin-1').lower()
        self.log.append((time.monotonic(), name, qtype))
        rule, delay = FAKE.get((name, qtype), (None, 0))
        rcode, records = 0, []
        if rule == 'servfail':
            rcode = 2
        elif rule is None:
            rcode = 5
        else:
            records = rule
        out = struct.pack('>HHHHHH', struct.unpack('>H', q[:2])[0], 0x8180 | rcode, 1,
                          len(records), 0, 0) + q[12:pos + 4]
        for rtype, ttl, rdata in records:
            out += b'\xc0\x0c' + struct.pack('>HHIH', rtype, 1, ttl, len(rdata)) + rdata

        def send():
            self.sent[name] = time.monotonic()
            try:
                self.sock.sendto(out, peer)
            except OSError:
                pass
        if delay:
            threading.Timer(delay, send).start()
        else:
            send()

    def queries(self, name, qtype):
        return [x[0] for x in self.log if x[1] == name and x[2] == qtype]

    def stop(self):
        self.halt.set()
        self.join(5)


class SynPorts(t.SynCounter):
    """sltest.SynCounter that also records each SYN's source port: a SYN the
    kernel sends again for the same connection has the same port, so
    len(set(.ports)) counts connection attempts where SYNs go unanswered."""

    def __init__(self, ip, port):
        self.ports = []
        super().__init__(ip, port)

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
                self.ports.append(int.from_bytes(tcp[0:2], 'big'))
                self.times.append(time.monotonic())

    def attempts(self):
        return len(set(self.ports))


# ------------------------------------------------------------------ peers

fake = FakeDNS(FAKE_DNS)
fake.start()
dns = t.DnsMasq([
    '--server=/fake.test/%s#%d' % FAKE_DNS,
    # MX_Failures_To_Delay: nothing listens at any of these
    '--mx-host=mxa.test,a1.mxa.test,10', '--mx-host=mxa.test,a2.mxa.test,10',
    '--host-record=a1.mxa.test,127.0.0.10', '--host-record=a2.mxa.test,127.0.0.11',
    '--mx-host=mxb.test,b1.mxb.test,10', '--mx-host=mxb.test,b2.mxb.test,10',
    '--host-record=b1.mxb.test,127.0.0.12', '--host-record=b2.mxb.test,127.0.0.13',
    '--mx-host=mxp.test,p1.mxp.test,10', '--mx-host=mxp.test,p2.mxp.test,20',
    '--host-record=p1.mxp.test,127.0.0.14', '--host-record=p2.mxp.test,127.0.0.15',
    # fully_resolve_before_smtp: the preference-10 host's address comes late
    '--mx-host=frf.test,h10f.fake.test,10', '--mx-host=frf.test,h20.frf.test,20',
    '--host-record=h20.frf.test,127.0.0.41',
    '--mx-host=frt.test,h10t.fake.test,10', '--mx-host=frt.test,h20.frt.test,20',
    '--host-record=h20.frt.test,127.0.0.43',
    # mx_failures_fallback_to_a counts failed MX lookups, not dead MX hosts
    '--mx-host=fbc.test,dead.fbc.test,10', '--host-record=dead.fbc.test,127.0.0.32',
    '--host-record=fbc.test,127.0.0.33',
    # the TTL of 1 s (dnsmasq's MX TTL is 300; the exchanger's A record decides)
    '--mx-host=ttl.test,mx.ttl.test,10', '--host-record=mx.ttl.test,127.0.0.60,1',
    '--mx-host=ttl2.test,mx.ttl2.test,10', '--host-record=mx.ttl2.test,127.0.0.61,1',
    '--mx-host=exp.test,mx.exp.test,10', '--host-record=mx.exp.test,127.0.0.62,1',
]).start()
resolv = dns.resolv_conf()

RCV = {'ctg': '127.0.0.21', 'ctl': '127.0.0.22', 'fba': '127.0.0.30', 'fbb': '127.0.0.31',
       'fbc': '127.0.0.33',
       'f10': '127.0.0.40', 'f20': '127.0.0.41', 't10': '127.0.0.42', 't20': '127.0.0.43',
       'mail': '127.0.0.50', 'rcpt': '127.0.0.51', 'body': '127.0.0.52',
       'ttl': '127.0.0.60', 'ttl2': '127.0.0.61', 'exp': '127.0.0.62'}
rcv = {k: t.Receiver(ip, PORT, name=k) for k, ip in RCV.items()}
rcv['ctg'].greeting = None
rcv['ctl'].greeting = None
rcv['mail'].mail_reply = lambda c, sender: 'HANG' if c.idx == 0 else '250 2.1.0 Ok'
rcpt_seen = []


def rcpt_once_hang(addr):
    rcpt_seen.append(addr)
    return 'HANG' if len(rcpt_seen) == 1 else '250 2.1.5 Ok'


rcv['rcpt'].rcpt_reply = rcpt_once_hang
rcv['body'].data_reply = lambda m: 'HANG' if m.conn == 0 else '250 2.0.0 Ok: queued'
rcv['exp'].rcpt_reply = lambda a: '451 4.3.0 <%s>: try again later' % a
for r in rcv.values():
    r.start()

# A real connect timeout: a listener with a full backlog drops further SYNs.
backlog = socket.socket()
backlog.bind(('127.0.0.20', PORT))
backlog.listen(0)
filler = socket.create_connection(('127.0.0.20', PORT), timeout=t.DEADLINE)
syn = {ip: SynPorts(ip, PORT) for ip in ['127.0.0.%d' % n for n in range(10, 16)] +
       ['127.0.0.20']}

NOTMO = 'Host_Failure_Retry = 0 MX_Failures_To_Delay = 0 Connect_Timeout = 2'
d = t.Sluiced('''
Relay_Hosts = ( "127.0.0.1/32" )
Resolv_Conf = "%(resolv)s"
Remote_SMTP_Port = %(port)d
Retry_Interval = 1
dns_expire_interval = 1
min_dns_ttl = 0
Domain "mxa.test" { MX_Failures_To_Delay = 2 Host_Failure_Retry = 0 Retry_Interval = 2 }
Domain "mxb.test" { MX_Failures_To_Delay = 5 Host_Failure_Retry = 0 Retry_Interval = 2 }
Domain "mxp.test" { MX_Failures_To_Delay = 2 Host_Failure_Retry = 0 Retry_Interval = 30 }
Domain "ctc.test" { Gateway = "127.0.0.20:%(port)d" %(notmo)s
                    connect_timeout_to_delay = 3 Retry_Interval = 30 }
Domain "ctg.test" { Gateway = "%(ctg)s:%(port)d" %(notmo)s
                    connect_timeout_to_delay = 3 Retry_Interval = 30 }
Domain "ctl.test" { Gateway = "%(ctl)s:%(port)d" %(notmo)s connect_timeout_to_delay = 60 }
Domain "fba.fake.test" { mx_failures_fallback_to_a = 1 }
Domain "fbb.fake.test" { mx_failures_fallback_to_a = 100 }
Domain "fbc.test" { mx_failures_fallback_to_a = 1 Host_Failure_Retry = 1 }
Domain "frf.test" { fully_resolve_before_smtp = false }
Domain "frt.test" { fully_resolve_before_smtp = true }
Domain "mail.test" { Gateway = "%(mail)s:%(port)d" MailFrom_Timeout = 2 }
Domain "rcpt.test" { Gateway = "%(rcpt)s:%(port)d" Rcptto_Timeout = 2 }
Domain "body.test" { Gateway = "%(body)s:%(port)d" Body_Timeout = 2 }
Domain "exp.test" { Retry_Interval = 30 }
''' % dict(RCV, resolv=resolv, port=PORT, notmo=NOTMO) +
    t.listener('127.0.0.1:%d' % P, t.ESC_ACL)).start()
d2 = t.Sluiced('''
Relay_Hosts = ( "127.0.0.1/32" )
Resolv_Conf = "%s"
Remote_SMTP_Port = %d
Retry_Interval = 1
min_dns_ttl = 300
''' % (resolv, PORT) + t.listener('127.0.0.1:%d' % P2, t.ESC_ACL), name='minttl').start()

q = {}
for dom in ['mxa', 'mxb', 'mxp', 'ctc', 'ctg', 'ctl', 'fba.fake', 'fbb.fake', 'fbc', 'frf',
            'frt', 'mail', 'rcpt', 'body', 'ttl', 'exp']:
    q[dom] = t.inject(P, 'from@src.test', ['to@%s.test' % dom], t.message(dom))
q['ttl2'] = t.inject(P2, 'from@src.test', ['to@ttl2.test'], t.message('ttl2'))
ok(all(q.values()), 'every message was queued (%d)' % len(q), q)


def lines(o):
    return [repr(x) for x in o]


# ---------------------------------------------------------------- MX_Failures_To_Delay
def check_mx_delay(dom, n, ips):
    """n failures per host, a T line, nothing until the retry, n per host again."""
    got = d.wait_outcomes(2, 'T', qid=q[dom])
    # the packet socket's thread may be a little behind the mainlog
    t.wait_for(lambda: sum(syn[ip].count() for ip in ips) >= 4 * n, timeout=3)
    counts = [syn[ip].count() for ip in ips]
    times = sorted(x for ip in ips for x in syn[ip].times)
    diag('%s: T lines %s; SYNs per host %s' % (dom, lines(got), counts))
    ok(len(got) >= 2 and all(o.response == ALL_FAILED and o.stage == 0 and o.ip == ''
                             for o in got[:2]) and [o.retries for o in got[:2]] == [0, 1],
       '%s (MX_Failures_To_Delay = %d): T lines "%s", retries 0 then 1' % (dom, n, ALL_FAILED),
       *lines(got))
    is_(counts, [2 * n] * len(ips), '%s: %d connection attempts per MX host in each of the '
        'two attempts, then the domain is delayed' % (dom, n))
    k = n * len(ips)
    ok(len(times) > k and times[k] - times[k - 1] >= 1.5,
       '%s: no connection attempt between the delay and the retry (Retry_Interval 2 s)' % dom,
       ['%.2f' % (x - times[0]) for x in times])


check_mx_delay('mxa', 2, ['127.0.0.10', '127.0.0.11'])
check_mx_delay('mxb', 5, ['127.0.0.12', '127.0.0.13'])
got = d.wait_outcomes(1, 'T', qid=q['mxp'])
t.wait_for(lambda: syn['127.0.0.14'].count() + syn['127.0.0.15'].count() >= 4, timeout=3)
p10, p20 = syn['127.0.0.14'].count(), syn['127.0.0.15'].count()
diag('mxp.test: T lines %s; SYNs to preference 10: %d, to preference 20: %d' % (
    lines(got), p10, p20))
ok(len(got) == 1 and got[0].response == ALL_FAILED,
   'mxp.test (MX 10 and 20 dead, MX_Failures_To_Delay = 2): the domain is delayed',
   *lines(got))
ok(p20 >= 2, 'mxp.test: the preference-20 host had its 2 failures too before the delay '
   '("every MX host of a domain must have" them)', 'preference 10: %d, preference 20: %d' % (
       p10, p20))

# ---------------------------------------------------------------- connect_timeout_to_delay
got_c = d.wait_outcomes(1, 'T', qid=q['ctc'])
got_g = d.wait_outcomes(1, 'T', qid=q['ctg'])
att_c = syn['127.0.0.20'].attempts()
conns_g = len(rcv['ctg'].conns)
diag('ctc.test: %d attempts (%d SYNs); ctg.test: %d connections' % (
    att_c, syn['127.0.0.20'].count(), conns_g))
ok(len(got_c) == 1 and got_c[0].response == ALL_FAILED and got_c[0].secs >= 4,
   'connect_timeout_to_delay = 3, SYNs dropped (backlog full): a T line "%s"' % ALL_FAILED,
   *lines(got_c))
is_(att_c, 3, '... after 3 connection attempts of Connect_Timeout = 2 (failures at 2, 4, '
    '6 s: 2 s, then 4 s after the first)')
ok(len(got_g) == 1 and got_g[0].response == ALL_FAILED and got_g[0].secs >= 4,
   'connect_timeout_to_delay = 3, a server that never greets (counted as a connect '
   'timeout): the same T line', *lines(got_g))
is_(conns_g, 3, '... after 3 connections')
ok(t.wait_for(lambda: len(rcv['ctl'].conns) >= 4),
   'connect_timeout_to_delay = 60: a server that never greets gets connection after '
   'connection', rcv['ctl'].conns)
is_(d.outcomes(qid=q['ctl']), [], '... with no T line (3 timeouts, the last 4 s after the '
    'first)')
rcv['ctl'].greeting = '220 ctl ESMTP test receiver'
got = d.wait_outcomes(1, 'D', qid=q['ctl'])
ok(len(got) == 1 and got[0].retries == 0 and got[0].ip == RCV['ctl'],
   '... and once it greets the message is delivered in the same attempt (retries 0)',
   *lines(d.outcomes(qid=q['ctl'])))
time.sleep(0.5)
is_((syn['127.0.0.20'].attempts(), len(rcv['ctg'].conns)),
    (3, 3), 'the delayed domains got no further connection attempt (Retry_Interval 30)')

# ---------------------------------------------------------------- mx_failures_fallback_to_a
got = d.wait_outcomes(1, 'D', qid=q['fba.fake'])
alla = d.outcomes(qid=q['fba.fake'])
mx_a, a_a = fake.queries('fba.fake.test', MX), fake.queries('fba.fake.test', A)
diag('fba.fake.test: %s; MX queries %d, A queries %d' % (lines(alla), len(mx_a), len(a_a)))
ok(len(got) == 1 and got[0].ip == RCV['fba'] and len(rcv['fba'].msgs) == 1,
   'mx_failures_fallback_to_a = 1: after the MX lookup failed, the message goes to the '
   'domain\'s A record', *lines(alla))
ok(alla and all(o.kind == 'T' and o.response.startswith('451 4.4.3') for o in alla[:-1]) and
   len(alla) >= 2 and got and got[0].retries == len(alla) - 1,
   '... after T lines "451 4.4.3" for the failed MX lookup', *lines(alla))
ok(mx_a and a_a and a_a[0] > mx_a[0], '... the A query came after the failed MX query',
   (mx_a, a_a))
ok(t.wait_for(lambda: len(fake.queries('fbb.fake.test', MX)) >= 2),
   'mx_failures_fallback_to_a = 100: the MX lookup is tried again after it failed',
   fake.log)
is_(len(fake.queries('fbb.fake.test', A)), 0, '... and the A record is not asked for')
ok(not d.outcomes('D', qid=q['fbb.fake']) and not rcv['fbb'].conns and
   all(o.response.startswith('451 4.4.3') for o in d.outcomes(qid=q['fbb.fake'])),
   '... nothing delivered to its address, only T lines', *lines(d.outcomes(qid=q['fbb.fake'])))

got = d.wait_outcomes(3, 'T', qid=q['fbc'])
ok(len(got) >= 3 and not d.outcomes('D', qid=q['fbc']) and not rcv['fbc'].conns,
   'mx_failures_fallback_to_a = 1 with an MX lookup that works but a dead exchanger: the '
   'domain\'s A record (a live server) is not used', *lines(d.outcomes(qid=q['fbc'])))

# ---------------------------------------------------------------- fully_resolve_before_smtp
got = d.wait_outcomes(1, 'D', qid=q['frt'])
first = rcv['t10'].conns[0].opened if rcv['t10'].conns else None
ok(len(got) == 1 and got[0].ip == RCV['t10'] and got[0].retries == 0,
   'fully_resolve_before_smtp = true: the message goes to the preference-10 host, whose '
   'address came %.1f s late' % SLOW, *lines(d.outcomes(qid=q['frt'])))
is_(len(rcv['t20'].conns), 0, '... the preference-20 host (resolved at once) got no connection')
ok(first is not None and 'h10t.fake.test' in fake.sent and first > fake.sent['h10t.fake.test'],
   '... the first connection came after the late address was sent', first, fake.sent)
got = d.wait_outcomes(1, 'D', qid=q['frf'])
first = rcv['f20'].conns[0].opened if rcv['f20'].conns else None
ok(len(got) == 1 and got[0].ip == RCV['f20'] and got[0].retries == 0,
   'fully_resolve_before_smtp = false: delivery starts with the preference-20 host, resolved '
   'at once, rather than wait %.1f s for the preference-10 one' % SLOW,
   *lines(d.outcomes(qid=q['frf'])))
ok(first is not None and ('h10f.fake.test' not in fake.sent or
                          first < fake.sent['h10f.fake.test']),
   '... its connection opened before the late address was sent', first, fake.sent)
is_(len(rcv['f10'].conns), 0, '... and the preference-10 host got no connection for it')

# ---------------------------------------------------------------- per-command timeouts
for dom, opt, stage in (('mail', 'MailFrom_Timeout', 2), ('rcpt', 'Rcptto_Timeout', 4),
                        ('body', 'Body_Timeout', 9)):
    got = d.wait_outcomes(2, qid=q[dom])
    r = rcv[dom]
    ok([o.kind for o in got] == ['T', 'D'] and got[0].stage == stage and
       got[0].response.startswith('451 4.4.2') and 'timeout' in got[0].response and
       got[0].ip == RCV[dom] and got[0].secs >= 1.9 and got[1].retries == 1 and
       got[1].ip == RCV[dom],
       '%s = 2, the server stalls at stage %d: a T line (stage %d, 451 4.4.2 timeout), then '
       'the retry is delivered (retries 1)' % (opt, stage, stage), *lines(got))
    ok(len(r.conns) == 2 and r.conns[0].msgs == 0 and r.conns[1].msgs == 1 and
       len(r.msgs) == 1 and r.conns[0].closed is not None and not r.conns[0].closed_by_us,
       '... sluice closed the stalled connection; the message arrived once, on the second',
       r.conns)

# ---------------------------------------------------------------- DNS expiry, Min_DNS_TTL
MXQ = lambda dom: r'query\[MX\] %s ' % dom.replace('.', r'\.')  # noqa: E731
AQ = lambda host: r'query\[A\] %s ' % host.replace('.', r'\.')  # noqa: E731
for qq, dd in ((q['ttl'], d), (q['ttl2'], d2)):
    got = dd.wait_outcomes(1, 'D', qid=qq)
    ok(len(got) == 1, '%s: the first message is delivered' % dd.name, *lines(got))
first_d = time.monotonic()
got = d.wait_outcomes(1, 'T', qid=q['exp'])
ok(len(got) == 1 and got[0].response.startswith('451 4.3.0') and got[0].ip == RCV['exp'],
   'exp.test: a T line (the server said 451); the retry is 30 s away', *lines(got))
ok(t.wait_for(lambda: dns.queries(MXQ('exp.test')) >= 2, timeout=8),
   'dns_expire_interval = 1: exp.test, whose answer expired (TTL 1 s), is resolved again '
   'while its message waits', 'MX queries for exp.test: %d' % dns.queries(MXQ('exp.test')))
is_((len(d.outcomes(qid=q['exp'])), len(rcv['exp'].conns)), (1, 1),
    '... not by a delivery attempt: still one T line and one connection')
time.sleep(max(0.0, 1.5 - (time.monotonic() - first_d)))
n2 = dns.queries(MXQ('ttl.test'))
q['ttl-b'] = t.inject(P, 'from@src.test', ['to2@ttl.test'], t.message('ttl b'))
q['ttl2-b'] = t.inject(P2, 'from@src.test', ['to2@ttl2.test'], t.message('ttl2 b'))
got = d.wait_outcomes(1, 'D', qid=q['ttl-b'])
ok(len(got) == 1 and got[0].ip == RCV['ttl'], 'ttl.test: the second message is delivered',
   *lines(got))
ok(dns.queries(MXQ('ttl.test')) >= 2,
   '... after ttl.test was looked up again (the MX answer expired after 1 s)',
   'MX queries: %d before the second message, %d after' % (n2, dns.queries(MXQ('ttl.test'))))
got = d2.wait_outcomes(1, 'D', qid=q['ttl2-b'])
ok(len(got) == 1 and got[0].ip == RCV['ttl2'], 'min_dns_ttl = 300: the second message to '
   'ttl2.test is delivered', *lines(got))
is_((dns.queries(MXQ('ttl2.test')), dns.queries(AQ('mx.ttl2.test'))), (1, 1),
    '... from the kept answer: one MX and one A query for two messages 1.5 s apart')

is_(d.outcomes('P') + d2.outcomes('P'), [], 'no P line in the whole run')
filler.close()
backlog.close()
d.stop()
d2.stop()
t.done()
