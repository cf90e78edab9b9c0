#!/usr/bin/env python3
"""b0004-acl: the listener IP ACL walk against the real daemon.  The first
matching entry applies; `continue` lets the next matching entry apply on
top; an entry without continue ends the walk; later entries override
earlier ones where both set a personality option; context [ ] variables
are visible through XDUMPCONTEXT; __bypass_relay = true in the context
lets relaying through.  Clients connect from 127.0.0.1, 127.0.0.2 and
127.0.0.3 (all on lo in the test's namespace) and ::1 when it exists."""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, status  # noqa: E402

t.netns()

REF, FIRST, CHAIN, BYPASS, DUAL = 2570, 2571, 2572, 2573, 2574
ESC = 'ENHANCEDSTATUSCODES [ extension = ENHANCEDSTATUSCODES ]'
DUMP = 'XDUMPCONTEXT [ extension = XDUMPCONTEXT ]'
conf = '''
Relay_Domains = ( "local.test" )
ESMTP_Listener = (
  # The reference's ESMTP_Listener example, on loopback addresses.
  127.0.0.1:%(REF)d [
    ### Globally set a 5 minute timeout on IPv4 connections
    ### Continue means we do not stop here... keep matching and applying
    0.0.0.0/0 = ( personality [
                    idle_time = 300
                    banner_hostname = "example.com"
                    received_hostname = "mx-0-1.example.com"
                    static_banner = "220 my.mail.server ESMTP"
                  ]
                  %(ESC)s
                  continue )
    ### We are an open relay for 127.0.0.2 (10.1.2.3 in the reference)
    127.0.0.2/32 = ( relay_for_sending_domains )
    ### 127.0.0.3 (10.1.2.4) may relay for envelope senders of client1.com, client2.com
    127.0.0.3/32 = ( relay_for_sending_domains [
                       client1.com = true
                       client2.com = true
                     ]
                     context [ client = "ACME Inc." ]
                     %(DUMP)s )
  ]
  # First match wins; without continue the walk ends there.
  127.0.0.1:%(FIRST)d [
    127.0.0.2/32 = ( personality [ banner_hostname = "first.example" ] )
    127.0.0.0/8  = ( personality [ banner_hostname = "second.example" ] %(ESC)s )
    0.0.0.0/0    = ( personality [ banner_hostname = "third.example" ] %(DUMP)s )
  ]
  # continue chains: each applied entry on top of the one before.
  127.0.0.1:%(CHAIN)d [
    0.0.0.0/0    = ( personality [ banner_hostname = "all.example" message_size = 1000 ]
                     context [ level = "all" tier = "base" ] %(DUMP)s continue )
    127.0.0.0/8  = ( personality [ banner_hostname = "loop.example" ]
                     context [ level = "loop" ] %(ESC)s continue )
    127.0.0.2/32 = ( personality [ message_size = 2000 ] context [ host = "two" ] )
    127.0.0.0/8  = ( personality [ banner_hostname = "last.example" ] context [ host = "one" ] )
    0.0.0.0/0    = ( personality [ banner_hostname = "never.example" ] )
  ]
  # __bypass_<module> in the context skips that validation module.
  127.0.0.1:%(BYPASS)d [
    127.0.0.2/32 = ( context [ __bypass_relay = true ] %(ESC)s %(DUMP)s )
    127.0.0.3/32 = ( context [ __bypass_relay = false ] %(ESC)s )
    0.0.0.0/0    = ( %(ESC)s )
  ]
%(DUAL_LISTENER)s)
'''
has_v6 = t.has_ipv6_loopback()
# IPv4 and IPv6 peers of one dual-stack listener.
DUAL_LISTENER = '''  *:%d <proto=both> [
    127.0.0.0/8 = ( personality [ banner_hostname = "v4.example" ] )
    ::1/128     = ( personality [ banner_hostname = "v6.example" ] continue )
    ::/0        = ( personality [ message_size = 4242 ] )
  ]
''' % DUAL if has_v6 else ''
d = t.Sluiced(conf % dict(REF=REF, FIRST=FIRST, CHAIN=CHAIN, BYPASS=BYPASS, ESC=ESC, DUMP=DUMP,
                          DUAL_LISTENER=DUAL_LISTENER)).start()


def client(port, src='127.0.0.1', host='127.0.0.1'):
    return t.Client(port, host=host, source=src if host == '127.0.0.1' else None)


def relay_try(c, sender, rcpt='someone@elsewhere.test'):
    """MAIL + RCPT to a foreign domain; returns the RCPT reply, then RSET."""
    c.cmd('MAIL FROM:<%s>' % sender)
    r = c.cmd('RCPT TO:<%s>' % rcpt)
    c.cmd('RSET')
    return r


# ---------------------------------------------------------------- the reference's example
c = client(REF, '127.0.0.1')
is_(c.banner.raw, ['220 my.mail.server ESMTP'],
    'reference example: 0.0.0.0/0 ... continue gives everyone the static banner')
r = c.ehlo()
is_(r.raw[0], '250-example.com', 'reference example: banner_hostname of the continue entry in EHLO')
ok('ENHANCEDSTATUSCODES' in r.text, 'reference example: the continue entry\'s extension applies')
status(relay_try(c, 'a@client1.com'), '550 5.7.1',
       'reference example: 127.0.0.1 (only the catch-all) may not relay: 550 5.7.1')
status(c.cmd('XDUMPCONTEXT'), '500 5.5.1', 'reference example: no XDUMPCONTEXT for 127.0.0.1')
c.close()
c = client(REF, '127.0.0.2')
is_(c.banner.raw, ['220 my.mail.server ESMTP'], 'reference example: 127.0.0.2 gets the static '
    'banner too (the catch-all applied, then its own entry)')
c.ehlo()
status(relay_try(c, 'a@anything.example'), '250 2.1.5',
       'reference example: relay_for_sending_domains without parameters: open relay for 127.0.0.2')
c.close()
c = client(REF, '127.0.0.3')
c.ehlo()
status(relay_try(c, 'a@client1.com'), '250 2.1.5',
       'reference example: 127.0.0.3 relays for a client1.com sender')
status(relay_try(c, 'a@client2.com'), '250 2.1.5',
       'reference example: 127.0.0.3 relays for a client2.com sender')
status(relay_try(c, 'a@client3.com'), '550 5.7.1',
       'reference example: 127.0.0.3 may not relay for a client3.com sender: 550 5.7.1')
status(relay_try(c, 'a@client3.com', 'x@local.test'), '250 2.1.5',
       'reference example: but mail for Relay_Domains is fine from any sender')
ctx, r = c.dumpcontext()
status(r, '250 2.0.0', 'reference example: XDUMPCONTEXT enabled by 127.0.0.3\'s entry')
is_(ctx and ctx.get('client'), 'ACME Inc.',
    'reference example: context [ client = "ACME Inc." ] is visible')
c.close()

# ---------------------------------------------------------------- first match, no continue
c = client(FIRST, '127.0.0.2')
is_(c.banner.last, '220 first.example ESMTP sluice', 'first match applies (127.0.0.2/32)')
r = c.ehlo()
ok('ENHANCEDSTATUSCODES' not in r.text and 'XDUMPCONTEXT' not in r.text,
   'an entry without continue ends the walk: nothing of the later entries applies', str(r))
c.close()
c = client(FIRST, '127.0.0.1')
is_(c.banner.last, '220 second.example ESMTP sluice',
    'a peer that misses the first entry gets the next that matches (127.0.0.0/8)')
r = c.ehlo()
ok('ENHANCEDSTATUSCODES' in r.text and 'XDUMPCONTEXT' not in r.text,
   'only that entry applies, not the catch-all after it', str(r))
c.close()

# ---------------------------------------------------------------- continue chains, overrides
c = client(CHAIN, '127.0.0.1')
is_(c.banner.last, '220 last.example ESMTP sluice', 'continue: 127.0.0.1 walks 0/0, 127/8, '
    'skips 127.0.0.2/32, applies the second 127/8; the last banner_hostname wins')
r = c.ehlo()
ok('SIZE 1000' in r.lines, 'continue: message_size of the first entry stays where no later '
   'entry sets it', str(r))
ok('ENHANCEDSTATUSCODES' in r.text and 'XDUMPCONTEXT' in r.text,
   'continue: extensions of every applied entry add up', str(r))
ctx, r = c.dumpcontext()
status(r, '250 2.0.0', 'XDUMPCONTEXT answers with 250 2.0.0 (ENHANCEDSTATUSCODES from the 2nd entry)')
ok(ctx is not None and ctx.get('level') == 'loop' and ctx.get('tier') == 'base'
   and ctx.get('host') == 'one', 'context: variables of every applied entry, later ones '
   'override (level=loop, tier=base, host=one)', 'context: %s' % ctx)
c.close()
c = client(CHAIN, '127.0.0.2')
is_(c.banner.last, '220 loop.example ESMTP sluice', 'continue: 127.0.0.2 stops at its own entry '
    '(no continue): the later 127/8 and 0/0 entries never apply')
r = c.ehlo()
ok('SIZE 2000' in r.lines, 'a later entry overrides message_size of an earlier one', str(r))
ctx, r = c.dumpcontext()
ok(ctx is not None and ctx.get('level') == 'loop' and ctx.get('host') == 'two',
   'context of 127.0.0.2: level=loop, host=two', 'context: %s' % ctx)
c.close()

# ---------------------------------------------------------------- __bypass_relay
c = client(BYPASS, '127.0.0.2')
c.ehlo()
status(relay_try(c, 'a@nowhere.example'), '250 2.1.5',
       'context [ __bypass_relay = true ] skips the relay check')
ctx, r = c.dumpcontext()
is_(ctx and ctx.get('__bypass_relay'), 'true', '__bypass_relay is a context variable like any other')
rs = t.send_message(c, 'a@nowhere.example', ['x@elsewhere.test'],
                    t.message('bypass') + b'.\r\n', ehlo=False)
status(rs[-1], '250 2.0.0', '__bypass_relay: the relayed message is accepted')
c.close()
c = client(BYPASS, '127.0.0.3')
c.ehlo()
status(relay_try(c, 'a@nowhere.example'), '550 5.7.1',
       'context [ __bypass_relay = false ] does not skip it: 550 5.7.1')
c.close()
c = client(BYPASS, '127.0.0.1')
c.ehlo()
status(relay_try(c, 'a@nowhere.example'), '550 5.7.1', 'without the variable: 550 5.7.1')
c.close()

# ---------------------------------------------------------------- IPv4 and IPv6 peers
if has_v6:
    c = client(DUAL, '127.0.0.1')
    is_(c.banner.last, '220 v4.example ESMTP sluice',
        'a dual-stack *:port: an IPv4 client matches the IPv4 entry (127.0.0.0/8)')
    c.close()
    c = client(DUAL, host='::1')
    is_(c.banner.last, '220 v6.example ESMTP sluice', 'an IPv6 client matches ::1/128')
    r = c.ehlo()
    ok('SIZE 4242' in r.lines, 'continue works for IPv6 entries too (::/0 applied on top)', str(r))
    c.close()
else:
    for n in range(3):
        t.skip('IPv6 ACL entries', '::1 is not configured on lo')
d.stop()
t.done()
