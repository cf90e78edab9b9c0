#!/usr/bin/env python3
"""d0014-binding-limits: connection limits of bindings, binding groups and
their Host stanzas, and throttle tokens that limits must not waste.

Inside a private network namespace: scripted receivers (sltest.Receiver)
that hold every message 0.8 s and count the connections open at once,
dnsmasq for the MX host the Host stanzas name.  Each binding connects from
its own Bind_Address, so a receiver tells the bindings apart by peer.
Every run queues its mail with Suspend_Delivery = true and starts delivery
with a reload, so every queue starts with its whole backlog:
  - Server_Max_Outbound_Connections = 1 in Binding "a": never more than 1
    connection through it (3 domains, aggressiveness high), while Binding
    "free" (no limit of its own) has several at once;
  - Server_Max_Outbound_Connections = 2 in Binding_Group "g": its two
    bindings together never have more than 2 (each alone could use more);
  - Host "mx.h.test" { Max_Outbound_Connections = 1 } inside Binding "ha"
    and inside Binding "hb": one connection at a time per binding, so two
    at once in all; the same Host stanza inside Binding_Group "hg" is one
    count for its bindings "hg1" and "hg2" together;
  - Server_Max_Outbound_Connections = 1 with Server_Reserve_Outbound_
    Connections = 3 (node ceiling 4) and Server_Max_Outbound_Connections =
    3 in Binding "r": the reserve still gives quiet domains their first
    connection beside the busy one, and the binding's 3 is a hard cap:
    exactly 3 at once, not 4;
  - Outbound_Throttle_Connections = "6/600" (6 tokens, then one per 100 s)
    with Max_Deliveries_Per_Connection = 1 and a Host limit of 1 that binds
    all the time (aggressiveness high keeps asking for more): all 6
    messages go over 6 connections, the throttle's whole allowance; a token
    taken for a connection the Host limit then refused would leave some of
    them waiting 100 s;
  - Outbound_Throttle_Messages = "6/600" with Max_Resident_Active_Queue =
    0 (every message's content is read back from the spool before it can
    go, so a connection often finds no message ready): all 6 messages
    delivered; a token taken before there was a message to send would
    leave some of them waiting 100 s.
Counts and order are asserted, never durations (a receiver's connection is
counted as closed 0.25 s before it saw the close, so that a slot sluice
freed and reused at once is not taken for an overlap).
"""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, diag  # noqa: E402

t.netns()

P = 2850
SRC = {'a': '127.0.0.71', 'free': '127.0.0.72', 'g1': '127.0.0.73', 'g2': '127.0.0.74',
       'ha': '127.0.0.75', 'hb': '127.0.0.76', 'hg1': '127.0.0.77', 'hg2': '127.0.0.78',
       'r': '127.0.0.79'}
SM_IP, H_IP, R_IP, TH_IP, TM_IP = ('127.0.0.90', '127.0.0.91', '127.0.0.92', '127.0.0.93',
                                  '127.0.0.94')
dns = t.DnsMasq(['--mx-host=h.test,mx.h.test,10', '--host-record=mx.h.test,%s' % H_IP]).start()
sm = t.Receiver(SM_IP, 2525, name='servermax').start()
hr = t.Receiver(H_IP, 2525, name='host').start()
rr = t.Receiver(R_IP, 2525, name='reserve').start()
th = t.Receiver(TH_IP, 2525, name='throttle').start()
tm = t.Receiver(TM_IP, 2525, name='msgthrottle').start()
for r in (sm, hr, rr):
    r.hold = 0.8
th.hold = 0.3
SM_DOMAINS = ['s1.test', 's2.test', 's3.test']
R_DOMAINS = ['r1.test', 'r2.test', 'r3.test', 'r4.test']


def conf(suspended, node=''):
    return '''
Relay_Domains = ( %(domains)s )
Resolv_Conf = "%(resolv)s"
Retry_Interval = 1
idle_timeout = 1
Suspend_Delivery = %(susp)s
connection_allocation_aggressiveness = "high"
%(node)s
%(sm_domains)s
Domain "h.test" { Remote_SMTP_Port = 2525 }
%(r_domains)s
Domain "th.test" {
  Gateway = "%(th)s:2525"
  Max_Deliveries_Per_Connection = 1
  Outbound_Throttle_Connections = "6/600"
}
Host "%(th)s" { Max_Outbound_Connections = 1 }
Domain "tm.test" {
  Gateway = "%(tm)s:2525"
  Max_Resident_Active_Queue = 0
  Outbound_Throttle_Messages = "6/600"
}

Binding "a" { Bind_Address = "%(a)s" Server_Max_Outbound_Connections = 1 }
Binding "free" { Bind_Address = "%(free)s" }
Binding_Group "g" {
  Server_Max_Outbound_Connections = 2
  Binding "g1" { Bind_Address = "%(g1)s" }
  Binding "g2" { Bind_Address = "%(g2)s" }
}
Binding "ha" { Bind_Address = "%(ha)s" Host "mx.h.test" { Max_Outbound_Connections = 1 } }
Binding "hb" { Bind_Address = "%(hb)s" Host "mx.h.test" { Max_Outbound_Connections = 1 } }
Binding_Group "hg" {
  Host "mx.h.test" { Max_Outbound_Connections = 1 }
  Binding "hg1" { Bind_Address = "%(hg1)s" }
  Binding "hg2" { Bind_Address = "%(hg2)s" }
}
Binding "r" { Bind_Address = "%(r)s" Server_Max_Outbound_Connections = 3 }
''' % dict(SRC, susp='true' if suspended else 'false', node=node, resolv=dns.resolv_conf(), th=TH_IP, tm=TM_IP,
           domains=' '.join('"%s"' % x for x in SM_DOMAINS + R_DOMAINS + ['h.test', 'th.test', 'tm.test']),
           sm_domains=''.join('Domain "%s" { Gateway = "%s:2525" }\n' % (x, SM_IP)
                              for x in SM_DOMAINS),
           r_domains=''.join('Domain "%s" { Gateway = "%s:2525" }\n' % (x, R_IP)
                             for x in R_DOMAINS)) + t.listener('127.0.0.1:%d' % P, t.ESC_ACL)


def send_many(rcpts_tags, binding=None):
    return t.inject_many(P, rcpts_tags, binding, sender='')


def delivered(d, ids, timeout):
    """The D lines of `ids`, once there is one for each or at the timeout (fewer)."""
    def get():
        return [o for o in d.outcomes('D') if o.qid in ids]
    return t.wait_for(lambda: (lambda x: x if len(x) >= len(ids) else None)(get()),
                      timeout) or get()


max_overlap = t.max_overlap


def of(r, *bindings):
    return [c for c in r.conns if c.peer[0] in [SRC[b] for b in bindings]]


d = t.Sluiced(conf(True), name='bindlimits').start()
ids = {}
for b in ('a', 'free', 'g1', 'g2'):
    ids[b] = send_many([('%s%d@%s' % (b, i, dom), '%s %s %d' % (b, dom, i))
                        for dom in SM_DOMAINS for i in range(2)], binding=b)
for b in ('ha', 'hb', 'hg1', 'hg2'):
    ids[b] = send_many([('%s%d@h.test' % (b, i), '%s host %d' % (b, i)) for i in range(3)],
                       binding=b)
ids['th'] = send_many([('t%d@th.test' % i, 'throttle %d' % i) for i in range(6)])
ids['tm'] = send_many([('m%d@tm.test' % i, 'msg throttle %d' % i) for i in range(6)])
ok(all(q for v in ids.values() for q in v), 'every message queued (delivery suspended)')
d.reload(conf(False))

for b, v in sorted(ids.items()):
    if b in ('th', 'tm'):
        continue
    got = delivered(d, v, 40)
    is_(len(got), len(v), 'binding %s: its %d messages delivered' % (b, len(v)))
    ok(all(o.binding == b for o in got), '... and their D lines name binding %s' % b)

# ---------------------------------------------------------------- Server_Max_Outbound_Connections
t.wait_for(lambda: all(c.closed for c in sm.conns), timeout=10)
for b in ('a', 'free', 'g1', 'g2'):
    diag('binding %s: %d connections, at most %d at once' % (
        b, len(of(sm, b)), max_overlap(of(sm, b))))
is_(max_overlap(of(sm, 'a')), 1, 'Binding "a" { Server_Max_Outbound_Connections = 1 }: never '
    'more than one connection through it (6 messages to 3 domains, aggressiveness high)')
ok(max_overlap(of(sm, 'free')) >= 2, 'Binding "free" (no limit of its own, the same mail) has '
   'several connections at once (%d)' % max_overlap(of(sm, 'free')))
is_(max_overlap(of(sm, 'g1', 'g2')), 2, 'Binding_Group "g" { Server_Max_Outbound_Connections = '
    '2 }: its bindings g1 and g2 together have 2 connections at once, never more')

# ---------------------------------------------------------------- Host stanzas in bindings
t.wait_for(lambda: all(c.closed for c in hr.conns), timeout=10)
for b in ('ha', 'hb', 'hg1', 'hg2'):
    diag('binding %s to mx.h.test: %s' % (b, of(hr, b)))
is_([max_overlap(of(hr, 'ha')), max_overlap(of(hr, 'hb'))], [1, 1],
    'Binding "ha"/"hb" { Host "mx.h.test" { Max_Outbound_Connections = 1 } }: one connection '
    'at a time to the host through each binding')
is_(max_overlap(of(hr, 'ha', 'hb')), 2, '... counted per binding, not for the node: the two '
    'bindings have 2 connections to the host at once')
is_(max_overlap(of(hr, 'hg1', 'hg2')), 1, 'Binding_Group "hg" { Host "mx.h.test" { '
    'Max_Outbound_Connections = 1 } }: one count for the group\'s bindings hg1 and hg2 '
    'together')

# ---------------------------------------------------------------- throttle tokens
got = delivered(d, ids['th'], 30)
diag('throttle run: %d delivered, connections %s' % (len(got), [c.msgs for c in th.conns]))
is_(len(got), 6, 'Outbound_Throttle_Connections = "6/600" with a Host limit of 1 binding the '
    'whole time: all 6 messages delivered without waiting for a 7th token (refused '
    'connections took none)')
is_([c.msgs for c in th.conns], [1] * 6, '... over 6 connections of one message '
    '(Max_Deliveries_Per_Connection = 1): the throttle\'s whole allowance')
is_(max_overlap(th.conns), 1, '... one at a time (the Host limit)')
got = delivered(d, ids['tm'], 20)
diag('message throttle run: %d delivered, connections %s' % (len(got),
                                                           [c.msgs for c in tm.conns]))
is_(len(got), 6, 'Outbound_Throttle_Messages = "6/600" with Max_Resident_Active_Queue = 0: all '
    '6 messages delivered without waiting for a 7th token (a connection that found no message '
    'ready took none)')
is_(len(set(m.msgid for m in tm.msgs)), 6, '... the 6 distinct messages arrived')

is_(d.outcomes('TP'), [], 'no T or P line')
d.stop()

# ---------------------------------------------------------------- the reserve beside a binding cap
NODE = 'Server_Max_Outbound_Connections = 1\nServer_Reserve_Outbound_Connections = 3\n'
d = t.Sluiced(conf(True, NODE), name='reserve').start()
rids = send_many([('busy%d@r1.test' % i, 'busy %d' % i) for i in range(4)] +
                 [('quiet@%s' % x, 'quiet %s' % x) for x in R_DOMAINS[1:]], binding='r')
ok(all(rids), 'reserve run: every message queued (delivery suspended)')
d.reload(conf(False, NODE))
got = delivered(d, rids, 40)
is_(len(got), len(rids), 'reserve run: its %d messages delivered' % len(rids))
# ---------------------------------------------------------------- the reserve beside a binding cap
t.wait_for(lambda: all(c.closed for c in rr.conns), timeout=10)
busy = [c for c in rr.conns if any('@r1.test' in x for x in c.cmds)]
diag('reserve run: %d connections (%d to the busy domain), at most %d at once' % (
    len(rr.conns), len(busy), max_overlap(rr.conns)))
is_(max_overlap(busy), 1, 'Server_Max_Outbound_Connections = 1: the busy domain never has a '
    'second connection')
is_(max_overlap(rr.conns), 3, 'Server_Reserve_Outbound_Connections = 3 still gives quiet '
    'domains their first connection beside it, and Binding "r" { '
    'Server_Max_Outbound_Connections = 3 } caps the binding: 3 at once, not the node\'s 4')

is_(d.outcomes('TP'), [], 'no T or P line in the reserve run')
d.stop()
t.done()
