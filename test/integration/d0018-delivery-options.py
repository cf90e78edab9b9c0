#!/usr/bin/env python3
"""d0018-delivery-options: the effect of delivery options that had no test.

Scripted receivers (sltest.Receiver) on their own loopback addresses;
dnsmasq on 127.0.0.1:5353 for the MX of mxr.test.
  - Gateway "[::1]:2981": the message is delivered over IPv6 to a receiver
    on ::1 (the D line names ::1); skipped without an IPv6 loopback;
  - Routes with port=: "smtp://127.0.0.6?port=2982" reaches the receiver
    on that port, not Remote_SMTP_Port;
  - Routes with type=mx: "smtp://mxr.test?type=mx" delivers to the
    exchanger of mxr.test (127.0.0.7), not to the A record of the name;
  - Routes with ttl=: the route of "smtp://mx.ttl.test?ttl=7200" is kept
    7200 s whatever the DNS answer's TTL, that of ttl=20 at most 20 s
    (the console's `domain` command says how long);
  - EHLO_Timeout = 2: a receiver that never answers EHLO on its first
    connection: sluice gives that connection up and delivers on a second
    (with the default of 300 s it would still be waiting);
  - RSET_Timeout = 2 (one connection at a time): a receiver that refuses
    the first message's recipient (450), then never answers the RSET that
    opens the next transaction: that connection is given up, the second
    message gets one T line (the timeout), and both are delivered on a
    later connection;
  - Retry_Interval = 1 with a receiver answering 451: the T lines carry
    retry counts 0, 1, 2, 3 in order, and each gap between attempts is
    longer than the one before (the back-off doubles).
Counts, orders and log fields are asserted, never a duration.
"""
import os
import re
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, diag  # noqa: E402

t.netns()

P = 2980
PORT = 2525
HAS_V6 = t.has_ipv6_loopback()

dns = t.DnsMasq(['--mx-host=mxr.test,mx.mxr.test,10', '--host-record=mx.mxr.test,127.0.0.7',
                 '--host-record=mxr.test,127.0.0.8',
                 '--host-record=mx.ttl.test,127.0.0.12']).start()
rv6 = t.Receiver('::1', 2981).start() if HAS_V6 else None
rport = t.Receiver('127.0.0.6', 2982).start()
rmx = t.Receiver('127.0.0.7', PORT).start()
ra = t.Receiver('127.0.0.8', PORT).start()
rehlo = t.Receiver('127.0.0.9', PORT).start()
rrset = t.Receiver('127.0.0.10', PORT).start()
rback = t.Receiver('127.0.0.11', PORT).start()
rttl = t.Receiver('127.0.0.12', PORT).start()

rehlo.ehlo_reply = lambda c: 'HANG' if c.idx == 0 else None
refused = []


def rset_rcpt(a):
    """Refuse the first message's recipient once."""
    if a.startswith('first') and not refused:
        refused.append(a)
        return '450 4.2.0 try later'
    return '250 2.1.5 Ok'


rrset.rcpt_reply = rset_rcpt
rrset.rset_reply = lambda c: 'HANG'
rback.rcpt_reply = lambda a: '451 4.3.0 not now'

DOMAINS = ['v6.test', 'port.test', 'mxr.test', 'ehlo.test', 'rset.test', 'back.test',
           'ttl1.test', 'ttl2.test']
d = t.Sluiced('''
Relay_Domains = ( %s )
Resolv_Conf = "%s"
Remote_SMTP_Port = %d
Host_Failure_Retry = 0
Domain "v6.test" { Gateway = "[::1]:2981" }
Domain "port.test" { Routes = ( "smtp://127.0.0.6?port=2982" ) }
Domain "mxr.test" { Routes = ( "smtp://mxr.test?type=mx" ) }
Domain "ttl1.test" { Routes = ( "smtp://mx.ttl.test?ttl=7200" ) }
Domain "ttl2.test" { Routes = ( "smtp://mx.ttl.test?ttl=20" ) }
Control_Listener = ( "./control.sock" [ 0.0.0.0/0 = ( ALWAYS-ALLOW ) ] )
Domain "ehlo.test" { Gateway = "127.0.0.9" EHLO_Timeout = 2 Retry_Interval = 1 }
Domain "rset.test" {
  Gateway = "127.0.0.10" RSET_Timeout = 2 Retry_Interval = 1 Max_Outbound_Connections = 1
}
Domain "back.test" { Gateway = "127.0.0.11" Retry_Interval = 1 Message_Expiration = 60 }
''' % (' '.join('"%s"' % x for x in DOMAINS), dns.resolv_conf(), PORT)
    + t.listener('127.0.0.1:%d' % P, t.ESC_ACL))
d.start()


def send(rcpts, what):
    qid = t.inject(P, 'from@src.test', rcpts, t.message(what))
    ok(qid, '%s: queued' % what)
    return qid


# ---------------------------------------------------------------- Gateway [::1]:port
if HAS_V6:
    q = send(['a@v6.test'], 'ipv6 gateway')
    got = d.wait_outcomes(1, 'D', qid=q)
    ok(len(got) == 1 and got[0].ip == '::1', 'Gateway [::1]:2981: delivered over IPv6',
       *map(repr, d.outcomes(qid=q)))
    ok(rv6.wait_msgs(1), 'the receiver on [::1]:2981 has it')
else:
    t.skip('Gateway [::1]:port', 'no IPv6 loopback in this namespace')

# ---------------------------------------------------------------- Routes port= and type=mx
q = send(['a@port.test'], 'route port')
got = d.wait_outcomes(1, 'D', qid=q)
ok(len(got) == 1 and got[0].ip == '127.0.0.6' and rport.wait_msgs(1),
   'Routes port=2982: delivered to 127.0.0.6:2982', *map(repr, d.outcomes(qid=q)))

q = send(['a@mxr.test'], 'route type mx')
got = d.wait_outcomes(1, 'D', qid=q)
ok(len(got) == 1 and got[0].ip == '127.0.0.7', 'Routes type=mx: the exchanger 127.0.0.7 took it',
   *map(repr, d.outcomes(qid=q)))
is_(len(ra.msgs), 0, 'type=mx: nothing went to the A record of mxr.test (127.0.0.8)')


def route_kept(domain):
    """Seconds the console says the route of `domain` is kept, or None."""
    r = subprocess.run([os.path.join(t.TOP_BUILDDIR, 'sluicectl'), '-s', d.path('control.sock'),
                        'domain', domain],
                       capture_output=True, timeout=t.DEADLINE)
    m = re.search(r'Routes: \d+ hosts?, kept (\d+) s more', r.stdout.decode())
    return int(m.group(1)) if m else None


for dom, lo, hi in (('ttl1.test', 7000, 7200), ('ttl2.test', 0, 20)):
    q = send(['a@%s' % dom], 'route ttl %s' % dom)
    got = d.wait_outcomes(1, 'D', qid=q)
    ok(len(got) == 1 and got[0].ip == '127.0.0.12', '%s: delivered through mx.ttl.test' % dom,
       *map(repr, d.outcomes(qid=q)))
    kept = route_kept(dom)
    ok(kept is not None and lo <= kept <= hi,
       'Routes ttl=: %s keeps its route %s s (%d..%d)' % (dom, kept, lo, hi))

# ---------------------------------------------------------------- EHLO_Timeout
q = send(['a@ehlo.test'], 'ehlo stall')
ok(d.wait_outcomes(1, 'D', qid=q), 'EHLO_Timeout = 2: delivered although EHLO went unanswered',
   *map(repr, d.outcomes(qid=q)))
cmds = [c.cmds for c in rehlo.conns]
ok(len(cmds) >= 2 and [x.split()[0] for x in cmds[0]] == ['EHLO'] and rehlo.conns[0].msgs == 0,
   'the first connection got EHLO only, then sluice gave up on it', cmds)
ok(len(cmds) >= 2 and rehlo.conns[1].msgs == 1, 'the message went on a second connection', cmds)
diag('ehlo.test outcomes: %r' % d.outcomes(qid=q))

# ---------------------------------------------------------------- RSET_Timeout
q1 = send(['first@rset.test'], 'rset first')
q2 = send(['second@rset.test'], 'rset second')
ok(d.wait_outcomes(1, 'D', qid=q2), 'RSET_Timeout: the second message is delivered',
   *map(repr, d.outcomes(domain='rset.test')))
t2 = d.outcomes('T', qid=q2)
ok(len(t2) == 1 and 'timeout' in t2[0].response,
   'the second message has one T line: the timeout waiting for the RSET reply', *map(repr, t2))
ok(d.wait_outcomes(1, 'D', qid=q1), 'the first message is delivered on its retry')
rset_conns = [c for c in rrset.conns if any(x.upper() == 'RSET' for x in c.cmds)]
ok(rset_conns and rset_conns[0].msgs == 0,
   'a connection sent RSET, got no answer and carried no message', [c.cmds for c in rrset.conns])
ok(any(c.msgs >= 1 for c in rrset.conns[1:]),
   'the messages went on a later connection', [c.cmds for c in rrset.conns])

# ---------------------------------------------------------------- Retry_Interval back-off
q = send(['a@back.test'], 'back-off')
ok(t.wait_for(lambda: len(d.outcomes('T', qid=q)) >= 4, timeout=30),
   'four attempts logged', *map(repr, d.outcomes(qid=q)))
ts = d.outcomes('T', qid=q)[:4]
is_([o.retries for o in ts], [0, 1, 2, 3], 'the retry counts go 0, 1, 2, 3')
gaps = [b.secs - a.secs for a, b in zip(ts, ts[1:])]
ok(len(gaps) == 3 and gaps[0] < gaps[1] < gaps[2],
   'each wait is longer than the one before (Retry_Interval doubles)', gaps)
d.stop()
t.done()
