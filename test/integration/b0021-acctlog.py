#!/usr/bin/env python3
"""b0021-acctlog: ec_logger's acctlog, acctlog_log_mode and log_errors, and
the context fields of the rejectlog.

  - the acctlog is created with acctlog_log_mode;
  - a Control_Listener session writes Momentum's authentication record
    (time@N@endpoint@peer@user@result) when the ACL admits or refuses it,
    and one authorization record per command
    (time@Z@endpoint@peer@user@result@command[@role]): a Unix-socket client
    is named by its uid (SO_PEERCRED) with an empty peer; a TCP client by
    its ip:port; a client without ALWAYS-ALLOW gets result 0 and no role;
  - rejectlog lines carry PATH/PATH_GRP "default" and CTXCONN (ehlo_string,
    ehlo_domain, the ACL's context variables) and CTXMESS (mailfrom_*);
  - log_errors = false keeps diagnostics out of the paniclog (stderr in the
    foreground still gets them)."""
import os
import socket
import stat
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, like, status  # noqa: E402

t.netns()

CTL = os.path.join(t.TOP_BUILDDIR, 'sluicectl')
P, C, P2 = 2870, 2871, 2872


def logger_opts(d, extra):
    """Add options to the ec_logger block the base configuration writes."""
    with open(d.conf_path) as f:
        text = f.read()
    with open(d.conf_path, 'w') as f:
        f.write(text.replace('heartbeat = 3600', 'heartbeat = 3600\n' + extra))


d = t.Sluiced('', name='acct')
sock = d.path('control.sock')
d.write_conf('''
Relay_Domains = ( "local.test" )
Control_Listener = (
  "%s" [ 0.0.0.0/0 = ( ALWAYS-ALLOW ) ]
  127.0.0.1:%d [ 127.0.0.3/32 = ( ) 0.0.0.0/0 = ( ALWAYS-ALLOW ) ]
)
''' % (sock, C) + t.listener('127.0.0.1:%d' % P, t.ESC_ACL.rstrip('\n').replace(
    ' )', ' context [ team = "blue sky" ] )')))
logger_opts(d, '  acctlog_log_mode = 0640')
d.start()
acct = d.path('log', 'acctlog.ec')


def acct_lines():
    try:
        with open(acct) as f:
            return [t.split_eclog(x) for x in f.read().splitlines() if x]
    except OSError:
        return []


def wait_acct(n):
    return t.wait_for(lambda: (lambda x: x if len(x) >= n else None)(acct_lines())) or acct_lines()


st = os.stat(acct) if os.path.exists(acct) else None
is_(st and oct(stat.S_IMODE(st.st_mode)), oct(0o640), 'the acctlog is created with acctlog_log_mode')

# ---------------------------------------------------------------- console over the Unix socket
r = subprocess.run([CTL, '-s', sock, 'version'], capture_output=True, timeout=t.DEADLINE)
ok(r.returncode == 0, 'sluicectl version over the Unix socket', r.stderr)
got = wait_acct(2)
uid = str(os.getuid())
is_([f[1:] for f in got[:2]],
    [['N', sock, '', uid, '1'], ['Z', sock, '', uid, '1', 'version', 'ALWAYS-ALLOW']],
    'Unix socket: N (admitted) then Z for the command: endpoint the socket path, no peer, '
    'the uid from SO_PEERCRED, role ALWAYS-ALLOW')
ok(all(f[0].isdigit() for f in got[:2]), 'each record starts with the time', got[:2])
seen = len(got)

# ---------------------------------------------------------------- console over TCP
r = subprocess.run([CTL, '-H', '127.0.0.1:%d' % C, 'config', 'get', 'Relay_Domains'],
                   capture_output=True, timeout=t.DEADLINE)
ok(r.returncode == 0, 'sluicectl over TCP from 127.0.0.1', r.stderr)
got = wait_acct(seen + 2)[seen:]
ep = '127.0.0.1:%d' % C
ok(len(got) >= 2 and got[0][1:3] == ['N', ep] and got[0][3].startswith('127.0.0.1:') and
   got[0][4:] == ['', '1'], 'TCP: N with the listener endpoint, the peer ip:port, no user',
   got[:1])
ok(len(got) >= 2 and got[1][1:] == ['Z', ep, got[0][3], '', '1', 'config get Relay_Domains',
                                    'ALWAYS-ALLOW'],
   'TCP: Z with the command words', got[1:2])
seen += len(got)

s = socket.create_connection(('127.0.0.1', C), timeout=t.DEADLINE, source_address=('127.0.0.3', 0))
lport = s.getsockname()[1]
s.sendall(b'shutdown\n')
while s.recv(4096):
    pass
s.close()
ok(d.running(), 'a refused shutdown does not stop sluiced')
got = wait_acct(seen + 2)[seen:]
is_([f[1:] for f in got[:2]],
    [['N', ep, '127.0.0.3:%d' % lport, '', '0'],
     ['Z', ep, '127.0.0.3:%d' % lport, '', '0', 'shutdown']],
    'a client the ACL gives no ALWAYS-ALLOW: N with 0, Z with 0 and no role')

# ---------------------------------------------------------------- rejectlog context
c = t.Client(P)
lport = c.local_port
status(c.cmd('FROB'), '500 5.5.1', 'an unknown command before EHLO')
c.ehlo('client.test')
c.cmd('MAIL FROM:<a.b@local.test>')
status(c.cmd('RCPT TO:<x@elsewhere.test>'), '550 5.7.1', 'a relay refusal')
c.cmd('QUIT')
c.close()
t.wait_for(lambda: len(d.rejects_from(lport)) >= 2)
rej = [t.parse_reject(x) for x in d.rejects_from(lport)]
ok(len(rej) == 2 and all(rej), 'two rejectlog lines, each in the documented layout',
   *d.rejects_from(lport))
if len(rej) == 2 and all(rej):
    is_((rej[0]['PATH'], rej[0]['PATH_GRP']), ('default', 'default'), 'PATH and PATH_GRP')
    is_(rej[0]['CTXCONN'], {'team': 'blue sky'}, 'before EHLO: CTXCONN holds the ACL context')
    is_(rej[0]['CTXMESS'], {}, 'before MAIL: CTXMESS is empty')
    is_(rej[1]['CTXCONN'], {'ehlo_string': 'EHLO client.test', 'ehlo_domain': 'client.test',
                            'team': 'blue sky'}, 'after EHLO: ehlo_string and ehlo_domain')
    is_(rej[1]['CTXMESS'], {'mailfrom_string': 'MAIL FROM:<a.b@local.test>',
                            'mailfrom_localpart': 'a.b', 'mailfrom_domain': 'local.test'},
        'after MAIL: CTXMESS holds mailfrom_string, _localpart and _domain')
    like(d.rejects_from(lport)[1], r' CTXCONN=\[ehlo_string="EHLO client\.test",'
         r'ehlo_domain=client\.test,team="blue sky"\] ', 'values with a space are quoted')
    is_(rej[1]['text'], 'Relaying denied', 'the text ends the line')
d.stop()

# ---------------------------------------------------------------- log_errors = false
q = t.Sluiced(t.listener('127.0.0.1:%d' % P2), name='quiet')
logger_opts(q, '  log_errors = false')
q.spawn()
ok(t.wait_for(lambda: 'started (pid %d)' % q.pid in q.stderr()),
   'log_errors = false: in the foreground the start is still on stderr', q.stderr())
with t.Client(P2) as c:
    status(c.banner, '220', 'and it serves')
is_(q.paniclog(), '', 'log_errors = false: nothing in the paniclog')
q.stop()
like(d.paniclog(), r'started \(pid', 'log_errors defaults to true: the paniclog has the start')
t.done()
