#!/usr/bin/env python3
"""b0020-validate-stage: loadable modules on the validation stage.

- The session is suspended while a verdict is pending: commands pipelined
  before the banner are read only after the connect verdict (the rdns
  module) came back: XDUMPCONTEXT already shows its result, and after a
  450 the pipelined EHLO is refused.
- `passive` (conf.ref.validate): the module is loaded but its hooks are
  not called: no lookup, no 450 with Require_PTR.
- Modules run in the order they are declared: two rdns instances
  (<name="...">) with Require_PTR; the first declared decides (rejectlog
  M=<name>), and __bypass_<name> skips one instance, __bypass_rdns the
  unnamed one.
- XDUMPCONTEXT shows ehlo_domain and ehlo_string (the line as sent, as in
  the reference's example) and, inside a transaction, the message context.

As in b0013, only /etc/hosts answers in the test's network namespace:
127.0.0.1 has a name there and 127.0.0.2 none (checked first)."""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, like, status  # noqa: E402

t.netns()


name_of = t.name_of


LOCAL = name_of('127.0.0.1')
if LOCAL is None or name_of('127.0.0.2') is not None or name_of('127.0.0.3') is not None:
    t.skip_all('needs /etc/hosts to name 127.0.0.1 and not 127.0.0.2/3')

P1, P2, P3, P4 = 2700, 2701, 2702, 2703
ESC = 'ENHANCEDSTATUSCODES [ extension = ENHANCEDSTATUSCODES ]'
DUMP = 'XDUMPCONTEXT [ extension = XDUMPCONTEXT ]'
ACL = '0.0.0.0/0 = ( %s %s relay_for_sending_domains )' % (ESC, DUMP)

# ---------------------------------------------------------------- suspended while pending
d = t.Sluiced(t.listener('127.0.0.1:%d' % P1, ACL) +
              'rdns { Require_PTR = true }\n').start()
c = t.Client(P1, greet=False)
c.send('EHLO client.test\r\nXDUMPCONTEXT\r\n')
banner, ehlo, dump = c.replies(3)
status(banner, '220', 'pipelined before the banner: the banner comes first')
status(ehlo, '250', 'then the EHLO')
ok(dump is not None and any(ln.endswith('[connection] rdns ' + LOCAL) for ln in dump.lines),
   'the pipelined XDUMPCONTEXT already sees the connect verdict\'s result (rdns)', str(dump))
c.close()
c = t.Client(P1, greet=False, source='127.0.0.2')
c.send('EHLO client.test\r\n')
banner, ehlo = c.replies(2)
status(banner, '450 4.7.25', 'no PTR: the connect verdict is a tempfail, 450 4.7.25')
status(ehlo, '503 5.5.1', 'the EHLO sent before it was read only after it: refused')
c.close()
d.stop()

# ---------------------------------------------------------------- passive
d = t.Sluiced(t.listener('127.0.0.1:%d' % P2, ACL) +
              'Validate validate/rdns rdns passive { Require_PTR = true }\n').start()
c = t.Client(P2, source='127.0.0.2')
status(c.banner, '220', 'passive rdns with Require_PTR: a client without PTR is served')
c.ehlo()
ctx, r = c.dumpcontext()
ok(ctx is not None and 'rdns' not in ctx, 'passive: its hook was not called (no rdns variable)',
   str(r))
c.close()
d.stop()

# ---------------------------------------------------------------- declared order, bypass
ORDER_ACL = '''127.0.0.2/32 = ( %(E)s %(D)s )
127.0.0.3/32 = ( %(E)s %(D)s context [ __bypass_first = true ] )
127.0.0.0/8 = ( %(E)s %(D)s context [ __bypass_first = true __bypass_second = true
                                       __bypass_rdns = true ] )''' % {'E': ESC, 'D': DUMP}


def order_conf(names):
    return (t.listener('127.0.0.1:%d' % P3, ORDER_ACL) +
            ''.join('Validate validate/rdns rdns <name="%s"> { Require_PTR = true }\n' % n
                    for n in names) +
            'rdns { Require_PTR = true }\n')


def refused_by(src):
    c = t.Client(P3, source=src)
    lport = c.local_port
    code = c.banner.status if c.banner else None
    c.close()
    lines = d.rejects_from(lport, timeout=t.DEADLINE) if code and code.startswith('4') else []
    return code, (lines[0] if lines else '')


d = t.Sluiced(order_conf(['first', 'second'])).start()
code, ln = refused_by('127.0.0.2')
is_(code, '450 4.7.25', 'two instances with Require_PTR: 450 4.7.25')
like(ln, r' P="connect" E=450 M=first ', 'declared first, "first" decides')
code, ln = refused_by('127.0.0.3')
like(ln, r' P="connect" E=450 M=second ', '__bypass_first skips it: "second" decides')
d.stop()
d = t.Sluiced(order_conf(['second', 'first'])).start()
code, ln = refused_by('127.0.0.2')
like(ln, r' P="connect" E=450 M=second ', 'declared the other way round, "second" decides')
d.stop()
# 127.0.0.4 bypasses both named instances and the unnamed "rdns" one: not refused.
d = t.Sluiced(order_conf(['first', 'second'])).start()
c = t.Client(P3, source='127.0.0.4')
status(c.banner, '220', '__bypass_first, __bypass_second and __bypass_rdns: served')
c.close()
d.stop()
d = t.Sluiced(t.listener('127.0.0.1:%d' % P3, ORDER_ACL) +
              'rdns { Require_PTR = true }\n').start()
c = t.Client(P3, source='127.0.0.4')
status(c.banner, '220', '__bypass_rdns skips the rdns module')
c.ehlo()
ctx, r = c.dumpcontext()
ok(ctx is not None and 'rdns' not in ctx, 'bypassed: no lookup (no rdns variable)', str(r))
c.close()
c = t.Client(P3, source='127.0.0.2')
status(c.banner, '450 4.7.25', 'without the bypass the same client is refused')
c.close()
d.stop()

# ---------------------------------------------------------------- XDUMPCONTEXT


def dump_lines(r):
    return [ln[6:] if ln.startswith('2.0.0 ') else ln for ln in (r.lines if r else [])]


d = t.Sluiced(t.listener('127.0.0.1:%d' % P4, ACL + '\n')).start()
c = t.Client(P4)
c.cmd('ehlo there')
r = c.cmd('XDUMPCONTEXT')
ok('[connection] ehlo_domain there' in dump_lines(r) and
   '[connection] ehlo_string ehlo there' in dump_lines(r),
   'ehlo_domain and ehlo_string as in the reference\'s example', str(r))
is_(r and r.last, '250 2.0.0 XDUMPCONTEXT complete', 'the last line')
ok(r is not None and not any(ln.startswith('[message]') for ln in dump_lines(r)),
   'no message context outside a transaction', str(r))
c.cmd('MAIL FROM:<a@x.test>')
c.cmd('RCPT TO:<b@y.test>')
c.cmd('RCPT TO:<c@y.test>')
r = c.cmd('XDUMPCONTEXT')
msg = [ln for ln in dump_lines(r) if ln.startswith('[message]')]
is_(msg, ['[message] mailfrom a@x.test', '[message] rcptto b@y.test', '[message] rcptto c@y.test'],
    'inside a transaction: the message context')
c.close()
d.stop()
t.done()
