#!/usr/bin/env python3
"""d0008-scopes-limits: option scopes and connection limits, each shown by its effect.

Inside a private network namespace: scripted receivers (sltest.Receiver)
on their own loopback addresses and ports, and dnsmasq for the MX records
the Host scopes and the fallback order need.  One daemon for the scopes
and the throttles, then one per node-wide connection limit:
  - Host "mx" { Max_Outbound_Connections }: more specific than the Domain
    (Domain 4, Host 1: one connection at a time, also across two domains
    sharing that MX; Domain 1, Host 3: more than one), and an empty Host
    stanza means no limit (it does not inherit the Domain's 1);
  - regex domains "/^.*\\.rx\\.test$/": an exact Domain stanza wins for the
    options it sets (Max_Deliveries_Per_Connection 3: connections of 3),
    the regex supplies the rest (its Gateway) and is all a domain only it
    matches gets (connections of 1); of two matching regexes the first
    declared wins;
  - the fallback order binding_group::binding::domain > binding::domain >
    binding_group::domain > binding > binding_group > domain > global,
    shown with Remote_SMTP_Port: one receiver port per level on the MX;
  - Outbound_Throttle_Connections = "1/1" with Max_Deliveries_Per_Connection
    = 1: 4 messages, 4 connections opened at least ~2.5 s apart first to last;
  - Outbound_Throttle_Messages = "1/1" on a Binding_Group: one bucket for
    its two bindings (6 messages, 3 per binding, take ~5 s, not ~2 s);
  - Server_Max_Outbound_Connections = 2 (Reserve 0): never more than 2
    connections open in the whole node for 3 busy domains;
  - Server_Max_Outbound_Connections = 1 with Server_Reserve_Outbound_
    Connections = 2: a busy domain never gets a second connection, but
    three quiet domains get their first one while it is busy (the reserve),
    never more than 3 in all.
Counts and order are asserted; time only as lower bounds derived from a
configured rate (a receiver's connection is counted as closed 0.25 s
before it saw the close, so that a slot sluice freed and reused at once
is not taken for an overlap).
"""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, diag  # noqa: E402

t.netns()

P = 2780
FB_IP = '127.0.0.20'   # the MX of the fallback domains; one port per level
FB_PORTS = {'bg::b::d': 2601, 'b::d': 2602, 'bg::d': 2603, 'b': 2604, 'bg': 2605,
            'd': 2606, 'global': 2607}
IP = {'hsa': '127.0.0.11', 'hsb': '127.0.0.12', 'hsc': '127.0.0.13',
      'rx': '127.0.0.30', 'rxc': '127.0.0.31', 'thc': '127.0.0.40', 'thm': '127.0.0.41'}
dns = t.DnsMasq(['--mx-host=hsa1.test,mx.hsa.test,10', '--mx-host=hsa2.test,mx.hsa.test,10',
                 '--host-record=mx.hsa.test,%s' % IP['hsa'],
                 '--mx-host=hsb.test,mx.hsb.test,10', '--host-record=mx.hsb.test,%s' % IP['hsb'],
                 '--mx-host=hsc.test,mx.hsc.test,10', '--host-record=mx.hsc.test,%s' % IP['hsc'],
                 '--mx-host=fb.test,mx.fb.test,10', '--mx-host=fbx.test,mx.fb.test,10',
                 '--host-record=mx.fb.test,%s' % FB_IP]).start()
rcv = {k: t.Receiver(v, 2525, name=k).start() for k, v in IP.items()}
fb = {lvl: t.Receiver(FB_IP, port, name='fb-%s' % lvl).start() for lvl, port in FB_PORTS.items()}
DOMAINS = ['hsa1.test', 'hsa2.test', 'hsb.test', 'hsc.test', 'a.rx.test', 'b.rx.test',
           'c.rx.test', 'fb.test', 'fbx.test', 'thc.test', 'thm.test']

CONF = r'''
Relay_Domains = ( %(domains)s )
Resolv_Conf = "%(resolv)s"
Retry_Interval = 1
connection_allocation_aggressiveness = "high"
Remote_SMTP_Port = %(p_global)d

# Host scopes (the MX host names of dnsmasq)
Domain "hsa1.test" { Remote_SMTP_Port = 2525 Max_Outbound_Connections = 4 idle_timeout = 1 }
Domain "hsa2.test" { Remote_SMTP_Port = 2525 Max_Outbound_Connections = 4 idle_timeout = 1 }
Host "mx.hsa.test" { Max_Outbound_Connections = 1 }
Domain "hsb.test" { Remote_SMTP_Port = 2525 Max_Outbound_Connections = 1 }
Host "mx.hsb.test" { Max_Outbound_Connections = 3 }
Domain "hsc.test" { Remote_SMTP_Port = 2525 Max_Outbound_Connections = 1 }
Host "mx.hsc.test" { }

# Regex domains: exact names first, then regexes in declaration order
Domain "/^.*\.rx\.test$/" {
  Gateway = "%(rx)s:2525"
  Max_Deliveries_Per_Connection = 1
  Max_Outbound_Connections = 1
}
Domain "/^b\.rx\.test$/" { Max_Deliveries_Per_Connection = 2 }
Domain "a.rx.test" { Max_Deliveries_Per_Connection = 3 }
Domain "c.rx.test" { Gateway = "%(rxc)s:2525" }

# The fallback order, with Remote_SMTP_Port
Domain "fb.test" { Remote_SMTP_Port = %(p_d)d }
Binding_Group "g1" { Remote_SMTP_Port = %(p_bg)d  Binding "g1b" { } }
Binding "bb" { Remote_SMTP_Port = %(p_b)d }
Binding_Group "g2" {
  Remote_SMTP_Port = %(p_bg)d
  Domain "fb.test" { Remote_SMTP_Port = %(p_bgd)d }
  Binding "g2b" { Remote_SMTP_Port = %(p_b)d }
}
Binding "bd" {
  Remote_SMTP_Port = %(p_b)d
  Domain "fb.test" { Remote_SMTP_Port = %(p_bd)d }
}
Binding_Group "g3" {
  Remote_SMTP_Port = %(p_bg)d
  Domain "fb.test" { Remote_SMTP_Port = %(p_bgd)d }
  Binding "g3b" {
    Remote_SMTP_Port = %(p_b)d
    Domain "fb.test" { Remote_SMTP_Port = %(p_bgbd)d }
  }
}

# Throttles
Domain "thc.test" {
  Gateway = "%(thc)s:2525"
  Max_Deliveries_Per_Connection = 1
  Outbound_Throttle_Connections = "1/1"
}
Domain "thm.test" { Gateway = "%(thm)s:2525" }
Binding_Group "tg" {
  Outbound_Throttle_Messages = "1/1"
  Binding "t1" { }
  Binding "t2" { }
}
''' % dict(IP, domains=' '.join('"%s"' % x for x in DOMAINS), resolv=dns.resolv_conf(),
           p_global=FB_PORTS['global'], p_d=FB_PORTS['d'], p_bg=FB_PORTS['bg'],
           p_b=FB_PORTS['b'], p_bgd=FB_PORTS['bg::d'], p_bd=FB_PORTS['b::d'],
           p_bgbd=FB_PORTS['bg::b::d']) + t.listener('127.0.0.1:%d' % P, t.ESC_ACL)


def send_many(rcpts_tags, binding=None):
    return t.inject_many(P, rcpts_tags, binding, sender='from@src.test')


def delivered(d, ids, what, timeout=t.DEADLINE):
    """Wait for a D line for each id; asserts they all came; returns them."""
    got = [o for q in ids for o in d.wait_outcomes(1, 'D', qid=q, timeout=timeout)]
    ok(all(ids) and len(got) == len(ids), '%s: %d messages delivered' % (what, len(ids)),
       *map(repr, d.outcomes(kinds='DTP')[-20:]))
    return got


max_overlap = t.max_overlap


def in_window(times, width=1.0):
    """The most of `times` within any half-open window of `width` seconds."""
    return max(sum(1 for x in times if a <= x < a + width) for a in times) if times else 0


def rel(times):
    return ', '.join('%.2f' % (x - times[0]) for x in times) if times else '-'


def rcpt_domain(c):
    for cmd in c.cmds:
        if cmd.upper().startswith('RCPT TO:'):
            return cmd.split('@', 1)[-1].rstrip('>').lower()
    return None


d = t.Sluiced(CONF, name='scopes').start()

# ---------------------------------------------------------------- throttles (started first: slow)
q_thc = send_many([('c%d@thc.test' % i, 'conn throttle %d' % i) for i in range(4)])
q_thm = []
for i in range(3):
    q_thm += send_many([('m%d@thm.test' % i, 'group throttle t1 %d' % i)], binding='t1')
    q_thm += send_many([('n%d@thm.test' % i, 'group throttle t2 %d' % i)], binding='t2')

# ---------------------------------------------------------------- Host scope
for k in ('hsa', 'hsb', 'hsc'):
    rcv[k].hold = 0.5
ids_a = send_many([('a%d@hsa1.test' % i, 'host a1 %d' % i) for i in range(3)] +
                  [('a%d@hsa2.test' % i, 'host a2 %d' % i) for i in range(3)])
ids_b = send_many([('b%d@hsb.test' % i, 'host b %d' % i) for i in range(4)])
ids_c = send_many([('c%d@hsc.test' % i, 'host c %d' % i) for i in range(4)])
got = delivered(d, ids_a, 'Host "mx.hsa.test" (two domains with that MX)', timeout=30)
ok(all(o.ip == IP['hsa'] for o in got), '... through the MX mx.hsa.test', *map(repr, got))
r = rcv['hsa']
t.wait_for(lambda: len(r.conns) >= 1 and all(c.closed for c in r.conns[:1]))
for dom in ('hsa1.test', 'hsa2.test'):
    cs = [c for c in r.conns if rcpt_domain(c) == dom]
    is_(max_overlap(cs), 1, 'Domain "%s" { Max_Outbound_Connections = 4 } but Host '
        '"mx.hsa.test" { Max_Outbound_Connections = 1 }: one connection at a time for that '
        'domain (the Host scope is more specific)' % dom)
is_(max_overlap(r.conns), 1, 'Host "mx.hsa.test" { Max_Outbound_Connections = 1 } limits the '
    'host: one connection at a time to it across both domains that use it')
diag('mx.hsa.test connections: %s' % r.conns)
delivered(d, ids_b, 'Host "mx.hsb.test"')
r = rcv['hsb']
ok(2 <= r.max_concurrent <= 3 and sum(c.msgs for c in r.conns) == 4,
   'Domain "hsb.test" { Max_Outbound_Connections = 1 } but Host "mx.hsb.test" '
   '{ Max_Outbound_Connections = 3 }: 2 or 3 connections at once (saw %d)' % r.max_concurrent,
   r.conns)
delivered(d, ids_c, 'Host "mx.hsc.test" { }')
r = rcv['hsc']
ok(r.max_concurrent >= 2 and sum(c.msgs for c in r.conns) == 4,
   'Domain "hsc.test" { Max_Outbound_Connections = 1 } and an empty Host "mx.hsc.test" { }: '
   'no limit (Max_Outbound_Connections is not inherited into a Host scope), more than one '
   'connection at once (saw %d)' % r.max_concurrent, r.conns)

# ---------------------------------------------------------------- regex domains
ids = send_many([('a%d@a.rx.test' % i, 'rx a %d' % i) for i in range(6)] +
                [('b%d@b.rx.test' % i, 'rx b %d' % i) for i in range(3)] +
                [('c%d@c.rx.test' % i, 'rx c %d' % i) for i in range(3)])
got = delivered(d, ids, 'regex domains', timeout=30)
by_dom = {}
for o in got:
    by_dom.setdefault(o.domain, set()).add(o.ip)
is_(by_dom, {'a.rx.test': {IP['rx']}, 'b.rx.test': {IP['rx']}, 'c.rx.test': {IP['rxc']}},
    'Gateway: a.rx.test and b.rx.test from the regex stanza (the exact "a.rx.test" does not '
    'set it), c.rx.test from its exact stanza')
r = rcv['rx']
t.wait_for(lambda: sum(c.msgs for c in r.conns) >= 9 and
           all(c.closed for c in r.conns if rcpt_domain(c) == 'b.rx.test'))
is_([c.msgs for c in r.conns if rcpt_domain(c) == 'a.rx.test'], [3, 3],
    'exact Domain "a.rx.test" { Max_Deliveries_Per_Connection = 3 } wins over the matching '
    'regex (1): 6 messages, 2 connections of 3')
is_([c.msgs for c in r.conns if rcpt_domain(c) == 'b.rx.test'], [1, 1, 1],
    'b.rx.test, matched by two regexes only: the first declared (Max_Deliveries_Per_Connection '
    '= 1) wins over the later one (2): 3 connections of 1')
r = rcv['rxc']
t.wait_for(lambda: len(r.conns) >= 3 and all(c.closed for c in r.conns[:3]))
is_([c.msgs for c in r.conns], [1, 1, 1],
    'c.rx.test: its exact stanza sets only Gateway; Max_Deliveries_Per_Connection comes from '
    'the regex (1): 3 connections of 1')

# ---------------------------------------------------------------- the fallback order
CASES = [   # (binding or None, domain, expected level, what it shows)
    (None, 'fbx.test', 'global', 'global (no scope sets it)'),
    (None, 'fb.test', 'd', 'domain > global'),
    ('g1b', 'fb.test', 'bg', 'binding_group > domain'),
    ('bb', 'fb.test', 'b', 'binding > domain'),
    ('g2b', 'fb.test', 'bg::d', 'binding_group::domain > binding > binding_group > domain'),
    ('bd', 'fb.test', 'b::d', 'binding::domain > binding > domain'),
    ('bd', 'fbx.test', 'b', 'binding > global for a domain the binding has no stanza for'),
    ('g3b', 'fb.test', 'bg::b::d',
     'binding_group::binding::domain > binding_group::domain > binding > binding_group'),
    ('g3b', 'fbx.test', 'b', 'binding > binding_group for a domain with no stanza there'),
]
fb_ids = []
for i, (b, dom, lvl, what) in enumerate(CASES):
    fb_ids += send_many([('f%d@%s' % (i, dom), 'fallback %d' % i)], binding=b)
delivered(d, fb_ids, 'the fallback cases')
for i, (b, dom, lvl, what) in enumerate(CASES):
    subj = ('Subject: fallback %d\r\n' % i).encode()
    where = sorted(k for k, r in fb.items() for m in r.msgs if subj in m.data)
    o = d.outcomes('D', qid=fb_ids[i])
    is_(where, [lvl], 'binding %s, %s: Remote_SMTP_Port %d (%s)' % (
        b or 'default', dom, FB_PORTS[lvl], what))
    ok(o and o[0].binding == (b or 'default'), '... and its D line names binding %s' % (
        b or 'default'), o)

# ---------------------------------------------------------------- Outbound_Throttle_Connections
delivered(d, q_thc, 'Outbound_Throttle_Connections = "1/1"', timeout=30)
r = rcv['thc']
opens = sorted(c.opened for c in r.conns)
diag('thc.test connections opened at (s after the first): %s' % rel(opens))
is_([c.msgs for c in r.conns], [1, 1, 1, 1],
    'Max_Deliveries_Per_Connection = 1: 4 connections of one message')
ok(len(opens) == 4 and opens[-1] - opens[0] >= 2.5,
   'Outbound_Throttle_Connections = "1/1": the 4th connection opened 2.5 s or more after the '
   'first (one token a second)')
ok(in_window(opens) <= 2, 'at most 2 connections opened in any 1-second window (%d)' %
   in_window(opens))

# ---------------------------------------------------------------- a Binding_Group's throttle
got = delivered(d, q_thm, 'Outbound_Throttle_Messages = "1/1" on Binding_Group "tg"',
                timeout=30)
is_(sorted(o.binding for o in got), ['t1'] * 3 + ['t2'] * 3,
    '... 3 through binding t1 and 3 through t2')
times = sorted(m.t for m in rcv['thm'].msgs)
diag('thm.test arrivals (s after the first): %s' % rel(times))
ok(len(times) == 6 and times[-1] - times[0] >= 3.5,
   'the group\'s throttle is one bucket for both bindings: the 6th message arrived 3.5 s or '
   'more after the first (shared: ~5 s; one bucket per binding would take ~2 s)')
ok(in_window(times) <= 2, 'at most 2 messages of the two bindings together in any 1-second '
   'window (%d)' % in_window(times))

is_(d.outcomes('TP'), [], 'no T or P line in the scopes run')
d.stop()

# ---------------------------------------------------------------- Server_Max_Outbound_Connections
SM = {'s1': '127.0.0.51', 's2': '127.0.0.52', 's3': '127.0.0.53'}
sm = {k: t.Receiver(v, 2525, name='sm-' + k).start() for k, v in SM.items()}
for r in sm.values():
    r.hold = 0.8
d = t.Sluiced('''
Relay_Domains = ( %s )
Retry_Interval = 1
idle_timeout = 1
connection_allocation_aggressiveness = "high"
Server_Max_Outbound_Connections = 2
Server_Reserve_Outbound_Connections = 0
''' % ' '.join('"%s.test"' % k for k in SM) +
    ''.join('Domain "%s.test" { Gateway = "%s:2525" }\n' % (k, v) for k, v in SM.items()) +
    t.listener('127.0.0.1:%d' % P, t.ESC_ACL), name='servermax').start()
ids = send_many([('x%d@%s.test' % (i, k), 'server max %s %d' % (k, i))
                 for k in SM for i in range(3)])
delivered(d, ids, 'Server_Max_Outbound_Connections = 2', timeout=40)
conns = [c for r in sm.values() for c in r.conns]
t0 = min(c.opened for c in conns) if conns else 0
diag('connections (domain: opened-closed, s): %s' % ', '.join(
    '%s: %.2f-%s' % (k, c.opened - t0, '%.2f' % (c.closed - t0) if c.closed else 'open')
    for k, r in sm.items() for c in r.conns))
ok(max_overlap(conns) <= 2, 'Server_Max_Outbound_Connections = 2, Reserve 0: never more than '
   '2 connections open in the node (3 domains, aggressiveness high; saw %d)' %
   max_overlap(conns))
ok(max(r.max_concurrent for r in sm.values()) <= 2,
   '... and never more than 2 to one domain', [r.max_concurrent for r in sm.values()])
d.stop()

# ---------------------------------------------------------------- Server_Reserve_Outbound_Connections
RS = {'r1': '127.0.0.61', 'r2': '127.0.0.62', 'r3': '127.0.0.63', 'r4': '127.0.0.64'}
rs = {k: t.Receiver(v, 2525, name='rs-' + k).start() for k, v in RS.items()}
for r in rs.values():
    r.hold = 0.8
d = t.Sluiced('''
Relay_Domains = ( %s )
Retry_Interval = 1
idle_timeout = 1
connection_allocation_aggressiveness = "high"
Server_Max_Outbound_Connections = 1
Server_Reserve_Outbound_Connections = 2
''' % ' '.join('"%s.test"' % k for k in RS) +
    ''.join('Domain "%s.test" { Gateway = "%s:2525" }\n' % (k, v) for k, v in RS.items()) +
    t.listener('127.0.0.1:%d' % P, t.ESC_ACL), name='reserve').start()
ids_busy = send_many([('x%d@r1.test' % i, 'busy %d' % i) for i in range(7)])
ids_quiet = send_many([('y@%s.test' % k, 'quiet %s' % k) for k in ('r2', 'r3', 'r4')])
delivered(d, ids_busy + ids_quiet, 'Server_Max 1 + Server_Reserve 2', timeout=40)
busy = rs['r1']
last_busy = max(m.t for m in busy.msgs) if busy.msgs else 0
quiet_t = sorted(m.t for k in ('r2', 'r3', 'r4') for m in rs[k].msgs)
diag('busy domain arrivals: %s; quiet arrivals (s after the busy\'s first): %s' % (
    rel(sorted(m.t for m in busy.msgs)),
    ', '.join('%.2f' % (x - min(m.t for m in busy.msgs)) for x in quiet_t) if busy.msgs
    else '-'))
is_(max_overlap(busy.conns), 1, 'Server_Max_Outbound_Connections = 1: the busy domain (7 '
    'messages, aggressiveness high) never has a second connection open')
early = sum(1 for x in quiet_t if x < last_busy)
ok(early >= 2, 'Server_Reserve_Outbound_Connections = 2: quiet domains get their first '
   'connection while the busy one holds the only ordinary slot (%d of 3 arrived before the '
   'busy domain\'s last message)' % early)
allc = [c for r in rs.values() for c in r.conns]
ok(max_overlap(allc) <= 3, 'Server_Max + Server_Reserve = 3 is the ceiling: never more than 3 '
   'connections open in the node (saw %d)' % max_overlap(allc))
d.stop()
t.done()
