#!/usr/bin/env python3
"""b0010-logs: the Momentum-format logs written for inbound mail.  The
rejectlog gets one line per refusal in the documented format
    time: R="ip:port" L="ip:port" C="connid" PATH="default" PATH_GRP="default"
      P="phase" E=code M=module CTXCONN=[...] CTXMESS=[...] text
for refused commands, recipients, messages, timeouts and connections; the
mainlog escapes '@' and '\\' inside fields; log_receptions and
log_rejections turn the lines off; SIGUSR1 reopens both logs."""
import os
import re
import signal
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, like, status  # noqa: E402

t.netns()

P, PL = 2640, 2641
ESC = 'ENHANCEDSTATUSCODES [ extension = ENHANCEDSTATUSCODES ]'
DUMP = 'XDUMPCONTEXT [ extension = XDUMPCONTEXT ]'
d = t.Sluiced('''Relay_Domains = ( "local.test" )
EHLO_Timeout = 1
RFC2822 { Date_Header = pedantic }
ESMTP_Listener = (
  127.0.0.1:%d [ 0.0.0.0/0 = ( %s %s personality [ message_size = 2000 ] ) ]
  127.0.0.1:%d [ 0.0.0.0/0 = ( %s personality [ listener_sessions = 1 ] ) ]
)
''' % (P, ESC, DUMP, PL, ESC)).start()

# ---------------------------------------------------------------- refusals in one session
t0 = int(time.time())
c = t.Client(P)
lport = c.local_port
c.ehlo()
ctx, _ = c.dumpcontext()
connid = ctx.get('session_id') if ctx else None
expected = []   # (phase, code, module, text pattern) in order
status(c.cmd('FROB'), '500 5.5.1', 'an unknown command')
expected.append(('command', 500, 'smtp', r'unknown command'))
status(c.cmd('MAIL FROM:broken'), '501 5.1.7', 'a bad MAIL')
expected.append(('command', 501, 'smtp', r'MAIL.*: 501 5\.'))
c.cmd('MAIL FROM:<a@local.test>')
status(c.cmd('RCPT TO:<x@elsewhere.test>'), '550 5.7.1', 'a relay refusal')
expected.append(('awaiting rcptto', 550, 'relay', r'Relaying denied'))
c.cmd('RCPT TO:<b@local.test>')
c.cmd('DATA')
c.send(t.message('bare', body='bare\nLF\r\n') + b'.\r\n')
status(c.reply(), '550 5.6.0', 'a message with a bare LF')
expected.append(('data', 550, 'rfc2822', r'message of [0-9]+ octets refused: 550 5\.6\.0 .*bare CR or LF'))
c.cmd('MAIL FROM:<a@local.test>')
c.cmd('RCPT TO:<b@local.test>')
c.cmd('DATA')
c.send(t.message('big', body='x' * 900 + '\r\n') * 3 + b'.\r\n')
status(c.reply(), '552 5.3.4', 'a message over message_size')
expected.append(('data', 552, 'message_size', r'message of [0-9]+ octets refused: 552 5\.3\.4'))
c.cmd('MAIL FROM:<a@local.test>')
c.cmd('RCPT TO:<b@local.test>')
c.cmd('DATA')
c.send(t.message('no date', date=False) + b'.\r\n')
status(c.reply(), '550 5.6.0', 'a message without Date: (Date_Header = pedantic)')
expected.append(('data', 550, 'rfc2822', r'Date'))
status(c.cmd('QUIT'), '221 2.0.0', 'QUIT')
c.close()
t1 = int(time.time())
t.wait_for(lambda: len(d.rejects_from(lport)) >= len(expected))
d.sync_rejectlog(P)   # anything more for this client would be in the file by now
got = d.rejects_from(lport)
is_(len(got), len(expected), 'one rejectlog line per refusal, no more')
for i, (phase, code, module, text) in enumerate(expected):
    ln = got[i] if i < len(got) else ''
    m = t.parse_reject(ln)
    ok(m is not None, 'refusal %d (%s %d): the line has the documented format' % (i + 1, phase, code),
       'line: %s' % ln)
    if not m:
        continue
    ok(t0 <= m['time'] <= t1 + 1, 'refusal %d: the time' % (i + 1), ln)
    is_(m['R'], '127.0.0.1:%d' % lport, 'refusal %d: R= is the client ip:port' % (i + 1))
    is_(m['L'], '127.0.0.1:%d' % P, 'refusal %d: L= is the listener ip:port' % (i + 1))
    is_(m['C'], connid, 'refusal %d: C= is the session id' % (i + 1))
    is_((m['PATH'], m['PATH_GRP']), ('default', 'default'),
        'refusal %d: PATH and PATH_GRP are "default"' % (i + 1))
    is_((m['P'], m['E'], m['M']), (phase, code, module),
        'refusal %d: P="%s" E=%d M=%s' % (i + 1, phase, code, module))
    like(m['text'], text, 'refusal %d: the text' % (i + 1))

# ---------------------------------------------------------------- timeout and connection refusals
c = t.Client(P)
lport = c.local_port
status(c.reply(timeout=t.DEADLINE), '421 4.4.2', 'EHLO_Timeout = 1: 421 4.4.2')
c.close()
ln = (d.rejects_from(lport, timeout=t.DEADLINE) or [''])[0]
like(ln, r'^\d+: R="127\.0\.0\.1:%d" L="127\.0\.0\.1:%d" C="%s" PATH="default" '
     r'PATH_GRP="default" P="timeout" E=421 M=smtp CTXCONN=\[\] CTXMESS=\[\] '
     r'timeout exceeded$' % (lport, P, t.CONNID_RE), 'a timeout has its rejectlog line')
held = t.Client(PL)
c = t.Client(PL)
lport = c.local_port
status(c.banner, '421 4.7.0', 'listener_sessions = 1: the second connection gets 421')
c.close()
ln = (d.rejects_from(lport, timeout=t.DEADLINE) or [''])[0]
like(ln, r'^\d+: R="127\.0\.0\.1:%d" L="127\.0\.0\.1:%d" C="%s" PATH="default" '
     r'PATH_GRP="default" P="connect" E=421 M=accept CTXCONN=\[\] CTXMESS=\[\] '
     r'.*listener_sessions' % (lport, PL, t.CONNID_RE), 'a refused connection has its rejectlog line')
held.close()

# ---------------------------------------------------------------- mainlog escapes
c = t.Client(P)
rs = t.send_message(c, '"odd@sender"@local.test', ['"back\\\\slash"@local.test'],
                    t.message('escapes') + b'.\r\n')
c.close()
status(rs[-1], '250 2.0.0', 'a message with "@" and "\\" in quoted local parts is queued')
qid = t.queue_id(rs[-1].text) if rs[-1] else None
lines = d.wait_r_lines(qid)
raw = [x for x in d.mainlog().splitlines() if qid and qid in x]
like(raw and raw[0], r'@R@"back\\\\\\\\slash"@local\.test@"odd\\@sender"@local\.test@127\.0\.0\.1@',
     'the mainlog escapes "\\" as "\\\\" and "@" as "\\@" inside fields')
is_(len(lines[0]) if lines else 0, 14, 'so the line still splits into 14 fields')
d.stop()

# ---------------------------------------------------------------- switches, reopening
q = t.Sluiced('Relay_Domains = ( "local.test" )\n' + t.listener('127.0.0.1:%d' % P),
              name='quiet')
with open(q.conf_path) as f:
    text = f.read()
with open(q.conf_path, 'w') as f:
    f.write(text.replace('heartbeat = 3600', 'heartbeat = 1\n  log_receptions = false\n'
                         '  log_rejections = false'))
q.start()
s = t.smtp(P)
s.ehlo()
s.mail('a@local.test')
s.rcpt('b@local.test')
code, resp = s.data(t.message('quiet'))
s.rcpt('x@elsewhere.test')
s.quit()
is_(code, 250, 'log_receptions = false: the message is still queued')
# The log lines are written in order: once two more heartbeats are in the
# mainlog, anything the session above logged would be there too.
beats = len([x for x in q.mainlog().splitlines() if x.endswith('@@M')])
ok(t.wait_for(lambda: len([x for x in q.mainlog().splitlines() if x.endswith('@@M')]) >= beats + 2),
   'heartbeat = 1: heartbeat lines keep coming')
beats = [x for x in q.mainlog().splitlines() if x.endswith('@@M')]
ok(beats and all(re.match(r'^\d+@@@@M$', x) for x in beats),
   'heartbeat lines are Momentum\'s "time@@@@M" (the type in field 4)', beats[:3])
bbeats = [x for x in q.bouncelog().splitlines() if x.endswith('@@M1')]
ok(len(bbeats) >= 2 and all(re.match(r'^\d+@@@@M1$', x) for x in bbeats),
   'the bouncelog gets Momentum\'s bouncelog heartbeats, "time@@@@M1"', q.bouncelog()[:200])
ok(re.search(r'^\d+@@@@C@1@.*sluice\.conf$', q.mainlog(), re.M),
   'a C line names the configuration generation that runs (1 at start)', q.mainlog()[:300])
is_([x for x in q.mainlog().splitlines() if '@R@' in x], [], 'log_receptions = false: no R line')
is_(q.rejectlog_lines(), [], 'log_rejections = false: no rejectlog line')
q.stop()

r = t.Sluiced('Relay_Domains = ( "local.test" )\n' + t.listener('127.0.0.1:%d' % P),
              name='reopen').start()
os.rename(r.path('log', 'mainlog.ec'), r.path('log', 'mainlog.old'))
os.rename(r.path('log', 'rejectlog.ec'), r.path('log', 'rejectlog.old'))
r.proc.send_signal(signal.SIGUSR1)
ok(r.wait_log('paniclog', 'logs reopened'), 'SIGUSR1: the logs are reopened')
qid = r.sync_mainlog(P)
ok(any(f[1] == qid for f in r.r_lines()), 'SIGUSR1: R lines go to a new mainlog under its name')
ok(r.sync_rejectlog(P), 'SIGUSR1: refusals go to a new rejectlog under its name')
with open(r.path('log', 'mainlog.old')) as f:
    ok(qid not in f.read(), 'and not to the renamed old mainlog')
r.stop()
t.done()
