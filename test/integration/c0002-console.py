#!/usr/bin/env python3
"""c0002-console: the Control_Listener and sluicectl.

Inside a private network namespace, sluiced with a Control_Listener on a
Unix socket (ALWAYS-ALLOW) and one on TCP whose ACL gives 127.0.0.3 no
ALWAYS-ALLOW:
  - the Unix socket is mode 0600;
  - version, pid, summary (the counters move after a message is received),
    help, --json output, an unknown command (exit 1, on stderr);
  - config reload: a good file gives generation 2 in summary; a broken
    file is refused with its file:line:col and sluiced keeps generation 2;
  - reopen logs: the paniclog is written to the new file after a rotation;
  - several commands on stdin in one session; quit;
  - a TCP client the ACL does not allow is refused;
  - shutdown: sluiced exits 0.
"""
import os
import re
import socket
import stat
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, like, diag  # noqa: E402

t.netns()

CTL = os.path.join(t.TOP_BUILDDIR, 'sluicectl')
P, C = 2850, 2851


def conf(banner='one'):
    return '''
Relay_Domains = ( "local.test" )
Suspend_Delivery = true
Max_Outbound_Connections = 30
Domain "yahoo.com" { Max_Outbound_Connections = 10 }
Binding "yahoofriends" { Domain "yahoo.com" { Max_Outbound_Connections = 20 } }
Control_Listener = (
  "%%s/control.sock" [ 0.0.0.0/0 = ( ALWAYS-ALLOW ) ]
  127.0.0.1:%d [ 127.0.0.3/32 = ( ) 0.0.0.0/0 = ( ALWAYS-ALLOW ) ]
)
''' % C + t.listener('127.0.0.1:%d' % P, t.ESC_ACL) + '# banner %s\n' % banner


d = t.Sluiced('', name='console')
sock = os.path.join(d.dir, 'control.sock')
d.write_conf(conf() % d.dir)
d.start()


def ctl(*args, stdin=None):
    r = subprocess.run([CTL, '-s', sock] + list(args), input=stdin, capture_output=True,
                       timeout=t.DEADLINE)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


ok(stat.S_IMODE(os.stat(sock).st_mode) == 0o600, 'the Unix socket is mode 0600',
   oct(os.stat(sock).st_mode))
rc, out, err = ctl('version')
ok(rc == 0 and re.match(r'^sluiced \d+\.\d+\.\d+\n$', out), 'version', rc, out, err)
rc, out, err = ctl('pid')
is_((rc, out), (0, '%d\n' % d.proc.pid), 'pid: the daemon\'s process id')
rc, out, err = ctl('summary')
like(out, r'^configuration generation: 1$', 'summary: generation 1')
like(out, r'^received: 0$', 'summary: nothing received yet')
q = t.inject(P, 'from@src.test', ['to@local.test'], t.message('counted'))
rc, out, err = ctl('summary')
diag('injected %s' % q)
like(out, r'^received: 1$', 'summary: the counters move (a message received)')
like(out, r'^uptime: \d+d \d\d:\d\d:\d\d$', 'summary: uptime')
ok(t.wait_for(lambda: re.search(r'^active queue: 1$', ctl('summary')[1], re.M)),
   'summary: the message waits in the active queue (Suspend_Delivery)', ctl('summary')[1])
out = ctl('summary')[1]
like(out, r'^active domains: 1$', 'summary: one active domain')
like(out, r'^total queue: 1$', 'summary: total queue 1')
for field in ('outbound connections', 'delayed queue', 'dns queries'):
    like(out, r'^%s: \d+$' % field, 'summary: %s' % field)
for field in ('received', 'delivered'):
    like(out, r'^%s per second \(last minute\): \d+\.\d$' % field,
         'summary: %s per second over the last minute' % field)
rc, out, err = ctl('help')
ok(rc == 0 and all(w in out for w in ('summary', 'config reload', 'reopen logs', 'shutdown')),
   'help lists the commands', out)
rc, out, err = ctl('--json', 'pid')
is_(out, '{"ok": true, "output": "%d\\n"}\n' % d.proc.pid, '--json: {"ok": ..., "output": ...}')
rc, out, err = ctl('frobnicate')
ok(rc == 1 and out == '' and 'unknown command "frobnicate"' in err,
   'an unknown command: exit 1, said on stderr', rc, out, err)

# ---------------------------------------------------------------- threads, memory, config
rc, out, err = ctl('threads')
ok(rc == 0 and all(re.search(r'^%s +\d+ +\d+ +\d+ +\d+ +[\d.]+$' % st, out, re.M)
                   for st in ('spool', 'deliver', 'validate', 'protocol', 'control', 'accept')),
   'threads: a row per stage (threads, busy, queued, ops, us/op)', out)
rc, out, err = ctl('memory')
ok(rc == 0 and re.search(r'^VmRSS:\s+\d+ kB$', out, re.M), 'memory: resident memory '
   '(and jemalloc\'s figures when linked)', out)
rc, out, err = ctl('config', 'show')
ok(rc == 0 and out.startswith('# sluice configuration from ') and
   'Max_Outbound_Connections = 30' in out, 'config show: the running configuration', out[:300])
# Momentum's own example (conf.ref.max_outbound_connections)
for args, want in ((('get', 'max_outbound_connections'), 30),
                   (('eval', 'domain', 'yahoo.com', 'max_outbound_connections'), 10),
                   (('eval', 'binding', 'yahoofriends', 'domain', 'yahoo.com',
                     'Max_Outbound_Connections'), 20),
                   (('eval', 'binding', 'other', 'domain', 'example.com',
                     'max_outbound_connections'), 30)):
    rc, out, err = ctl('config', *args)
    is_((rc, out), (0, 'Max_Outbound_Connections = %d\n' % want),
        'config %s: %d' % (' '.join(args), want))
rc, out, err = ctl('config', 'get', 'No_Such_Option')
ok(rc == 1 and 'unknown option' in err, 'config get of an unknown option: exit 1', rc, err)

# ---------------------------------------------------------------- config reload
d.write_conf(conf('two') % d.dir)
rc, out, err = ctl('config', 'reload')
ok(rc == 0 and 'generation 2' in out, 'config reload: generation 2', rc, out, err)
like(ctl('summary')[1], r'^configuration generation: 2$', '... and summary says so')


def c_lines():
    return [x.split('@')[5] for x in d.mainlog().splitlines()
            if re.match(r'^\d+@@@@C@\d+@%s$' % re.escape(d.conf_path), x)]


ok(t.wait_for(lambda: c_lines() == ['1', '2']),
   '... and the mainlog, in a C line after the C line of generation 1', c_lines())
with open(d.conf_path, 'a') as f:
    f.write('Bogus_Option_Name = 1\n')
rc, out, err = ctl('config', 'reload')
ok(rc == 1 and re.search(r'still running generation 2: .*sluice\.conf:\d+:\d+: ', err),
   'a broken file: refused with its file:line:col, generation 2 kept', rc, out, err)
like(ctl('summary')[1], r'^configuration generation: 2$', '... summary still says 2')
d.write_conf(conf('three') % d.dir)

# ---------------------------------------------------------------- reopen logs
panic = os.path.join(d.dir, 'log', 'paniclog.ec')
os.rename(panic, panic + '.1')
rc, out, err = ctl('reopen', 'logs')
ok(rc == 0 and 'logs reopened' in out, 'reopen logs', rc, out, err)
ok(t.wait_for(lambda: os.path.exists(panic) and 'logs reopened' in open(panic).read()),
   '... the paniclog goes on in a new file')

# ---------------------------------------------------------------- a session of several commands
rc, out, err = ctl(stdin=b'version\n  \t\nsummary\n\nquit\n')
ok(rc == 0 and out.startswith('sluiced ') and 'received:' in out and out.endswith('bye\n'),
   'commands on stdin run in one session (blank lines skipped), quit ends it', rc, out, err)

# ---------------------------------------------------------------- the TCP listener's ACL
r = subprocess.run([CTL, '-H', '127.0.0.1:%d' % C, 'version'], capture_output=True,
                   timeout=t.DEADLINE)
ok(r.returncode == 0 and r.stdout.decode().startswith('sluiced '),
   'TCP: an ALWAYS-ALLOW client runs commands', r.returncode, r.stderr)
s = socket.create_connection(('127.0.0.1', C), timeout=t.DEADLINE, source_address=('127.0.0.3', 0))
s.sendall(b'version\n')
data = b''
while True:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
s.close()
like(data.decode(), r'^ERR \d+\nnot allowed', 'TCP: a client without ALWAYS-ALLOW is refused, '
     'then the connection closes')

# ---------------------------------------------------------------- shutdown
rc, out, err = ctl('shutdown')
ok(rc == 0 and 'shutting down' in out, 'shutdown', rc, out, err)
try:
    d.proc.wait(timeout=60)
except subprocess.TimeoutExpired:
    pass
is_(d.proc.returncode, 0, '... and sluiced exits 0')
t.done()
