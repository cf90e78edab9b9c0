#!/usr/bin/env python3
"""b0008-xclient: XCLIENT (Postfix semantics: ADDR, NAME, HELO, PORT; the new
220 greeting; refused where the ACL does not enable it), XREMOTEIP and
XDUMPCONTEXT against the real daemon.  A changed client address is what
the relay check (Relay_Hosts), XDUMPCONTEXT, the mainlog and the
rejectlog see."""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, like, status  # noqa: E402

t.netns()

P = 2620
ESC = 'ENHANCEDSTATUSCODES [ extension = ENHANCEDSTATUSCODES ]'
X = 'XCLIENT [ extension = XCLIENT ] XREMOTEIP [ extension = XREMOTEIP ]'
DUMP = 'XDUMPCONTEXT [ extension = XDUMPCONTEXT ]'
d = t.Sluiced('''Relay_Domains = ( "local.test" )
Relay_Hosts = ( "10.9.8.7/32" "2001:db8::/32" )
ESMTP_Listener = (
  127.0.0.1:%d [
    127.0.0.1/32 = ( %s %s %s context [ origin = "proxy" ] )
    127.0.0.2/32 = ( %s %s )
  ]
)
''' % (P, ESC, X, DUMP, ESC, DUMP)).start()
BANNER = '220 %s ESMTP sluice' % t.HOSTNAME

# ---------------------------------------------------------------- not enabled
c = t.Client(P, source='127.0.0.2')
r = c.ehlo()
ok('XCLIENT' not in r.text and 'XREMOTEIP' not in r.text,
   'EHLO does not offer XCLIENT/XREMOTEIP where the ACL does not enable them', str(r))
status(c.cmd('XCLIENT ADDR=10.9.8.7'), '500 5.5.1', 'XCLIENT where not enabled: 500 5.5.1')
status(c.cmd('XREMOTEIP 10.9.8.7'), '500 5.5.1', 'XREMOTEIP where not enabled: 500 5.5.1')
ctx, r = c.dumpcontext()
is_(ctx and ctx.get('remote_ip'), '127.0.0.2', 'and the client address is unchanged')
c.close()

# ---------------------------------------------------------------- XDUMPCONTEXT
c = t.Client(P)
r = c.ehlo('proxy.test')
like(r.text, r'(?m)^XCLIENT NAME ADDR PORT PROTO HELO LOGIN DESTADDR DESTPORT$',
     'EHLO offers XCLIENT with its attributes')
ok('XREMOTEIP' in r.lines and 'XDUMPCONTEXT' in r.lines, 'EHLO offers XREMOTEIP and XDUMPCONTEXT')
ctx, r = c.dumpcontext()
status(r, '250 2.0.0', 'XDUMPCONTEXT: 250 2.0.0')
ok(r is not None and all(x.startswith('250-2.0.0 [connection] ') for x in r.raw[:-1]),
   'XDUMPCONTEXT: every line but the last reads "250-2.0.0 [connection] name value"', str(r))
is_(r and r.last, '250 2.0.0 XDUMPCONTEXT complete', 'XDUMPCONTEXT: the last line')
is_(ctx and ctx.get('remote_ip'), '127.0.0.1', 'XDUMPCONTEXT shows the client address')
is_(ctx and ctx.get('ehlo_domain'), 'proxy.test', 'XDUMPCONTEXT shows the EHLO domain')
is_(ctx and ctx.get('origin'), 'proxy', 'XDUMPCONTEXT shows the ACL context variables')
like(ctx and ctx.get('session_id'), '^%s$' % t.CONNID_RE, 'XDUMPCONTEXT shows the session id')
status(c.cmd('XDUMPCONTEXT now'), '501 5.5.4', 'XDUMPCONTEXT with an argument: 501 5.5.4')

# ---------------------------------------------------------------- XCLIENT
c.cmd('MAIL FROM:<a@any.test>')
status(c.cmd('RCPT TO:<b@elsewhere.test>'), '550 5.7.1', 'before XCLIENT: 127.0.0.1 may not relay')
status(c.cmd('XCLIENT ADDR=10.9.8.7'), '503 5.5.1', 'XCLIENT inside a transaction: 503 5.5.1')
c.cmd('RSET')
status(c.cmd('XCLIENT ADDR=999.1.1.1'), '501 5.5.4', 'XCLIENT with a bad ADDR: 501 5.5.4')
status(c.cmd('XCLIENT COLOUR=red'), '501 5.5.4', 'XCLIENT with an unknown attribute: 501 5.5.4')
status(c.cmd('XCLIENT'), '501 5.5.4', 'XCLIENT without attributes: 501 5.5.4')
status(c.cmd('XCLIENT HELO=two words'), '501 5.5.4', 'XCLIENT HELO= with a space: 501 5.5.4')
r = c.cmd('XCLIENT ADDR=10.9.8.7 NAME=relay.example.org PORT=4242 HELO=proxied.example.org')
is_(r and r.raw, [BANNER], 'XCLIENT accepted: a new 220 greeting, no enhanced code')
ctx, _ = c.dumpcontext()
is_(ctx and ctx.get('remote_ip'), '10.9.8.7', 'after XCLIENT ADDR=: XDUMPCONTEXT shows the new address')
is_(ctx and ctx.get('ehlo_domain'), 'proxied.example.org', 'after XCLIENT HELO=: the new HELO name')
is_(ctx and ctx.get('xclient_name'), 'relay.example.org', 'after XCLIENT NAME=: the client name')
status(c.ehlo('proxy.test'), '250', 'EHLO again after XCLIENT')
status(c.cmd('MAIL FROM:<a@any.test>'), '250 2.1.0', 'after XCLIENT: MAIL')
lport = c.local_port
status(c.cmd('RCPT TO:<b@elsewhere.test>'), '250 2.1.5',
       'after XCLIENT ADDR=10.9.8.7: the relay check sees the new address (Relay_Hosts)')
status(c.cmd('DATA'), '354', 'DATA')
c.send(t.message('xclient') + b'.\r\n')
r = c.reply()
status(r, '250 2.0.0', 'the relayed message is queued')
got = d.wait_r_lines(t.queue_id(r.text) if r else None)
is_(got and got[0][9], '10.9.8.7', 'the mainlog R line shows the XCLIENT address')
c.cmd('FROB')  # a refusal for the rejectlog
rej = d.wait_log('rejectlog', r'C="%s".*unknown command' % (got[0][3] if got else 'none'))
like(rej, r'R="10\.9\.8\.7:4242"', 'the rejectlog shows the XCLIENT address and PORT as R="ip:port"')
ok(rej is None or 'R="127.0.0.1:%d"' % lport not in rej, 'and not the proxy\'s own address')

r = c.cmd('XCLIENT ADDR=IPV6:2001:db8::25')
is_(r and r.raw, [BANNER], 'XCLIENT ADDR=IPV6:...: accepted')
ctx, _ = c.dumpcontext()
is_(ctx and ctx.get('remote_ip'), '2001:db8::25', 'XDUMPCONTEXT shows the IPv6 address')
r = c.cmd('XCLIENT ADDR=[UNAVAILABLE] NAME=[TEMPUNAVAIL]')
is_(r and r.raw, [BANNER], 'XCLIENT ADDR=[UNAVAILABLE]: accepted')
c.close()

# ---------------------------------------------------------------- XREMOTEIP
c = t.Client(P)
c.ehlo()
c.cmd('MAIL FROM:<a@any.test>')
status(c.cmd('RCPT TO:<b@elsewhere.test>'), '550 5.7.1', 'before XREMOTEIP: no relaying')
status(c.cmd('XREMOTEIP 10.9.8.7'), '250 2.0.0', 'XREMOTEIP inside a transaction: 250 2.0.0')
status(c.cmd('RCPT TO:<b@elsewhere.test>'), '250 2.1.5',
       'after XREMOTEIP 10.9.8.7: the relay check sees the new address')
status(c.cmd('DATA'), '354', 'DATA')
c.send(t.message('xremoteip') + b'.\r\n')
r = c.reply()
status(r, '250 2.0.0', 'the message is queued')
got = d.wait_r_lines(t.queue_id(r.text) if r else None)
is_(got and got[0][9], '10.9.8.7', 'the mainlog R line shows the XREMOTEIP address')
status(c.cmd('XREMOTEIP 10.9.8'), '501 5.5.4', 'XREMOTEIP with a bad address: 501 5.5.4')
status(c.cmd('XREMOTEIP'), '501 5.5.4', 'XREMOTEIP without an address: 501 5.5.4')
status(c.cmd('XREMOTEIP 2001:db8::7'), '250 2.0.0', 'XREMOTEIP with an IPv6 address: 250 2.0.0')
ctx, _ = c.dumpcontext()
is_(ctx and ctx.get('remote_ip'), '2001:db8::7', 'XDUMPCONTEXT shows it')
c.close()
d.stop()
t.done()
