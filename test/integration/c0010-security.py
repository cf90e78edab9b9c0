#!/usr/bin/env python3
"""c0010-security: the Security block gives up root after start-up.

`sluiced -t` refuses an unknown user or group, a capability list that
cap_from_text(3) refuses, and any chroot, each with file:line.  Then, as
root inside a private network namespace:
  - "kept": user nobody, group nogroup, Capabilities cap_net_bind_service+ep,
    ESMTP on 127.0.0.1:25, a Control_Listener on a Unix socket and the
    pidfile in a directory sluiced creates.  Every thread's real, effective,
    saved and filesystem uid and gid are nobody's/nogroup's, its groups at
    most nogroup; no thread holds a capability but cap_net_bind_service,
    which the main and signal threads hold in both CapPrm and CapEff.  The
    logs, pidfile, spool and socket belong to nobody; a message is accepted
    on port 25 and lands in a spool segment nobody owns; the console
    answers; SIGUSR1 after a rotation makes a new mainlog (nobody's) that
    gets the next message's line; a reload adding 127.0.0.1:587 binds it
    (the kept capability at work); a reload asking for user root is
    refused for that part with a paniclog line while the rest applies;
    SIGTERM: exit 0 and the pidfile is gone.
  - "none": user nobody without Capabilities on 127.0.0.1:26 (bound as
    root before the switch): no thread holds any capability, and a reload
    adding 127.0.0.1:27 fails to bind it while :26 keeps serving; the
    pidfile in the root-owned state directory cannot be removed and is
    emptied instead, with a warning.
Skips the daemon part when not run as root or when nobody/nogroup are missing.
"""
import grp
import os
import pwd
import re
import signal
import socket
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, like, diag  # noqa: E402

t.netns()

CTL = os.path.join(t.TOP_BUILDDIR, 'sluicectl')
CAP_NET_BIND_SERVICE = 1 << 10

# ---------------------------------------------------------------- sluiced -t


def check(conf):
    d = t.Sluiced(conf, name='check')
    r = subprocess.run([t.SLUICED, '-t', '-c', d.conf_path, '-D', d.dir], capture_output=True,
                       timeout=t.DEADLINE)
    return r.returncode, r.stdout.decode() + r.stderr.decode()


rc, out = check('Security {\n  user = "no-such-user-sluice"\n}\n')
is_(rc, 1, '-t: an unknown user is refused')
like(out, r'sluice\.conf:\d+:\d+: .*unknown user .no-such-user-sluice.', '-t: ... with file:line')
rc, out = check('Security {\n  group = "no-such-group-sluice"\n}\n')
is_(rc, 1, '-t: an unknown group is refused')
like(out, r'sluice\.conf:\d+:\d+: .*unknown group .no-such-group-sluice.',
     '-t: ... with file:line')
rc, out = check('Security {\n  Capabilities = "linux capability set"\n}\n')
is_(rc, 1, '-t: a capability list cap_from_text refuses is an error')
like(out, r'sluice\.conf:\d+:\d+: bad value for .Capabilities.', '-t: ... with file:line')
rc, out = check('Security {\n  chroot = "/var/empty"\n}\n')
is_(rc, 1, '-t: chroot is refused')
like(out, r'sluice\.conf:\d+:\d+: chroot is not supported', '-t: ... saying why, with file:line')
rc, out = check('Security {\n  user = "0"\n  group = "0"\n'
                '  Capabilities = "cap_net_bind_service,cap_net_raw+ep"\n}\n')
is_(rc, 0, '-t: numeric ids and a list of capabilities are taken: ' + out.strip())

try:
    NOBODY = pwd.getpwnam('nobody')
    NOGROUP = grp.getgrnam('nogroup')
except KeyError:
    NOBODY = NOGROUP = None
if os.geteuid() != 0 or NOBODY is None or NOGROUP is None:
    t.skip('giving up root', 'needs root and the nobody user and nogroup group (Debian)'
           if os.geteuid() == 0 else 'not running as root')
    t.done()

UID, GID = NOBODY.pw_uid, NOGROUP.gr_gid
# nobody must reach the state directories (mkdtemp makes the root 0700).
os.chmod(t._tmp_root, 0o755)


def proc_status(path):
    f = {}
    with open(path) as fh:
        for ln in fh:
            k, _, v = ln.partition(':')
            f[k] = v.split()
    return f


def threads(pid):
    """{tid: (comm, status fields)} of every thread of pid."""
    out = {}
    base = '/proc/%d/task' % pid
    for tid in os.listdir(base):
        try:
            with open(os.path.join(base, tid, 'comm')) as fh:
                comm = fh.read().strip()
            out[int(tid)] = (comm, proc_status(os.path.join(base, tid, 'status')))
        except OSError:
            pass   # a thread that ended meanwhile
    return out


def check_ids(d, label):
    ths = threads(d.pid)
    ok(len(ths) > 5, '%s: the daemon runs its threads (%d)' % (label, len(ths)))
    bad = ['%s/%d: Uid %s Gid %s Groups %s' % (c, tid, ' '.join(s['Uid']), ' '.join(s['Gid']),
                                               ' '.join(s.get('Groups', [])))
           for tid, (c, s) in sorted(ths.items())
           if s['Uid'] != [str(UID)] * 4 or s['Gid'] != [str(GID)] * 4 or
           any(g != str(GID) for g in s.get('Groups', []))]
    ok(not bad, '%s: every thread is uid %d gid %d, groups at most %d' % (label, UID, GID, GID),
       *bad)
    return ths


def caps(s, key):
    return int(s[key][0], 16)


def ctl(sock, *args):
    r = subprocess.run([CTL, '-s', sock] + list(args), capture_output=True, timeout=t.DEADLINE)
    return r.returncode, r.stdout.decode() + r.stderr.decode()


def send(port, subject):
    with t.smtp(port) as c:
        c.ehlo()
        code, text = c.docmd('MAIL FROM:<sender@local.test>')
        c.docmd('RCPT TO:<rcpt@local.test>')
        code, text = c.data(t.message(subject))
        c.quit()
    return code, text.decode()


def banner(port):
    try:
        with socket.create_connection(('127.0.0.1', port), timeout=t.DEADLINE) as s:
            return s.recv(512).decode()
    except OSError as e:
        return str(e)


def owner(path):
    try:
        st = os.lstat(path)
        return (st.st_uid, st.st_gid)
    except OSError as e:
        return str(e)


# ---------------------------------------------------------------- kept: cap_net_bind_service

SEC = '''Security {
  user = "nobody"
  group = "nogroup"
  Capabilities = "cap_net_bind_service+ep"
}
'''


def kept_conf(extra='', sec=SEC):
    listeners = '127.0.0.1:25' + extra
    return ('Relay_Domains = ( "local.test" )\nSuspend_Delivery = true\n'
            'Control_Listener = ( "%s" [ 0.0.0.0/0 = ( ALWAYS-ALLOW ) ] )\n' % sock +
            'ESMTP_Listener = ( %s )\n' % listeners + sec)


d = t.Sluiced('', name='kept')
sock = d.path('ctl', 'control.sock')
pidfile = d.path('run', 'sluiced.pid')
d.write_conf(kept_conf())
d.start(['-p', pidfile])
like(d.paniclog(), r'gave up root: running as uid %d .*cap_net_bind_service=ep' % UID,
     'kept: the paniclog says whom it runs as')

ths = check_ids(d, 'kept')
main_st = ths[d.pid][1]
is_(caps(main_st, 'CapPrm'), CAP_NET_BIND_SERVICE, 'kept: main thread CapPrm is the kept one')
is_(caps(main_st, 'CapEff'), CAP_NET_BIND_SERVICE, 'kept: main thread CapEff is the kept one')
extra = ['%s/%d: CapPrm %s CapEff %s' % (c, tid, s['CapPrm'][0], s['CapEff'][0])
         for tid, (c, s) in sorted(ths.items())
         if (caps(s, 'CapPrm') | caps(s, 'CapEff')) & ~CAP_NET_BIND_SERVICE]
ok(not extra, 'kept: no thread holds any other capability', *extra)
sig = [s for c, s in ths.values() if c == 'signal']
ok(len(sig) == 1 and caps(sig[0], 'CapEff') == CAP_NET_BIND_SERVICE,
   'kept: the signal thread (it binds on reload) holds cap_net_bind_service')

for what, path in (('pidfile', pidfile), ('paniclog', d.path('log', 'paniclog.ec')),
                   ('mainlog', d.path('log', 'mainlog.ec')), ('spool', d.path('spool')),
                   ('control socket', sock), ('pidfile directory', d.path('run'))):
    is_(owner(path), (UID, GID), 'kept: the %s belongs to nobody' % what)
is_(owner(d.path('sluice.conf')), (0, 0), 'kept: the configuration is left alone (root)')

code, text = send(25, 'first')
is_(code, 250, 'kept: a message is accepted on port 25 after the switch: %s' % text)
qid = t.queue_id(text)
ok(d.wait_r_lines(qid), 'kept: its reception is in the mainlog')
segs = d.spool_segments()
ok(segs and all(owner(d.path('spool', s)) == (UID, GID) for s in segs),
   'kept: it is in a spool segment nobody owns: %s' % segs)

rc, out = ctl(sock, 'summary')
ok(rc == 0 and re.search(r'^pid: %d$' % d.pid, out, re.M), 'kept: the console answers',
   out)

os.rename(d.path('log', 'mainlog.ec'), d.path('log', 'mainlog.ec.1'))
os.kill(d.pid, signal.SIGUSR1)
ok(t.wait_for(lambda: os.path.exists(d.path('log', 'mainlog.ec'))),
   'kept: SIGUSR1 after a rotation creates a new mainlog')
reopened = d.wait_log('paniclog', r'logs reopened|reopening logs failed')
like(reopened, r'logs reopened', 'kept: the paniclog says the logs were reopened')
is_(owner(d.path('log', 'mainlog.ec')), (UID, GID), 'kept: the new mainlog is nobody\'s')
code, text = send(25, 'second')
qid2 = t.queue_id(text)
ok(code == 250 and d.wait_r_lines(qid2), 'kept: the next message is logged in the new mainlog')

line = d.reload(kept_conf(' 127.0.0.1:587'))
ok(line, 'kept: a reload adding 127.0.0.1:587 succeeds', d.paniclog()[-800:])
like(banner(587), r'^220 ', 'kept: the privileged port 587 added by the reload answers')
t.unlike(d.paniclog(), r'reload: .*587', 'kept: no listener error for 587')

line = d.reload(kept_conf(' 127.0.0.1:587', SEC.replace('"nobody"', '"root"')))
ok(line, 'kept: a reload asking for user root still reloads the rest')
ok(d.wait_log('paniclog', r"Security block's user, group or Capabilities changed; that "
              r"needs a restart, so sluiced keeps running as uid %d" % UID),
   'kept: ... and says in the paniclog that the identity change needs a restart')
rc, out = ctl(sock, 'config', 'reload')
like(out, r'generation \d+ \(Security user/group/Capabilities changes need a restart',
     'kept: the console reload says so too')
check_ids(d, 'kept after the reloads')
code, text = send(587, 'third')
is_(code, 250, 'kept: mail still flows after the reloads')

d.stop()
ok(not os.path.exists(pidfile), 'kept: the pidfile is removed at exit')

# ---------------------------------------------------------------- none: no capability kept

n = t.Sluiced('', name='none')
n.write_conf('Relay_Domains = ( "local.test" )\nSuspend_Delivery = true\n'
             'ESMTP_Listener = ( 127.0.0.1:26 )\nSecurity { user = "nobody" }\n')
n.start()
ths = check_ids(n, 'none')
held = ['%s/%d: CapPrm %s CapEff %s' % (c, tid, s['CapPrm'][0], s['CapEff'][0])
        for tid, (c, s) in sorted(ths.items()) if caps(s, 'CapPrm') or caps(s, 'CapEff')]
ok(not held, 'none: no thread holds any capability', *held)
code, text = send(26, 'fourth')
is_(code, 250, 'none: port 26, bound as root before the switch, takes mail')
n.write_conf('Relay_Domains = ( "local.test" )\nSuspend_Delivery = true\n'
             'ESMTP_Listener = ( 127.0.0.1:26 127.0.0.1:27 )\nSecurity { user = "nobody" }\n')
ok(n.reload(), 'none: the reload itself succeeds')
ok(n.wait_log('paniclog', r'reload: .*127\.0\.0\.1:27.*(denied|not permitted)'),
   'none: without the capability, binding 127.0.0.1:27 is refused',
   n.paniclog()[-600:])
like(banner(26), r'^220 ', 'none: port 26 keeps serving')
n.stop()
npid = n.path('sluiced.pid')
ok(os.path.exists(npid) and os.path.getsize(npid) == 0,
   'none: the pidfile in the root-owned directory is emptied, not left with a pid')
like(n.stderr(), r'cannot remove the pidfile', 'none: ... with a warning')
diag('the none daemon ran as: %s' % (n.wait_log('paniclog', r'gave up root') or '?'))

t.done()
