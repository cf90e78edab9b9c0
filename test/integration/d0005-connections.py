#!/usr/bin/env python3
"""d0005-connections: outbound connections, against scripted receivers.

Inside a private network namespace, each test domain has a Gateway on its
own loopback address, where a scripted SMTP receiver (sltest.Receiver)
counts connections, concurrent connections, transactions per connection,
QUITs, and misbehaves on demand:
  - Max_Deliveries_Per_Connection = 2, 6 messages: 3 connections of 2;
  - Max_Outbound_Connections = 1: one connection carries 10 messages;
  - Max_Outbound_Connections = 2 (aggressiveness high, the receiver holding
    each message 0.5 s): 2 connections at once, never 3;
  - the receiver drops idle cached connections, or closes one when the
    next MAIL comes: the next message goes over a new connection, no T line;
  - 421 in the middle of a session: a T line with the reply, a retry that
    works;
  - nothing listening: T lines, connection attempts (SYNs counted with a
    packet socket) no closer than Host_Failure_Retry, delivery once a
    receiver comes up;
  - a server that accepts but never greets: a T line after Connect_Timeout;
    one that never answers RCPT: a T line after Rcptto_Timeout;
  - idle_timeout = 1: the idle connection is closed with QUIT.
Counts and order are asserted, never an upper bound on time.
"""
import os
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, diag  # noqa: E402

t.netns()

P = 2730
R = {}
for n, dom in enumerate(['mdpc', 'reuse', 'moc', 'dropidle', 'dropmail', 'mid421', 'down',
                         'nogreet', 'norcpt', 'idle'], start=2):
    R[dom] = ('127.0.0.%d' % n, 2525)
scopes = ''.join('Domain "%s.test" { Gateway = "%s:%d" %s }\n' % (dom, ip, port, {
    'mdpc': 'Max_Deliveries_Per_Connection = 2 Max_Outbound_Connections = 1',
    'reuse': 'Max_Outbound_Connections = 1',
    'moc': 'Max_Outbound_Connections = 2 connection_allocation_aggressiveness = "high"',
    'down': 'Host_Failure_Retry = 2',
    'nogreet': 'Connect_Timeout = 2',
    'norcpt': 'Rcptto_Timeout = 2',
    'idle': 'idle_timeout = 1',
}.get(dom, '')) for dom, (ip, port) in R.items())
d = t.Sluiced('Relay_Domains = ( %s )\nRetry_Interval = 1\n' %
              ' '.join('"%s.test"' % x for x in R) + scopes +
              t.listener('127.0.0.1:%d' % P, t.ESC_ACL)).start()
rcv = {dom: t.Receiver(ip, port, name=dom) for dom, (ip, port) in R.items() if dom != 'down'}
for r in rcv.values():
    r.start()


def send_many(domain, n, tag=None):
    """n messages to rN@domain over one SMTP session; returns their queue ids."""
    s = t.smtp(P)
    s.ehlo('client.test')
    ids = []
    for i in range(n):
        code, resp = s.mail('from@src.test')[0], None
        s.rcpt('r%d@%s' % (i, domain))
        code, resp = s.data(t.message('%s %d' % (tag or domain, i)))
        ids.append(t.queue_id(resp) if code == 250 else None)
    s.quit()
    return ids


def d_ok(ids, domain, what, retries=0):
    got = [d.wait_outcomes(1, 'D', qid=q) for q in ids]
    flat = [o for g in got for o in g]
    ok(len(flat) == len(ids) and all(o.retries == retries and o.domain == domain
                                      for o in flat),
       '%s: %d D lines, retries %d' % (what, len(ids), retries), *map(repr, flat))


# ---------------------------------------------------------------- Max_Deliveries_Per_Connection
ids = send_many('mdpc.test', 6)
d_ok(ids, 'mdpc.test', 'Max_Deliveries_Per_Connection = 2')
r = rcv['mdpc']
t.wait_for(lambda: len(r.conns) >= 3 and all(c.closed for c in r.conns[:3]))
is_([c.msgs for c in r.conns], [2, 2, 2],
    'Max_Deliveries_Per_Connection = 2, 6 messages: 3 connections of 2 messages')
ok(all(c.quit for c in r.conns), '... each closed with QUIT', r.conns)

# ---------------------------------------------------------------- reuse
ids = send_many('reuse.test', 10)
d_ok(ids, 'reuse.test', 'connection reuse')
r = rcv['reuse']
is_([c.msgs for c in r.conns], [10], 'Max_Outbound_Connections = 1: one connection carries '
    'all 10 messages')
is_([c.cmds.count('QUIT') + sum(x.startswith('EHLO') for x in c.cmds) for c in r.conns], [1],
    '... with one EHLO (and no QUIT yet: it is idle)')

# ---------------------------------------------------------------- Max_Outbound_Connections = 2
r = rcv['moc']
r.hold = 0.5
ids = send_many('moc.test', 10)
d_ok(ids, 'moc.test', 'Max_Outbound_Connections = 2')
is_(r.max_concurrent, 2, 'Max_Outbound_Connections = 2: the receiver saw 2 connections at '
    'once, never more (each message held 0.5 s)')
is_(sum(c.msgs for c in r.conns), 10, '... and took the 10 messages')

# ---------------------------------------------------------------- cached connections the server drops
r = rcv['dropidle']
r.close_idle = 0.3
ids = send_many('dropidle.test', 1, 'idle drop a')
d_ok(ids, 'dropidle.test', 'before the receiver drops the idle connection')
ok(t.wait_for(lambda: r.conns and r.conns[0].closed and r.conns[0].closed_by_us),
   'the receiver dropped the idle connection (no QUIT from either side)', r.conns)
ids2 = send_many('dropidle.test', 1, 'idle drop b')
d_ok(ids2, 'dropidle.test', 'the next message after the receiver dropped the cached connection')
is_([c.msgs for c in r.conns], [1, 1], '... went over a new connection')
is_(d.outcomes('TP', domain='dropidle.test'), [], '... and cost no T line')

r = rcv['dropmail']
r.mail_reply = lambda c, sender: None if c.msgs >= 1 else '250 2.1.0 Ok'
ids = send_many('dropmail.test', 1, 'mail drop a')
d_ok(ids, 'dropmail.test', 'the first message')
ids2 = send_many('dropmail.test', 1, 'mail drop b')
d_ok(ids2, 'dropmail.test', 'a reused connection closed at MAIL without an answer: the message '
     'goes again at once')
is_([c.msgs for c in r.conns], [1, 1], '... over a new connection')
is_(d.outcomes('TP', domain='dropmail.test'), [],
    '... and costs no T line (not the message\'s fault)')

# ---------------------------------------------------------------- 421 mid-session
r = rcv['mid421']
said = []


def mail_421(c, sender):
    if c.msgs >= 1 and not said:
        said.append(c.idx)
        return '421 4.3.2 Service shutting down'
    return '250 2.1.0 Ok'


r.mail_reply = mail_421
ids = send_many('mid421.test', 1, 'mid421 a')
d_ok(ids, 'mid421.test', 'the first message')
ids2 = send_many('mid421.test', 1, 'mid421 b')
got = d.wait_outcomes(2, qid=ids2[0])
ok([o.kind for o in got] == ['T', 'D'] and got[0].stage == 2 and
   got[0].response.startswith('421 4.3.2 Service shutting down') and got[1].retries == 1,
   '421 at MAIL on a reused connection: a T line (stage 2, the reply), then a D line with '
   'retries 1', *map(repr, got))
is_([c.msgs for c in r.conns], [1, 1], '... the retry on a new connection')

# ---------------------------------------------------------------- nothing listening
ip, port = R['down']
syn = t.SynCounter(ip, port)
q = send_many('down.test', 1, 'down')[0]
got = d.wait_outcomes(3, 'T', qid=q)
ok(len(got) >= 3 and all(o.response.startswith('451') and o.ip == '' for o in got) and
   [o.retries for o in got] == list(range(len(got))),
   'nothing listening: T lines (451, no server reached, retries 0, 1, 2)', *map(repr, got))
late = t.Receiver(ip, port, name='down').start()
got = d.wait_outcomes(1, 'D', qid=q, timeout=30)
n_t = len(d.outcomes('T', qid=q))
ok(len(got) == 1 and got[0].retries == n_t and got[0].ip == ip,
   'once a receiver listens, the message is delivered (retries %d = the T lines)' % n_t,
   *map(repr, d.outcomes(qid=q)))
gaps = [b - a for a, b in zip(syn.times, syn.times[1:])]
diag('connection attempts: %d; gaps %s; T lines %d' % (
    syn.count(), ', '.join('%.2f' % g for g in gaps), n_t))
ok(syn.count() < n_t + 1, 'Host_Failure_Retry = 2 with Retry_Interval = 1: fewer connection '
   'attempts (%d) than attempts (%d): some retries found the address still failed' % (
       syn.count(), n_t + 1))
ok(gaps and min(gaps) >= 1.9, 'no two connection attempts closer than Host_Failure_Retry '
   '(2 s)', gaps)
is_(late.conns and late.conns[0].msgs, 1, 'the late receiver took it on its first connection')

# ---------------------------------------------------------------- a server that never greets
rcv['nogreet'].greeting = None
q = send_many('nogreet.test', 1, 'no greeting')[0]
got = d.wait_outcomes(1, 'T', qid=q)
ok(len(got) == 1 and got[0].response.startswith('4') and got[0].secs >= 2,
   'a server that accepts and never greets: a T line after Connect_Timeout (2 s)',
   *map(repr, got))
diag('its T line: %r' % got)
r = rcv['nogreet']
ok(t.wait_for(lambda: r.conns and r.conns[0].closed), 'sluice closed that connection', r.conns)

# ---------------------------------------------------------------- a server that never answers RCPT
rcv['norcpt'].rcpt_reply = lambda a: 'HANG'
q = send_many('norcpt.test', 1, 'no rcpt answer')[0]
got = d.wait_outcomes(1, 'T', qid=q)
ok(len(got) == 1 and got[0].stage == 4 and got[0].response.startswith('451') and
   got[0].ip == R['norcpt'][0] and got[0].secs >= 2,
   'a server that never answers RCPT: a T line (stage 4, 451) after Rcptto_Timeout (2 s)',
   *map(repr, got))

# ---------------------------------------------------------------- idle_timeout
r = rcv['idle']
ids = send_many('idle.test', 1, 'idle timeout')
d_ok(ids, 'idle.test', 'idle_timeout = 1')
ok(t.wait_for(lambda: r.conns and r.conns[0].closed), 'idle_timeout = 1: the idle connection '
   'is closed', r.conns)
c0 = r.conns[0] if r.conns else None
ok(c0 is not None and c0.quit and not c0.closed_by_us,
   '... by sluice, with QUIT', c0 and c0.cmds)
ok(c0 is not None and c0.closed - c0.opened >= 0.9, '... after being idle about a second', c0)

is_(d.outcomes('P'), [], 'no P line in the whole run')
d.stop()
t.done()
