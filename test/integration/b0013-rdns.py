#!/usr/bin/env python3
"""b0013-rdns: the rdns validation module, loaded by name, runs off the
protocol thread (it calls the blocking resolver) before the banner: the
session waits for it, its result becomes the context variable "rdns", and
Require_PTR refuses a client without a reverse name with 450 4.7.25.

In the test's network namespace the resolver can reach no server, so only
/etc/hosts answers: 127.0.0.1 has a name there (localhost) and 127.0.0.2
normally has none.  The script checks that assumption first."""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, status  # noqa: E402

t.netns()


name_of = t.name_of


LOCAL = name_of('127.0.0.1')
if LOCAL is None or name_of('127.0.0.2') is not None:
    t.skip_all('needs /etc/hosts to name 127.0.0.1 and not 127.0.0.2')

P1, P2, P3 = 2630, 2631, 2632
ACL = ('0.0.0.0/0 = ( ENHANCEDSTATUSCODES [ extension = ENHANCEDSTATUSCODES ] '
       'XDUMPCONTEXT [ extension = XDUMPCONTEXT ] relay_for_sending_domains )')

# ---------------------------------------------------------------- not loaded: no lookup
d = t.Sluiced(t.listener('127.0.0.1:%d' % P1, ACL)).start()
c = t.Client(P1)
status(c.banner, '220', 'without an rdns block: the banner')
c.ehlo()
ctx, r = c.dumpcontext()
ok(ctx is not None and 'rdns' not in ctx, 'without an rdns block nothing is looked up', str(r))
c.close()
d.stop()

# ---------------------------------------------------------------- loaded, names recorded
d = t.Sluiced(t.listener('127.0.0.1:%d' % P2, ACL) +
              'Validate validate/rdns rdns { }\n').start()
c = t.Client(P2)
status(c.banner, '220', 'rdns loaded: a client with a reverse name gets the banner')
c.ehlo()
ctx, r = c.dumpcontext()
is_(ctx and ctx.get('rdns'), LOCAL, 'its context holds the reverse name')
c.close()
c = t.Client(P2, source='127.0.0.2')
status(c.banner, '220', 'a client without a reverse name still gets the banner (not required)')
c.ehlo()
ctx, r = c.dumpcontext()
is_(ctx and ctx.get('rdns'), 'unknown', 'its context says unknown')
# The name reaches the Received: header: the stored size grows by its length.
sizes = {}
for src in ('127.0.0.1', '127.0.0.2'):
    c2 = t.Client(P2, source=src)
    c2.ehlo('client.test')
    status(c2.cmd('MAIL FROM:<a@x.test>'), '250 2.1.0', 'MAIL from %s' % src)
    status(c2.cmd('RCPT TO:<b@y.test>'), '250 2.1.5', 'RCPT from %s' % src)
    status(c2.cmd('DATA'), '354', 'DATA from %s' % src)
    c2.send(t.message('rdns') + b'.\r\n')
    r = c2.reply()
    status(r, '250 2.0.0', 'message from %s queued' % src)
    qid = t.queue_id(r.text) if r else None
    lines = d.wait_r_lines(qid)
    sizes[src] = int(lines[0][10]) if lines else None
    c2.cmd('QUIT')
    c2.close()
ok(None not in sizes.values() and
   sizes['127.0.0.1'] - sizes['127.0.0.2'] == len(LOCAL + ' ') - len('unknown '),
   'the Received: header carries the reverse name (sizes %s)' % sizes)
c.close()
d.stop()

# ---------------------------------------------------------------- Require_PTR
d = t.Sluiced(t.listener('127.0.0.1:%d' % P3, ACL) +
              'rdns { Require_PTR = true Forward_Confirm = true }\n').start()
c = t.Client(P3)
status(c.banner, '220', 'Require_PTR: a client whose name resolves back is served')
c.close()
c = t.Client(P3, source='127.0.0.2')
status(c.banner, '450 4.7.25', 'Require_PTR: a client without a reverse name gets 450 4.7.25')
status(c.cmd('EHLO x.test'), '503 5.5.1', 'and every command after it is refused')
status(c.cmd('QUIT'), '221 2.0.0', 'but it may QUIT')
c.close()
lines = d.wait_log('rejectlog', r'P="connect" E=450 M=rdns')
ok(lines, 'the refusal is in the rejectlog with P="connect" and M=rdns', d.rejectlog())
d.stop()
t.done()
