#!/usr/bin/env python3
"""d0002-relay: where sluice delivers, against real peers on loopback.

Inside a private network namespace, dnsmasq on 127.0.0.1:5353 serves MX
records for the .test domains and Postfix's smtp-sink instances on
127.0.0.2..7 port 2525 (and 127.0.0.1:2526) dump every transaction they
take.  Messages injected over SMTP are relayed:
  - Gateway (Domain "gw.test" { Gateway = "127.0.0.1:2526" }),
  - Routes with preferences (the lowest gets everything; equal preferences
    spread over both), and a dead first route before "__mx__",
  - the domain's MX records: the lower preference gets everything while it
    works; when nothing listens there the next one gets it; equal
    preferences spread; no MX but an A record (implicit MX),
and the mainlog has one D line per recipient with the right domain, size,
binding, retries=0 and the sink's address.  A message for two domains
becomes two deliveries; ten recipients of one domain go in one transaction.
"""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, diag  # noqa: E402

t.netns()

P = 2700                 # sluice's listener
SINK_PORT = 2525         # every MX and route target (Remote_SMTP_Port)
GW_PORT = 2526           # the gateway, on 127.0.0.1

dns = t.DnsMasq([
    '--mx-host=mx.test,mx1.mx.test,10', '--mx-host=mx.test,mx2.mx.test,20',
    '--host-record=mx1.mx.test,127.0.0.2', '--host-record=mx2.mx.test,127.0.0.3',
    '--mx-host=eq.test,a.eq.test,10', '--mx-host=eq.test,b.eq.test,10',
    '--host-record=a.eq.test,127.0.0.4', '--host-record=b.eq.test,127.0.0.5',
    '--mx-host=fo.test,dead.fo.test,10', '--mx-host=fo.test,live.fo.test,20',
    '--host-record=dead.fo.test,127.0.0.6', '--host-record=live.fo.test,127.0.0.7',
    '--mx-host=rtmx.test,mx2.mx.test,10',
    '--host-record=implicit.test,127.0.0.5',
]).start()
sinks = {ip: t.SmtpSink(ip, SINK_PORT).start() for ip in
         ('127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5', '127.0.0.7')}
gw = t.SmtpSink('127.0.0.1', GW_PORT).start()

DOMAINS = ('mx.test', 'eq.test', 'fo.test', 'gw.test', 'rt.test', 'rteq.test', 'rtmx.test',
           'implicit.test', 'src.test')
d = t.Sluiced('''
Relay_Domains = ( %(domains)s )
Resolv_Conf = "%(resolv)s"
Remote_SMTP_Port = %(port)d
Domain "gw.test" { Gateway = "127.0.0.1:%(gw)d" }
Domain "rt.test" { Routes = ( "smtp://127.0.0.3?pref=20" "smtp://127.0.0.2?pref=10" ) }
Domain "rteq.test" {
  Routes = ( "smtp://127.0.0.4?pref=5" "smtp://127.0.0.5?pref=5" )
  Max_Deliveries_Per_Connection = 1
}
Domain "rtmx.test" { Routes = ( "smtp://127.0.0.6?pref=0" "__mx__" ) }
Domain "eq.test" { Max_Deliveries_Per_Connection = 1 }
''' % dict(domains=' '.join('"%s"' % x for x in DOMAINS), resolv=dns.resolv_conf(),
           port=SINK_PORT, gw=GW_PORT) + t.listener('127.0.0.1:%d' % P, t.ESC_ACL))
d.start()

sent = {}   # qid -> (rcpts, message-id)


def send(rcpts, subject, sender='from@src.test'):
    data = t.message(subject)
    qid = t.inject(P, sender, rcpts, data)
    if qid:
        sent[qid] = (list(rcpts), data.split(b'Message-ID: ')[1].split(b'\r\n')[0].decode())
    return qid


def r_size(qid):
    rl = d.r_lines(qid)
    return int(rl[0][10]) if rl else None


def at_sink(sink, domain):
    """Transactions a sink took for recipients of `domain`."""
    return [m for m in sink.messages() if any(r.endswith('@%s>' % domain) for r in m.rcpts)]


def check_d_lines(qid, domain, n, ip, what):
    """Exactly n D lines for qid to domain, each with the documented fields."""
    got = d.wait_outcomes(n, 'D', qid=qid, domain=domain)
    size = r_size(qid)
    ok(len(got) == n and all(o.size == size and o.group == 'default' and o.binding == 'default'
                             and o.retries == 0 and o.ip == ip for o in got),
       '%s: %d D line(s) for %s: size %s, binding default, retries 0, ip %s' % (
           what, n, domain, size, ip), *map(repr, got))
    return got


# ---------------------------------------------------------------- Gateway
q_gw = [send(['g%d@gw.test' % i], 'gateway %d' % i) for i in range(2)]
ok(all(q_gw), 'two messages for gw.test queued', q_gw)
for q in q_gw:
    check_d_lines(q, 'gw.test', 1, '127.0.0.1', 'Gateway')
is_(len(at_sink(gw, 'gw.test')), 2, 'Gateway: the gateway sink took both messages')
ok(all(len(at_sink(s, 'gw.test')) == 0 for s in sinks.values()),
   'Gateway: no other sink saw gw.test mail')

# ---------------------------------------------------------------- MX preference
q_mx = [send(['m%d@mx.test' % i], 'mx pref %d' % i) for i in range(6)]
ok(all(q_mx), 'six messages for mx.test queued')
for q in q_mx:
    check_d_lines(q, 'mx.test', 1, '127.0.0.2', 'MX preference')
is_(len(at_sink(sinks['127.0.0.2'], 'mx.test')), 6,
    'MX preference: the preference-10 exchanger (127.0.0.2) took all 6')
is_(len(at_sink(sinks['127.0.0.3'], 'mx.test')), 0,
    'MX preference: the preference-20 exchanger (127.0.0.3) took none while the first works')

# ---------------------------------------------------------------- MX failover
q_fo = [send(['f%d@fo.test' % i], 'mx failover %d' % i) for i in range(3)]
ok(all(q_fo), 'three messages for fo.test queued (its preference-10 MX has nothing listening)')
for q in q_fo:
    check_d_lines(q, 'fo.test', 1, '127.0.0.7', 'MX failover')
is_(len(at_sink(sinks['127.0.0.7'], 'fo.test')), 3,
    'MX failover: the preference-20 exchanger took all 3')
is_(d.outcomes('TP', domain='fo.test'), [],
    'MX failover: a refused connection to the first MX costs the messages no T line')

# ---------------------------------------------------------------- MX equal preferences
q_eq = [send(['e%d@eq.test' % i], 'mx equal %d' % i) for i in range(8)]
ok(all(q_eq), 'eight messages for eq.test queued (two MX of preference 10, one message per '
   'connection)')
got = d.wait_outcomes(8, 'D', domain='eq.test')
is_(len(got), 8, 'MX equal preferences: 8 D lines')
split = (len(at_sink(sinks['127.0.0.4'], 'eq.test')), len(at_sink(sinks['127.0.0.5'], 'eq.test')))
diag('eq.test split over 127.0.0.4 / 127.0.0.5: %d / %d' % split)
ok(sum(split) == 8 and min(split) >= 3,
   'MX equal preferences: the connections are spread over both exchangers (%d / %d)' % split)
ok(sorted(o.ip for o in got) == sorted(['127.0.0.4'] * split[0] + ['127.0.0.5'] * split[1]),
   'MX equal preferences: each D line names the sink that took the message')

# ---------------------------------------------------------------- implicit MX
q_im = send(['i@implicit.test'], 'implicit mx')
check_d_lines(q_im, 'implicit.test', 1, '127.0.0.5', 'implicit MX (an A record, no MX)')

# ---------------------------------------------------------------- Routes
q_rt = [send(['r%d@rt.test' % i], 'routes pref %d' % i) for i in range(4)]
ok(all(q_rt), 'four messages for rt.test queued')
for q in q_rt:
    check_d_lines(q, 'rt.test', 1, '127.0.0.2', 'Routes by preference')
is_((len(at_sink(sinks['127.0.0.2'], 'rt.test')), len(at_sink(sinks['127.0.0.3'], 'rt.test'))),
    (4, 0), 'Routes: pref=10 (listed second) takes all 4, pref=20 none')

q_rq = [send(['q%d@rteq.test' % i], 'routes equal %d' % i) for i in range(8)]
ok(all(q_rq), 'eight messages for rteq.test queued')
got = d.wait_outcomes(8, 'D', domain='rteq.test')
is_(len(got), 8, 'Routes with equal preferences: 8 D lines')
split = (len(at_sink(sinks['127.0.0.4'], 'rteq.test')),
         len(at_sink(sinks['127.0.0.5'], 'rteq.test')))
diag('rteq.test split over 127.0.0.4 / 127.0.0.5: %d / %d' % split)
ok(sum(split) == 8 and min(split) >= 3,
   'Routes with equal preferences: spread over both (%d / %d)' % split)

q_rm = [send(['x%d@rtmx.test' % i], 'routes mx %d' % i) for i in range(2)]
for q in q_rm:
    check_d_lines(q, 'rtmx.test', 1, '127.0.0.3', 'Routes: a dead pref=0 route, then __mx__')
is_(len(at_sink(sinks['127.0.0.3'], 'rtmx.test')), 2,
    'Routes "__mx__": the domain\'s own MX (127.0.0.3) took both')

# ---------------------------------------------------------------- two domains, many recipients
q_two = send(['a@mx.test', 'b@gw.test'], 'two domains')
check_d_lines(q_two, 'mx.test', 1, '127.0.0.2', 'two domains')
check_d_lines(q_two, 'gw.test', 1, '127.0.0.1', 'two domains')
msgid = sent.get(q_two, (None, None))[1]
m2 = [m for m in sinks['127.0.0.2'].messages() if m.msgid == msgid]
mg = [m for m in gw.messages() if m.msgid == msgid]
ok(len(m2) == 1 and m2[0].rcpts == ['<a@mx.test>'],
   'two domains: the mx.test exchanger got one transaction for a@mx.test only', m2)
ok(len(mg) == 1 and mg[0].rcpts == ['<b@gw.test>'],
   'two domains: the gateway got one transaction for b@gw.test only', mg)

rcpts = ['u%02d@mx.test' % i for i in range(10)]
q_many = send(rcpts, 'ten recipients')
check_d_lines(q_many, 'mx.test', 10, '127.0.0.2', 'ten recipients of one domain')
msgid = sent.get(q_many, (None, None))[1]
mm = [m for m in sinks['127.0.0.2'].messages() if m.msgid == msgid]
ok(len(mm) == 1 and mm[0].rcpts == ['<%s>' % r for r in rcpts],
   'ten recipients of one domain: one transaction with 10 RCPTs, in order',
   mm and mm[0].rcpts)
ok(len(mm) == 1 and mm[0].mail is not None and mm[0].mail.startswith('<from@src.test>'),
   '... with the original envelope sender', mm and mm[0].mail)

# ---------------------------------------------------------------- the first MX goes down
# (last: the address stays failed for Host_Failure_Retry, 120 s by default)
sinks['127.0.0.2'].stop()
q_down = [send(['d%d@mx.test' % i], 'mx down %d' % i) for i in range(3)]
ok(all(q_down), 'the preference-10 exchanger stopped; three more messages for mx.test queued')
for q in q_down:
    check_d_lines(q, 'mx.test', 1, '127.0.0.3', 'MX preference, the first MX down')
is_(len(at_sink(sinks['127.0.0.3'], 'mx.test')), 3,
    'the first MX down: the preference-20 exchanger took the 3 new messages')

# ---------------------------------------------------------------- totals
every = d.outcomes()
is_(sorted(o.kind for o in every), ['D'] * 49,
    'the whole run: 49 D lines (one per recipient), no T or P line')
is_(sum(s.count() for s in sinks.values()) + gw.count(), 40,
    'the sinks took 40 transactions in all (39 messages, one of them split in two)')
d.stop()
t.done()
