#!/usr/bin/env python3
"""s0002-agentx: sluiced as an AgentX sub-agent of a running snmpd.

Inside a private network namespace, Debian's snmpd is an AgentX master
(socket in the test directory, SNMPv2c on 127.0.0.1:1161, community
public; its own sendmail MTA-MIB module turned off with -I -mta_sendmail)
and sluiced runs with `SNMP { AgentX = "<socket>" }`:
  - SLUICE-MIB and the MTA-MIB answer through snmpd; walked through it,
    mtaGroupTable lists every binding and the listener, sluiceStageTable
    the stages;
  - the master goes away: sluiced keeps accepting mail at once (nothing
    waits for the master);
  - the master comes back: sluiced registers again by itself and the
    figures through snmpd include the mail accepted meanwhile.
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
from sltest import ok, is_, diag  # noqa: E402

t.netns()

SNMPD = shutil.which('snmpd') or '/usr/sbin/snmpd'
if not os.access(SNMPD, os.X_OK) or shutil.which('snmpget') is None:
    t.bail('snmpd/snmpget are not installed (apt-get install snmpd snmp)')

P, MASTER = 2895, '127.0.0.1:1161'
ROOT = '1.3.6.1.4.1.8072.9999.9999.2789.1'
sink = t.Receiver('127.0.0.2', 2525, name='sink').start()
d = t.Sluiced('', name='agentx')
xsock = os.path.join(d.dir, 'agentx.sock')
snmpd_conf = os.path.join(d.dir, 'snmpd.conf')
with open(snmpd_conf, 'w') as f:
    f.write('master agentx\nagentXSocket %s\nagentXPerms 0600 0700\n'
            'rocommunity public 127.0.0.1\n' % xsock)


def master():
    # -I -mta_sendmail: Debian's snmpd has a sendmail MTA-MIB of its own under
    # mib-2.28; its registrations are more specific than sluice's and would win.
    return t.track(subprocess.Popen([SNMPD, '-f', '-Lf', os.path.join(d.dir, 'snmpd.log'),
                                     '-C', '-c', snmpd_conf, '-I', '-mta_sendmail', '-p',
                                     os.path.join(d.dir, 'snmpd.pid'), MASTER],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))


def get(oid):
    r = subprocess.run(['snmpget', '-v2c', '-c', 'public', '-On', '-Oqv', '-t', '1', '-r', '0',
                        MASTER, oid], capture_output=True, timeout=30)
    out = r.stdout.decode().strip().strip('"')
    return out if r.returncode == 0 and 'No Such' not in out else None


def walk_names(oid):
    """{last arc: value} of an snmpwalk of `oid` through the master."""
    r = subprocess.run(['snmpwalk', '-v2c', '-c', 'public', '-On', '-t', '2', '-r', '0', MASTER,
                        oid], capture_output=True, timeout=30)
    res = {}
    for ln in r.stdout.decode().splitlines():
        m = re.match(r'^\.[\d.]+\.(\d+) = \w+: "?(.*?)"?$', ln)
        if m:
            res[m.group(1)] = m.group(2)
    return res


snmpd = master()
ok(t.wait_for(lambda: os.path.exists(xsock), timeout=10), 'snmpd listens for AgentX')
d.write_conf('''
Relay_Domains = ( "ok.test" )
Gateway = "127.0.0.2:2525"
SNMP { AgentX = "%s" }
Binding "solo" { }
Binding_Group "grp" { Binding "b1" { } }
''' % xsock + t.listener('127.0.0.1:%d' % P))
d.start()
ok(t.wait_for(lambda: get(ROOT + '.1.1.0') == 'sluice', timeout=20),
   'sluiceProductName through snmpd', d.paniclog()[-600:])
for i in range(3):
    t.inject(P, 'a@ok.test', ['r%d@ok.test' % i], t.message('one %d' % i))
ok(t.wait_for(lambda: get('1.3.6.1.2.1.28.1.1.1.1') == '3', timeout=10),
   'mtaReceivedMessages.1 = 3 through snmpd', get('1.3.6.1.2.1.28.1.1.1.1'))
# The tables through the master: mtaGroupName lists each binding and the listener.
names = walk_names('1.3.6.1.2.1.28.2.1.25')
ok({'none/all', 'none/default', 'none/solo', 'grp/b1', 'listener/127.0.0.1:%d' % P}
   <= set(names.values()), 'mtaGroupTable through snmpd: a row per binding and the listener',
   names)
stage_names = set(walk_names(ROOT + '.4.1.2').values())
ok({'protocol', 'spool', 'deliver'} <= stage_names,
   'sluiceStageTable through snmpd lists the stages', stage_names)

# The master goes away: mail goes on.
snmpd.terminate()
snmpd.wait(timeout=10)
t0 = time.monotonic()
qids = [t.inject(P, 'a@ok.test', ['s%d@ok.test' % i], t.message('two %d' % i)) for i in range(4)]
spent = time.monotonic() - t0
ok(all(qids) and spent < 5, 'without its master sluiced still takes mail at once (4 in %.2f s)'
   % spent, qids)
ok(t.wait_for(lambda: len(sink.msgs) >= 7, timeout=20), '... and delivers it', len(sink.msgs))

# The master comes back: sluiced registers again by itself.
snmpd = master()
ok(t.wait_for(lambda: get('1.3.6.1.2.1.28.1.1.1.1') == '7', timeout=30),
   'the master is back: sluiced registers again; mtaReceivedMessages.1 = 7',
   get('1.3.6.1.2.1.28.1.1.1.1'))
diag([ln for ln in d.paniclog().splitlines() if 'snmp' in ln][-5:])
d.stop()
snmpd.terminate()
snmpd.wait(timeout=10)
t.done()
