#!/usr/bin/env python3
"""s0001-snmp: the embedded SNMP agent, with net-snmp's own tools.

Inside a private network namespace, sluiced runs its SNMPv2c agent on
127.0.0.1:8162 (community "sluicetest") and relays four domains to two
scripted receivers: ok.test (accepts), bad.test (550 at RCPT: bounced),
slow.test (451 at RCPT: deferred, Retry_Interval 3600).  Its SNMP_TRAPS
stanza watches DelayedQueue = 2 and sends to snmptrapd on 127.0.0.1:1162.
Sent: N_OK + N_BAD + N_SLOW messages, and N_REJ refused at RCPT (a domain
not relayed).  Checked with snmpget/snmpwalk:
  - the system group says the stanza's SysDescription/Contact/Location;
  - applTable's row and mtaTable: received, transmitted, recipients, exact;
    and they agree with `sluicectl summary`;
  - mtaGroupTable lists none/all, none/default, each configured binding
    (one in a binding group) and the listener, with
    exact received/rejected/transmitted counts; mtaGroupErrorTable has
    550 (5.1.1 at bad.test: outbound) and the 451 transient errors;
  - SLUICE-MIB: product, configuration generation and reloads, stages,
    per-group active/delayed/failed, and per-domain rows that a walk lists
    (slow.test delayed = N_SLOW, ok.test deliveries = N_OK);
  - a wrong community gets no answer; a SET is refused;
  - a trap arrives at snmptrapd when the delayed queue reaches 2;
  - a reload that changes the community, then one that changes the
    Address, apply without a restart.
"""
import os
import re
import shutil
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, like, diag  # noqa: E402

t.netns()

for tool in ('snmpget', 'snmpwalk', 'snmptrapd'):
    if shutil.which(tool) is None:
        t.bail('%s is not installed (apt-get install snmp snmptrapd)' % tool)

CTL = os.path.join(t.TOP_BUILDDIR, 'sluicectl')
P, AGENT, TRAPS = 2890, '127.0.0.1:8162', 1162
N_OK, N_BAD, N_SLOW, N_REJ = 7, 3, 2, 4
ROOT = '1.3.6.1.4.1.8072.9999.9999.2789.1'
MTA = '1.3.6.1.2.1.28'

good = t.Receiver('127.0.0.2', 2525, name='good').start()
bad = t.Receiver('127.0.0.3', 2525, name='bad')
bad.rcpt_reply = lambda a: ('550 5.1.1 no such user' if '@bad.test' in a
                            else '451 4.3.0 try again later')
bad.start()

d = t.Sluiced('', name='snmp')
sock = os.path.join(d.dir, 'control.sock')
trapfile = os.path.join(d.dir, 'traps.log')


def conf(community, agent=AGENT):
    return '''
Relay_Domains = ( "ok.test" "bad.test" "slow.test" )
Retry_Interval = 3600
Domain "ok.test" { Gateway = "127.0.0.2:2525" }
Domain "bad.test" { Gateway = "127.0.0.3:2525" }
Domain "slow.test" { Gateway = "127.0.0.3:2525" }
Binding "solo" { Bind_Address = "127.0.0.9" }
Binding_Group "grp" {
  Binding "b1" { Bind_Address = "127.0.0.10" }
}
Control_Listener = ( "%s" [ 0.0.0.0/0 = ( ALWAYS-ALLOW ) ] )
SNMP {
  State = enabled
  Address = %s
  Community = "%s"
  SysContact = "postmaster@example.test"
  SysLocation = "rack 7"
  SysDescription = "mta01"
}
SNMP_TRAPS {
  State = enabled
  Watch_Interval = 1
  Trap_Interval = 60
  Trap_Destination [ Address = 127.0.0.1 Port = %d Community = "sluicetest" ]
  Watch_Variables [ DelayedQueue = 2 ]
}
''' % (sock, agent, community, TRAPS) + t.listener('127.0.0.1:%d' % P, t.ESC_ACL)


# snmptrapd logs every trap with community sluicetest, numeric OIDs.
with open(os.path.join(d.dir, 'snmptrapd.conf'), 'w') as f:
    f.write('authCommunity log sluicetest\n')
trapd = t.track(subprocess.Popen(['snmptrapd', '-f', '-n', '-On', '-Lf', trapfile, '-C', '-c',
                                  os.path.join(d.dir, 'snmptrapd.conf'),
                                  '127.0.0.1:%d' % TRAPS],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
# sluiceStart leaves as the agent starts: snmptrapd must be listening by then.
if not t.wait_for(lambda: t.udp_bound(TRAPS), timeout=10):
    t.bail('snmptrapd did not bind 127.0.0.1:%d' % TRAPS)
d.write_conf(conf('sluicetest'))
d.start()


def snmp(cmd, *oids, community='sluicetest', timeout=3, agent=AGENT):
    r = subprocess.run([cmd, '-v2c', '-c', community, '-On', '-Oe', '-t', str(timeout), '-r',
                        '0', agent] + list(oids), capture_output=True, timeout=30)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def walk(oid):
    """{numeric OID: value text} of a walk."""
    rc, out, err = snmp('snmpwalk', oid)
    res = {}
    for ln in out.splitlines():
        m = re.match(r'^(\.[\d.]+) = (?:\w+: )?(.*)$', ln)
        if m:
            res[m.group(1).lstrip('.')] = m.group(2).strip('"')
    return res


def get(oid):
    rc, out, err = snmp('snmpget', oid)
    m = re.match(r'^\.[\d.]+ = (?:\w+: )?(.*)$', out.strip())
    return m.group(1).strip('"') if rc == 0 and m else None


ok(t.wait_for(lambda: get('1.3.6.1.2.1.1.1.0') is not None, timeout=10),
   'the agent answers on %s' % AGENT, d.paniclog()[-800:])
is_(get('1.3.6.1.2.1.1.1.0'), 'mta01', 'sysDescr is SysDescription')
is_(get('1.3.6.1.2.1.1.4.0'), 'postmaster@example.test', 'sysContact is SysContact')
is_(get('1.3.6.1.2.1.1.6.0'), 'rack 7', 'sysLocation is SysLocation')
is_(get('1.3.6.1.2.1.1.2.0'), '.' + ROOT, 'sysObjectID names SLUICE-MIB\'s product')
is_(get(ROOT + '.1.1.0'), 'sluice', 'sluiceProductName')
like(get(ROOT + '.1.2.0') or '', r'^\d+\.\d+\.\d+$', 'sluiceProductVersion')
is_(get('1.3.6.1.2.1.27.1.1.2.1'), 'sluice', 'applName.1')

# ---------------------------------------------------------------- mail
for i in range(N_OK):
    t.inject(P, 'from@ok.test', ['r%d@ok.test' % i], t.message('ok %d' % i))
for i in range(N_BAD):
    t.inject(P, 'from@ok.test', ['r%d@bad.test' % i], t.message('bad %d' % i))
for i in range(N_SLOW):
    t.inject(P, 'from@ok.test', ['r%d@slow.test' % i], t.message('slow %d' % i))
refused = 0
for i in range(N_REJ):
    c = t.Client(P)
    c.ehlo()
    c.cmd('MAIL FROM:<x@ok.test>')
    r = c.cmd('RCPT TO:<nobody@elsewhere.test>')
    refused += 1 if r is not None and r.code == 550 else 0
    c.cmd('QUIT')
    c.close()
is_(refused, N_REJ, '%d recipients refused (not relayed)' % N_REJ)
# Every outcome is in: N_OK delivered, N_BAD failed (and their bounces to ok.test), N_SLOW deferred.
ok(t.wait_for(lambda: len(d.outcomes('D', domain='ok.test')) >= N_OK + N_BAD and
              len(d.outcomes('P')) >= N_BAD and len(d.outcomes('T')) >= N_SLOW, timeout=30),
   'every message reached its outcome', d.outcomes())
time.sleep(1.5)  # the per-domain views are published once a second
N_RECV = N_OK + N_BAD + N_SLOW

summary = subprocess.run([CTL, '-s', sock, 'summary'], capture_output=True,
                         timeout=t.DEADLINE).stdout.decode()
recv_summary = int(re.search(r'^received: (\d+)$', summary, re.M).group(1))
is_(recv_summary, N_RECV, 'sluicectl summary: %d received' % N_RECV)

# ---------------------------------------------------------------- MTA-MIB
is_(get(MTA + '.1.1.1.1'), str(N_RECV), 'mtaReceivedMessages.1 = %d, as summary' % N_RECV)
is_(get(MTA + '.1.1.7.1'), str(N_RECV), 'mtaReceivedRecipients.1 = %d' % N_RECV)
# Transmitted: the delivered messages and the bounces (all to ok.test).
is_(get(MTA + '.1.1.3.1'), str(N_OK + N_BAD), 'mtaTransmittedMessages.1 = %d (%d + %d bounces)'
    % (N_OK + N_BAD, N_OK, N_BAD))
is_(get(MTA + '.1.1.2.1'), str(N_SLOW), 'mtaStoredMessages.1 = %d (the deferred)' % N_SLOW)
groups = walk(MTA + '.2.1.25')
names = {oid.split('.')[-1]: v for oid, v in groups.items()}
diag('groups: %s' % names)
is_(names.get('1'), 'none/all', 'mtaGroupName: group 1 is none/all')
is_(names.get('2'), 'none/default', '... group 2 none/default')
ok({'none/solo', 'grp/b1'} <= set(names.values()),
   '... and a row for each configured binding, used or not (none/solo, grp/b1)', names)
listener = [k for k, v in names.items() if v == 'listener/127.0.0.1:%d' % P]
ok(listener, 'a group for the ESMTP listener', names)
if listener:
    g = listener[0]
    is_(get('%s.2.1.2.1.%s' % (MTA, g)), str(N_RECV), 'listener group: %d received' % N_RECV)
    is_(get('%s.2.1.3.1.%s' % (MTA, g)), str(N_REJ), 'listener group: %d rejected' % N_REJ)
is_(get(MTA + '.2.1.5.1.2'), str(N_OK + N_BAD), 'none/default: transmitted %d' % (N_OK + N_BAD))
errors = walk(MTA + '.5.1.3')
ok(any(k.endswith('.2.5001001') and v == str(N_BAD) for k, v in errors.items()),
   'mtaGroupErrorTable: %d outbound 5.1.1 errors on none/default' % N_BAD, errors)
ok(any(k.endswith('.2.4003000') and int(v) >= N_SLOW for k, v in errors.items()),
   '... and the 4.3.0 transient errors', errors)

# ---------------------------------------------------------------- SLUICE-MIB
is_(get(ROOT + '.5.1.0'), '1', 'sluiceConfigGeneration 1')
stages = {v for k, v in walk(ROOT + '.4.1.2').items()}
ok({'spool', 'deliver', 'protocol', 'snmp'} <= stages, 'sluiceStageTable lists the stages',
   stages)
dom = walk(ROOT + '.2.1')


def dom_get(col, domain):
    idx = '%d.%s.2' % (len(domain), '.'.join(str(ord(c)) for c in domain))
    return dom.get('%s.2.1.%d.%s' % (ROOT, col, idx))


is_(dom_get(3, 'slow.test'), 'slow.test', 'sluiceDomainTable: a walk lists slow.test')
is_(dom_get(10, 'slow.test'), str(N_SLOW), '... its delayed queue: %d' % N_SLOW)
is_(dom_get(6, 'ok.test'), str(N_OK + N_BAD), 'ok.test: %d deliveries' % (N_OK + N_BAD))
is_(dom_get(5, 'bad.test'), str(N_BAD), 'bad.test: %d failures' % N_BAD)
is_(get(ROOT + '.3.1.3.2'), str(N_SLOW), 'sluiceGroupDelayedQueue (none/default) = %d' % N_SLOW)
is_(get(ROOT + '.3.1.4.2'), str(N_BAD), 'sluiceGroupFailedMessages (none/default) = %d' % N_BAD)

# ---------------------------------------------------------------- access
rc, out, err = snmp('snmpget', '1.3.6.1.2.1.1.1.0', community='wrong', timeout=1)
ok(rc != 0 and 'Timeout' in err, 'a wrong community gets no answer', rc, out, err)
r = subprocess.run(['snmpset', '-v2c', '-c', 'sluicetest', '-t', '3', '-r', '0', AGENT,
                    '1.3.6.1.2.1.1.4.0', 's', 'x'], capture_output=True, timeout=30)
ok(r.returncode != 0 and re.search(r'noAccess|notWritable|noCreation|authorization',
                                   r.stderr.decode() + r.stdout.decode()),
   'a SET is refused', r.stdout, r.stderr)

# ---------------------------------------------------------------- traps
ok(t.wait_for(lambda: os.path.exists(trapfile) and
              '%s.0.3' % ROOT in open(trapfile).read() and 'DelayedQueue' in open(trapfile).read(),
              timeout=15),
   'a sluiceThreshold trap for DelayedQueue reached snmptrapd',
   open(trapfile).read() if os.path.exists(trapfile) else 'no trap file')
ok('%s.0.1' % ROOT in (open(trapfile).read() if os.path.exists(trapfile) else ''),
   'and a sluiceStart trap before it')

# ---------------------------------------------------------------- reload
d.write_conf(conf('other'))
r = subprocess.run([CTL, '-s', sock, 'config', 'reload'], capture_output=True,
                   timeout=t.DEADLINE)
ok(r.returncode == 0, 'config reload with a new community', r.stdout, r.stderr)
ok(t.wait_for(lambda: snmp('snmpget', ROOT + '.5.1.0', community='other', timeout=1)[0] == 0,
              timeout=10),
   'the new community is answered (no restart)')
is_(snmp('snmpget', ROOT + '.5.1.0', community='other')[1].strip().split()[-1], '2',
    'sluiceConfigGeneration 2')
rc, out, err = snmp('snmpget', ROOT + '.5.1.0', community='sluicetest', timeout=1)
ok(rc != 0, 'the old community is not', rc, out)
is_(snmp('snmpget', ROOT + '.5.2.0', community='other')[1].strip().split()[-1], '1',
    'sluiceConfigReloads 1')
AGENT2 = '127.0.0.1:8163'
d.write_conf(conf('other', AGENT2))
r = subprocess.run([CTL, '-s', sock, 'config', 'reload'], capture_output=True,
                   timeout=t.DEADLINE)
ok(t.wait_for(lambda: snmp('snmpget', ROOT + '.5.1.0', community='other', timeout=1,
                           agent=AGENT2)[0] == 0, timeout=10),
   'a reload moving the Address: the agent answers on %s' % AGENT2)
ok(snmp('snmpget', ROOT + '.5.1.0', community='other', timeout=1)[0] != 0,
   '... and no longer on %s' % AGENT)

d.stop()
ok(t.wait_for(lambda: '%s.0.2' % ROOT in open(trapfile).read(), timeout=10),
   'a sluiceShutdown trap at the stop')
trapd.terminate()
trapd.wait(timeout=10)
t.done()
