#!/usr/bin/env python3
"""d0006-routing-options: routing and shaping options, each shown by its effect.

Inside a private network namespace: scripted receivers (sltest.Receiver)
on their own loopback addresses, aiosmtpd's LMTP server, and dnsmasq for
an MX that points at a prohibited address.
  - Suspend_Delivery = true holds mail (no connection); after the option
    is changed and SIGHUP, the held mail goes on the next attempt; mail
    held for a domain that becomes Blackhole = "true" fails with a DSN;
  - Blackhole = "internal": P lines, no DSN, no connection;
    Blackhole = "true": RCPT refused 550 5.7.1 at reception;
  - Prohibited_Hosts: an MX at a prohibited address gets no connection;
    the message fails (P line, bouncelog class 25);
  - Delivery_Method = "LMTP" with LMTP_Port: LHLO, one reply per recipient
    after the content (a 452 there is a T line and a retry);
  - Outbound_Throttle_Messages = "2/1", 6 messages: at most 3 arrive in
    any 1-second window and the last arrives 1.5 s or more after the first;
  - scopes: Domain "x" { }, Binding "b" { Domain "x" { } }, Binding "c" { }
    and Binding_Group "g" { Domain "x" { } } override Gateway and
    Max_Outbound_Connections in Momentum's fallback order.
"""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, like, status, diag  # noqa: E402

t.require_modules('aiosmtpd')
t.netns()

P = 2740
IP = {'susp': '127.0.0.2', 'bhq': '127.0.0.3', 'bhint': '127.0.0.4', 'src': '127.0.0.5',
      'thr': '127.0.0.6', 'sc_dom': '127.0.0.7', 'sc_bdom': '127.0.0.8', 'sc_b': '127.0.0.9',
      'sc_g': '127.0.0.10', 'prohib': '127.0.0.66', 'lmtp': '127.0.0.11'}
dns = t.DnsMasq(['--mx-host=prohib.test,mx.prohib.test,10',
                 '--host-record=mx.prohib.test,127.0.0.66']).start()
rcv = {k: t.Receiver(v, 2525, name=k).start() for k, v in IP.items() if k != 'lmtp'}
lmtp = t.AioReceiver(IP['lmtp'], 2424, lmtp=True).start()
DOMAINS = ['susp.test', 'bhq.test', 'bhint.test', 'bhtrue.test', 'src.test', 'thr.test',
           'scope.test', 'prohib.test', 'lmtp.test']


def conf(v2=False):
    return '''
Relay_Domains = ( %(domains)s )
Resolv_Conf = "%(resolv)s"
Remote_SMTP_Port = 2525
Retry_Interval = 1
Prohibited_Hosts = ( "127.0.0.64/30" )
Domain "src.test" { Gateway = "%(src)s:2525" }
Domain "susp.test" { Gateway = "%(susp)s:2525" Suspend_Delivery = %(suspend)s }
Domain "bhq.test" { Gateway = "%(bhq)s:2525" %(bhq_opt)s }
Domain "bhint.test" { Gateway = "%(bhint)s:2525" Blackhole = "internal" }
Domain "bhtrue.test" { Gateway = "%(bhint)s:2525" Blackhole = "true" }
Domain "thr.test" { Gateway = "%(thr)s:2525" Outbound_Throttle_Messages = "2/1" }
Domain "lmtp.test" { Gateway = "%(lmtp)s" Delivery_Method = "LMTP" LMTP_Port = 2424 }
Domain "scope.test" {
  Gateway = "%(sc_dom)s:2525"
  Max_Outbound_Connections = 1
  connection_allocation_aggressiveness = "high"
}
Binding "b" {
  Bind_Address = "127.0.0.30"
  Domain "scope.test" { Gateway = "%(sc_bdom)s:2525" Max_Outbound_Connections = 3 }
}
Binding "c" { Gateway = "%(sc_b)s:2525" }
Binding_Group "g" {
  Domain "scope.test" { Gateway = "%(sc_g)s:2525" }
  Binding "gb" { }
}
''' % dict(IP, domains=' '.join('"%s"' % x for x in DOMAINS), resolv=dns.resolv_conf(),
           suspend='false' if v2 else 'true',
           bhq_opt='Blackhole = "true"' if v2 else 'Suspend_Delivery = true') + \
        t.listener('127.0.0.1:%d' % P, t.ESC_ACL)


d = t.Sluiced(conf()).start()


def send(rcpts, subject, sender='from@src.test', headers=()):
    return t.inject(P, sender, rcpts, t.message(subject, headers=headers))


def dsn_r_lines(qid):
    return [f for f in d.r_lines() if f[3] == qid and f[11] == 'internal']


# ---------------------------------------------------------------- Suspend_Delivery
q_s = [send(['s%d@susp.test' % i], 'suspended %d' % i) for i in range(2)]
q_h = send(['h@bhq.test'], 'held, then blackholed')
ok(all(q_s) and q_h, 'three messages queued for suspended domains')
# Something else is delivered meanwhile; then two scheduler ticks pass (1 s each).
q_m = send(['m@src.test'], 'while suspended')
ok(d.wait_outcomes(1, 'D', qid=q_m), 'another domain is delivered meanwhile')
ok(t.wait_for(lambda: rcv['susp'].conns or rcv['bhq'].conns or
              d.outcomes(qid=q_s[0]) or d.outcomes(qid=q_h), timeout=2.5) is None,
   'Suspend_Delivery = true: no connection and no log line for 2.5 s (two scheduler ticks)')
is_(len(rcv['susp'].conns) + len(rcv['bhq'].conns), 0, 'the suspended domains\' servers saw '
    'no connection')
line = d.reload(conf(v2=True))
ok(line, 'SIGHUP: the configuration with Suspend_Delivery = false is loaded', d.paniclog()[-500:])
for q in q_s:
    got = d.wait_outcomes(1, qid=q)
    ok(len(got) == 1 and got[0].kind == 'D' and got[0].retries == 0 and got[0].ip == IP['susp'],
       'after the reload the held message is delivered (D, retries 0: it had not been tried)',
       *map(repr, got))
is_(rcv['susp'].wait_msgs(2), 2, 'the server took both held messages')
got = d.wait_outcomes(1, qid=q_h)
ok(len(got) == 1 and got[0].kind == 'P' and '5.7.1' in got[0].response,
   'held mail for a domain that became Blackhole = "true" fails (P, 5.7.1)', *map(repr, got))
ok(t.wait_for(lambda: dsn_r_lines(q_h)), '... with a DSN to its sender')
is_(len(rcv['bhq'].conns), 0, '... and no connection to that domain\'s server')

# ---------------------------------------------------------------- Blackhole
q_b = send(['b1@bhint.test', 'b2@bhint.test'], 'blackhole internal')
got = d.wait_outcomes(2, qid=q_b)
ok(len(got) == 2 and all(o.kind == 'P' and o.stage == 0 and o.ip == '' and
                         o.response.startswith('550 5.7.1') for o in got),
   'Blackhole = "internal": a P line per recipient (550 5.7.1, no server)', *map(repr, got))
rcv['src'].rcpt_reply = lambda a: ('550 5.1.1 no such user' if a.startswith('reject-marker')
                                   else '250 2.1.5 Ok')
q_after = send(['reject-marker@src.test'], 'marker after blackhole')
ok(t.wait_for(lambda: d.outcomes('P', qid=q_after)), '(a later message failed: marker)')
# The marker bounced to from@src.test, and its DSN is in the mainlog after any for q_b.
t.wait_for(lambda: dsn_r_lines(q_after))
ok(dsn_r_lines(q_after), '(the marker\'s DSN was made)')
is_(dsn_r_lines(q_b), [], 'Blackhole = "internal": no DSN')
is_(len(rcv['bhint'].conns), 0, 'Blackhole = "internal": no connection')
with t.Client(P) as c:
    c.ehlo()
    c.cmd('MAIL FROM:<from@src.test>')
    r = c.cmd('RCPT TO:<x@bhtrue.test>')
status(r, '550 5.7.1', 'Blackhole = "true": RCPT refused with 550 5.7.1 at reception')

# ---------------------------------------------------------------- Prohibited_Hosts
q_p = send(['p@prohib.test'], 'prohibited MX')
got = d.wait_outcomes(1, qid=q_p)
ok(len(got) == 1 and got[0].kind == 'P' and got[0].ip == '' and
   got[0].response.startswith('5'),
   'Prohibited_Hosts: the only MX is prohibited: a P line, no server', *map(repr, got))
like(got and got[0].response, r'Prohibited_Hosts', '... that says why')
is_(len(rcv['prohib'].conns), 0, 'Prohibited_Hosts: no connection to 127.0.0.66')
b = [x for x in d.bounces(q_p)]
ok(len(b) == 1 and b[0].code == 25,
   'Prohibited_Hosts: bouncelog class 25 (admin failure, proto/bounce.h), not a DNS failure', b)

# ---------------------------------------------------------------- LMTP
q_l = send(['one@lmtp.test', 'datafailonce@lmtp.test'], 'over lmtp')
got = d.wait_outcomes(3, qid=q_l)
kinds = sorted((o.kind, o.retries) for o in got)
ok(kinds == [('D', 0), ('D', 1), ('T', 0)],
   'LMTP: one recipient delivered at once, the other 452 after the content (T), then retried '
   '(D, retries 1)', *map(repr, got))
tl = [o for o in got if o.kind == 'T']
ok(tl and tl[0].stage == 9 and tl[0].response.startswith('452 4.2.2') and
   tl[0].ip == IP['lmtp'], 'LMTP: the T line is stage 9 (the reply after the content)', tl)
env = lmtp.envelopes
ok(len(env) == 2 and env[0]['rcpts'] == ['one@lmtp.test', 'datafailonce@lmtp.test'] and
   env[1]['rcpts'] == ['datafailonce@lmtp.test'],
   'LMTP: the server got both recipients, then only the one that failed', env)
ok(env and env[0]['helo'] == 'sluice.test', 'LMTP: sluice greeted with LHLO (aiosmtpd\'s LMTP '
   'refuses EHLO and HELO)', env and env[0]['helo'])

# ---------------------------------------------------------------- Outbound_Throttle_Messages
s = t.smtp(P)
s.ehlo('client.test')
q_t = []
for i in range(6):
    s.mail('from@src.test')
    s.rcpt('t%d@thr.test' % i)
    code, resp = s.data(t.message('throttled %d' % i))
    q_t.append(t.queue_id(resp))
s.quit()
got = [o for q in q_t for o in d.wait_outcomes(1, 'D', qid=q, timeout=30)]
is_(len(got), 6, 'Outbound_Throttle_Messages = "2/1": all 6 messages delivered')
ok(all(o.retries == 0 for o in got) and not d.outcomes('T', domain='thr.test'),
   '... without a T line (a throttle is not a failure)')
times = sorted(m.t for m in rcv['thr'].msgs)
most = max(sum(1 for x in times if a <= x < a + 1.0) for a in times) if times else None
diag('throttled arrivals (s after the first): %s' % ', '.join('%.2f' % (x - times[0])
                                                             for x in times))
ok(most is not None and most <= 3, 'at most 3 messages arrived in any 1-second window (%s)' % most)
ok(len(times) == 6 and times[-1] - times[0] >= 1.5,
   'the 6th arrived 1.5 s or more after the first (2 at once, then 2 a second)')

# ---------------------------------------------------------------- scopes
for k in ('sc_dom', 'sc_bdom'):
    rcv[k].hold = 0.4
ids = [send(['d%d@scope.test' % i], 'scope domain %d' % i) for i in range(4)]
ids_b = [send(['e%d@scope.test' % i], 'scope binding domain %d' % i, headers=['X-Binding: b'])
         for i in range(6)]
q_c = send(['f@scope.test'], 'scope binding', headers=['X-Binding: c'])
q_g = send(['g@scope.test'], 'scope group domain', headers=['X-Binding: gb'])
for q in ids + ids_b + [q_c, q_g]:
    d.wait_outcomes(1, 'D', qid=q)
ok(all(d.outcomes('D', qid=q) and d.outcomes('D', qid=q)[0].ip == IP['sc_dom'] for q in ids),
   'Domain "scope.test" { Gateway }: the default binding\'s mail goes there')
is_((rcv['sc_dom'].max_concurrent, sum(c.msgs for c in rcv['sc_dom'].conns)), (1, 4),
    'Domain "scope.test" { Max_Outbound_Connections = 1 }: one connection at a time, 4 messages')
ok(all(d.outcomes('D', qid=q) and d.outcomes('D', qid=q)[0].ip == IP['sc_bdom'] and
       d.outcomes('D', qid=q)[0].binding == 'b' for q in ids_b),
   'Binding "b" { Domain "scope.test" { Gateway } } wins for binding b')
r = rcv['sc_bdom']
ok(1 < r.max_concurrent <= 3 and sum(c.msgs for c in r.conns) == 6 and
   all(c.peer[0] == '127.0.0.30' for c in r.conns),
   'binding::domain Max_Outbound_Connections = 3: more than one connection at once, never '
   'more than 3 (%d), from Bind_Address 127.0.0.30' % r.max_concurrent, r.conns)
o = d.outcomes('D', qid=q_c)
ok(o and o[0].ip == IP['sc_b'], 'Binding "c" { Gateway } wins over the top-level '
   'Domain "scope.test" (binding > domain)', o)
o = d.outcomes('D', qid=q_g)
ok(o and o[0].ip == IP['sc_g'] and o[0].group == 'g',
   'Binding_Group "g" { Domain "scope.test" { Gateway } } applies to its binding gb '
   '(binding_group::domain > domain)', o)
d.stop()
t.done()
