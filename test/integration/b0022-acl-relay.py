#!/usr/bin/env python3
"""b0022-acl-relay: listener ACL forms and relay rights.

  - `relay_hosts ( ... )` inside a listener ACL entry (the form of
    conf.ref.relay_hosts's Example 9.8) is accepted and grants relaying to
    the listed clients only, on top of the entry's other properties;
  - a Unix-socket client is 127.0.0.1 for Relay_Hosts as it is for the ACL:
    with Relay_Hosts = ( "127.0.0.0/8" ) it relays, as TCP from 127.0.0.1
    does, and its Received header and mainlog name 127.0.0.1;
  - a chain of `continue` entries that could apply more than 16 entries to
    one client is a configuration error with its file:line; 16 apply."""
import os
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, like, status  # noqa: E402

t.netns()

P, P2, P3 = 2880, 2881, 2882
ESC = 'ENHANCEDSTATUSCODES [ extension = ENHANCEDSTATUSCODES ]'

# ---------------------------------------------------------------- relay_hosts ( ) in an ACL entry
d = t.Sluiced('''Relay_Domains = ( "local.test" )
ESMTP_Listener = (
  127.0.0.1:%d [
    0.0.0.0/0 = (
      %s
      relay_hosts (
        127.0.0.2
        10.0.0.0/24
      )
      personality [ banner_hostname = "acl.example" ]
      continue
    )
    127.0.0.4/32 = ( personality [ banner_hostname = "four.example" ] )
  ]
)
''' % (P, ESC), name='acl-relay').start()


def rcpt_from(src, rcpt='x@elsewhere.test'):
    with t.Client(P, source=src) as c:
        banner = c.banner
        c.ehlo()
        c.cmd('MAIL FROM:<a@local.test>')
        return banner, c.cmd('RCPT TO:<%s>' % rcpt)


banner, r = rcpt_from('127.0.0.2')
like(banner and banner.last, r'acl\.example', 'the entry\'s personality applies too')
status(r, '250 2.1.5', 'relay_hosts ( ... ) in the ACL entry: a listed client relays')
banner, r = rcpt_from('127.0.0.3')
status(r, '550 5.7.1', 'a client the entry matches but relay_hosts does not list: 550 5.7.1')
banner, r = rcpt_from('127.0.0.3', 'b@local.test')
status(r, '250 2.1.5', 'it still sends to Relay_Domains')
banner, r = rcpt_from('127.0.0.4')
like(banner and banner.last, r'four\.example', 'continue: the next entry applies on top')
status(r, '550 5.7.1', 'and relay_hosts of the first entry does not list 127.0.0.4')
d.stop()

# ---------------------------------------------------------------- Unix-socket clients are 127.0.0.1
u = t.Sluiced('', name='unix-relay')
sock = u.path('smtp.sock')
u.write_conf('''Relay_Hosts = ( "127.0.0.0/8" )
ESMTP_Listener = (
  127.0.0.1:%d [ 0.0.0.0/0 = ( %s ) ]
  "%s" [ 0.0.0.0/0 = ( %s ) ]
)
''' % (P2, ESC, sock, ESC))
u.start()
with t.Client(P2) as c:
    c.ehlo()
    c.cmd('MAIL FROM:<a@src.test>')
    status(c.cmd('RCPT TO:<x@elsewhere.test>'), '250 2.1.5',
           'Relay_Hosts = 127.0.0.0/8: TCP from 127.0.0.1 relays')
with t.Client(path=sock) as c:
    c.ehlo()
    c.cmd('MAIL FROM:<a@src.test>')
    status(c.cmd('RCPT TO:<x@elsewhere.test>'), '250 2.1.5',
           'Relay_Hosts = 127.0.0.0/8: a Unix-socket client relays too')
with t.Client(path=sock) as c:
    rs = t.send_message(c, 'a@src.test', ['x@elsewhere.test'], t.message('unix') + b'.\r\n')
qid = t.queue_id(rs[-1].text) if rs[-1] else None
got = u.wait_r_lines(qid)
ok(got and got[0][9] == '127.0.0.1', 'the mainlog names the Unix-socket client 127.0.0.1',
   'R: %s' % got)
u.stop()

# ---------------------------------------------------------------- at most 16 entries apply
def chain_conf(n, ctx=False):
    """n nested `continue` entries for 127.0.0.1, then a last one."""
    entries = ''.join('    127.0.0.0/%d = ( %s continue )\n'
                      % (8 + i, 'context [ v%02d = "%d" ]' % (i, i) if ctx else '')
                      for i in range(n - 1))
    return ('ESMTP_Listener = (\n  127.0.0.1:%d [\n%s    127.0.0.1/32 = ( %s %s )\n  ]\n)\n'
            % (P3, entries, 'XDUMPCONTEXT [ extension = XDUMPCONTEXT ]',
               'context [ last = "yes" ]' if ctx else ''))


bad = t.Sluiced(chain_conf(17), name='acl17')
r = subprocess.run([t.SLUICED, '-t', '-c', bad.conf_path], capture_output=True, text=True,
                   timeout=t.DEADLINE)
is_(r.returncode, 1, '17 entries that can all apply to one client: sluiced -t fails')
line = 1 + [i for i, ln in enumerate(open(bad.conf_path).read().splitlines())
            if '127.0.0.1/32' in ln][0]
like(r.stderr, r'sluice\.conf:%d:\d+: ACL entry 127\.0\.0\.1/32 of 127\.0\.0\.1:%d can be the '
     r'17th to apply .* at most 16' % (line, P3), 'the error names the file:line of the 17th')
with open(bad.conf_path, 'w') as f:
    f.write('ESMTP_Listener = (\n  127.0.0.1:%d [ 0.0.0.0/0 = ( frob ( 1.2.3.4 ) ) ]\n)\n' % P3)
r = subprocess.run([t.SLUICED, '-t', '-c', bad.conf_path], capture_output=True, text=True,
                   timeout=t.DEADLINE)
like(r.stderr, r'sluice\.conf:2:\d+: .frob \( \.\.\. \). is not an ACL property',
     'only relay_hosts takes the ( ... ) form in an ACL entry')
g = t.Sluiced(chain_conf(16, ctx=True), name='acl16').start()
with t.Client(P3) as c:
    c.ehlo()
    ctx, _ = c.dumpcontext()
    ok(ctx and all(ctx.get('v%02d' % i) == str(i) for i in range(15)) and ctx.get('last') == 'yes',
       'a chain of 16: every entry applies (16 context variables)', ctx)
g.stop()
t.done()
