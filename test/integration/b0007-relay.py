#!/usr/bin/env python3
"""b0007-relay: who may send mail to which domain, against the real daemon.
Closed by default (550 5.7.1 for a domain sluice neither relays for nor
accepts); Relay_Domains with exact names and *.globs; Relay_Hosts (CIDR,
global and in a personality); relay_for_sending_domains open and with a
list of sender domains.  Clients connect from several 127/8 addresses."""
import os
import re
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, like, status  # noqa: E402

t.netns()

ESC = 'ENHANCEDSTATUSCODES [ extension = ENHANCEDSTATUSCODES ]'

# ---------------------------------------------------------------- closed by default
P0 = 2610
d0 = t.Sluiced(t.listener('127.0.0.1:%d' % P0, t.ESC_ACL), name='closed').start()
c = t.Client(P0)
c.ehlo()
status(c.cmd('MAIL FROM:<a@client1.com>'), '250 2.1.0', 'closed relay: MAIL is fine')
lport = c.local_port
for rcpt in ('x@elsewhere.test', 'x@local.test', 'x@[127.0.0.1]', 'x@localhost'):
    r = c.cmd('RCPT TO:<%s>' % rcpt)
    status(r, '550 5.7.1', 'closed by default: RCPT TO:<%s> gets 550 5.7.1' % rcpt)
like(r and r.text, 'Relaying denied', 'the reply says relaying is denied')
status(c.cmd('RCPT TO:<postmaster>'), '250 2.1.5', 'closed relay: RCPT TO:<postmaster> is accepted')
status(c.cmd('DATA'), '354', 'DATA with postmaster as the only recipient')
c.send(t.message('to postmaster') + b'.\r\n')
r = c.reply()
status(r, '250 2.0.0', 'a message to <postmaster> is queued')
got = d0.wait_r_lines(t.queue_id(r.text) if r else None)
ok(got and got[0][5:7] == ['postmaster', ''], 'its R line: local part postmaster, no domain',
   'R: %s' % got)
c.close()
rej = d0.rejects_from(lport, timeout=t.DEADLINE)
ok(len(rej) == 4 and all(re.search(r'P="awaiting rcptto" E=550 M=relay CTXCONN=\[.*\] '
                                    r'CTXMESS=\[.*\] Relaying denied$', x) for x in rej),
   'each refused RCPT has a rejectlog line: P="awaiting rcptto" E=550 M=relay',
   *rej)
d0.stop()

# ---------------------------------------------------------------- the rules
P, PD = 2611, 2612
has_v6 = t.has_ipv6_loopback()
conf = '''
Relay_Domains = ( "example.com" "*.example.net" "*example.org" )
Relay_Hosts = ( "127.0.0.2/32" "127.0.1.0/24" "::1" )
ESMTP_Listener = (
  %(DUAL)s
  127.0.0.1:%(P)d [
    127.0.0.3/32 = ( %(ESC)s personality [ Relay_Hosts = ( "127.0.0.3" ) ] )
    127.0.0.4/32 = ( %(ESC)s relay_for_sending_domains )
    127.0.0.5/32 = ( %(ESC)s relay_for_sending_domains [ client1.com = true client2.com = true
                                                        client3.com = false ] )
    127.0.0.6/32 = ( %(ESC)s relay_for_sending_domains [ client1.com = false ] )
    127.0.1.7/32 = ( %(ESC)s relay_for_sending_domains [ client1.com = true ] )
    0.0.0.0/0    = ( %(ESC)s )
  ]
)
''' % dict(P=P, ESC=ESC, DUAL='*:%d <proto=both>' % PD if has_v6 else '')
d = t.Sluiced(conf).start()


def rcpt_status(src, sender, rcpt, port=P):
    host = '::1' if src == '::1' else '127.0.0.1'
    with t.Client(port, host=host, source=None if src == '::1' else src) as c:
        c.ehlo()
        r = c.cmd('MAIL FROM:<%s>' % sender)
        if r is None or r.code != 250:
            return 'MAIL refused: %s' % r
        r = c.cmd('RCPT TO:<%s>' % rcpt)
        return r.status if r else None


# Relay_Domains: for anyone (here 127.0.0.1, who has no other right)
for rcpt, want, why in (
        ('a@example.com', '250 2.1.5', 'an exact domain'),
        ('a@EXAMPLE.Com', '250 2.1.5', 'an exact domain, in another case'),
        ('a@sub.example.com', '550 5.7.1', 'a subdomain of an exact domain (not listed)'),
        ('a@sub.example.net', '250 2.1.5', 'a subdomain matching *.example.net'),
        ('a@deep.sub.example.net', '250 2.1.5', 'a deeper subdomain matching *.example.net'),
        ('a@example.net', '550 5.7.1', 'example.net itself for *.example.net (the dot is required)'),
        ('a@example.org', '250 2.1.5', 'example.org for *example.org'),
        ('a@badexample.org', '250 2.1.5', 'badexample.org for *example.org (a bare suffix)'),
        ('a@example.org.evil.test', '550 5.7.1', 'example.org.evil.test (not a suffix match)'),
        ('a@elsewhere.test', '550 5.7.1', 'an unlisted domain')):
    is_(rcpt_status('127.0.0.1', 'x@any.test', rcpt), want, 'Relay_Domains: %s: %s' % (why, want))

# Relay_Hosts (global CIDR) and in a personality
is_(rcpt_status('127.0.0.2', 'x@any.test', 'a@elsewhere.test'), '250 2.1.5',
    'Relay_Hosts 127.0.0.2/32: that client relays anywhere')
is_(rcpt_status('127.0.1.9', 'x@any.test', 'a@elsewhere.test'), '250 2.1.5',
    'Relay_Hosts 127.0.1.0/24: a client inside the block relays')
is_(rcpt_status('127.0.2.1', 'x@any.test', 'a@elsewhere.test'), '550 5.7.1',
    'Relay_Hosts: a client outside every block: 550 5.7.1')
if has_v6:
    is_(rcpt_status('::1', 'x@any.test', 'a@elsewhere.test', PD), '250',
        'Relay_Hosts "::1" (the reference\'s IPv6 form): an IPv6 client relays')
    is_(rcpt_status('127.0.0.2', 'x@any.test', 'a@elsewhere.test', PD), '250',
        'Relay_Hosts 127.0.0.2/32 matches that client on a dual-stack listener too')
    is_(rcpt_status('127.0.0.1', 'x@any.test', 'a@elsewhere.test', PD), '550',
        'and a dual-stack listener still refuses other IPv4 clients: 550')
else:
    for n in range(3):
        t.skip('IPv6 Relay_Hosts', '::1 is not configured on lo')
is_(rcpt_status('127.0.0.3', 'x@any.test', 'a@elsewhere.test'), '250 2.1.5',
    'Relay_Hosts in the personality of an ACL entry: that client relays')
is_(rcpt_status('127.0.1.7', 'x@other.test', 'a@elsewhere.test'), '250 2.1.5',
    'Relay_Hosts overrides relay_for_sending_domains for the hosts it lists')

# relay_for_sending_domains
is_(rcpt_status('127.0.0.4', 'x@any.test', 'a@elsewhere.test'), '250 2.1.5',
    'relay_for_sending_domains without parameters: open relay for that client')
is_(rcpt_status('127.0.0.4', '', 'a@elsewhere.test'), '250 2.1.5',
    'relay_for_sending_domains without parameters: the null sender relays too')
for sender, want, why in (
        ('x@client1.com', '250 2.1.5', 'a listed sender domain'),
        ('x@CLIENT2.com', '250 2.1.5', 'another listed sender domain, in another case'),
        ('x@client3.com', '550 5.7.1', 'a sender domain set to false'),
        ('x@sub.client1.com', '550 5.7.1', 'a subdomain of a listed sender domain'),
        ('x@other.test', '550 5.7.1', 'an unlisted sender domain'),
        ('', '550 5.7.1', 'the null sender')):
    is_(rcpt_status('127.0.0.5', sender, 'a@elsewhere.test'), want,
        'relay_for_sending_domains [ list ]: %s: %s' % (why, want))
is_(rcpt_status('127.0.0.5', 'x@other.test', 'a@example.com'), '250 2.1.5',
    'relay_for_sending_domains [ list ]: Relay_Domains still take any sender')
is_(rcpt_status('127.0.0.6', 'x@client1.com', 'a@elsewhere.test'), '550 5.7.1',
    'relay_for_sending_domains [ only false entries ]: relays for nobody')
is_(rcpt_status('127.0.0.6', '', 'a@elsewhere.test'), '550 5.7.1',
    'relay_for_sending_domains [ only false entries ]: not for the null sender either')

# a relayed message is queued and logged with the real recipient
with t.Client(P, source='127.0.0.4') as c:
    rs = t.send_message(c, 'x@any.test', ['far@elsewhere.test'], t.message('relayed') + b'.\r\n')
status(rs[-1], '250 2.0.0', 'a relayed message is queued')
got = d.wait_r_lines(t.queue_id(rs[-1].text) if rs[-1] else None)
ok(got and got[0][5:10] == ['far', 'elsewhere.test', 'x', 'any.test', '127.0.0.4'],
   'its R line: recipient, sender and the client address', 'R: %s' % got)
d.stop()
t.done()
