#!/usr/bin/env python3
"""b0019-validate-builtins: sluice's built-in checks are validation modules
with names an operator can bypass (context [ __bypass_<module> = true ]).

One daemon; the listener's ACL gives each client address the bypass of one
module.  Every check runs from every address: it refuses (reply code and
enhanced code checked, rejectlog line with the phase and M=<module>)
unless that address bypasses exactly that module.  The modules and their
phases: ehlo (ehlo: HELO argument syntax), require_ehlo (mailfrom),
null_sender (mailfrom), message_size (data), rfc2822 (data: Date_Header =
pedantic, lone LF).  swaks drives some of the same checks.  A reload in
the middle of a session does not change that session's rules."""
import os
import re
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, like, status  # noqa: E402

t.netns()

P = 2690
ESC = 'ENHANCEDSTATUSCODES [ extension = ENHANCEDSTATUSCODES ]'
DUMP = 'XDUMPCONTEXT [ extension = XDUMPCONTEXT ]'
SOURCES = {   # client address -> the module its ACL entry bypasses
    '127.0.0.1': None,
    '127.0.0.11': 'ehlo',
    '127.0.0.12': 'require_ehlo',
    '127.0.0.13': 'null_sender',
    '127.0.0.14': 'message_size',
    '127.0.0.15': 'rfc2822',
}


def conf(allow_null='false'):
    acl = []
    for src, mod in sorted(SOURCES.items(), key=lambda kv: kv[0] == '127.0.0.1'):
        ctx = 'context [ __bypass_%s = true ]' % mod if mod else ''
        net = '127.0.0.0/8' if mod is None else src + '/32'
        acl.append('    %s = ( %s %s %s personality [ message_size = 2000 ] )'
                   % (net, ESC, DUMP, ctx))
    return ('Require_EHLO = true\n'
            'Allow_Null_Envelope_Sender = %s\n'
            'Relay_Domains = ( local.test )\n'
            'RFC2822 { Date_Header = pedantic }\n'
            'ESMTP_Listener = (\n  127.0.0.1:%d [\n%s\n  ]\n)\n'
            % (allow_null, P, '\n'.join(acl)))


def transaction(c, body):
    c.ehlo()
    c.cmd('MAIL FROM:<a@local.test>')
    c.cmd('RCPT TO:<b@local.test>')
    c.cmd('DATA')
    c.send(body + b'.\r\n')
    return c.reply()


def chk_ehlo(c):
    return c.cmd('EHLO bad@name')


def chk_require_ehlo(c):
    return c.cmd('MAIL FROM:<a@local.test>')


def chk_null_sender(c):
    c.ehlo()
    return c.cmd('MAIL FROM:<>')


def chk_message_size(c):
    return transaction(c, t.message('big', body='x' * 900 + '\r\n') * 3)


def chk_date(c):
    return transaction(c, t.message('no date', date=False))


def chk_lone_lf(c):
    return transaction(c, t.message('bare', body='bare\nLF\r\n'))


# check, the module, its refusal, the rejectlog phase, the reply when bypassed
CHECKS = [
    (chk_ehlo, 'ehlo', '501 5.5.2', 'awaiting ehlo', '250'),
    (chk_require_ehlo, 'require_ehlo', '503 5.5.1', 'awaiting mailfrom', '250 2.1.0'),
    (chk_null_sender, 'null_sender', '553 5.1.7', 'awaiting mailfrom', '250 2.1.0'),
    (chk_message_size, 'message_size', '552 5.3.4', 'data', '250 2.0.0'),
    (chk_date, 'rfc2822', '550 5.6.0', 'data', '250 2.0.0'),
    (chk_lone_lf, 'rfc2822', '550 5.6.0', 'data', '250 2.0.0'),
]

d = t.Sluiced(conf()).start()
for src, bypassed in SOURCES.items():
    for fn, mod, refusal, phase, passed in CHECKS:
        c = t.Client(P, source=src)
        lport = c.local_port
        r = fn(c)
        c.close()
        what = '%s from %s (bypass %s)' % (fn.__name__[4:], src, bypassed)
        if mod == bypassed:
            status(r, passed, '%s: skipped, %s' % (what, passed))
            continue
        status(r, refusal, '%s: refused %s' % (what, refusal))
        if src != '127.0.0.1':
            continue
        lines = d.rejects_from(lport, timeout=t.DEADLINE)
        like(lines[0] if lines else '', r' P="%s" E=%s M=%s ' % (phase, refusal[:3], mod),
             '%s: the rejectlog names phase and module' % what)

# ---------------------------------------------------------------- the same with swaks


def swaks(src, *args):
    p = subprocess.run(['swaks', '--server', '127.0.0.1:%d' % P, '--local-interface', src,
                        '--to', 'b@local.test', '--timeout', '%d' % t.DEADLINE] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=t.DEADLINE * 2)
    return p.stdout.decode('utf-8', 'replace')


def says(out, pattern, name):
    ok(re.search(pattern, out, re.M) is not None, name, out)


out = swaks('127.0.0.1', '--from', '<>', '--ehlo', 'client.test')
says(out, r'^<\*\* +553 5\.1\.7 ', 'swaks: MAIL FROM:<> is refused by null_sender')
out = swaks('127.0.0.13', '--from', '<>', '--ehlo', 'client.test')
says(out, r'^<- +250 2\.0\.0 Ok: queued as ', 'swaks: with __bypass_null_sender it is queued')
out = swaks('127.0.0.1', '--from', 'a@local.test', '--ehlo', 'bad@name')
says(out, r'^<\*\* +501 5\.5\.2 ', 'swaks: EHLO bad@name is refused by ehlo')
out = swaks('127.0.0.1', '--from', 'a@local.test', '--ehlo', 'client.test',
            '--suppress-data', '--data', 'Subject: no date\r\n\r\nbody\r\n')
says(out, r'^<\*\* +550 5\.6\.0 .*Date', 'swaks: a message without Date: is refused by rfc2822')

# ---------------------------------------------------------------- a reload keeps a session's rules
held = t.Client(P)
held.ehlo()
d.reload(conf(allow_null='true'))
c = t.Client(P)
c.ehlo()
status(c.cmd('MAIL FROM:<>'), '250 2.1.0', 'after the reload a new session may use the null sender')
c.close()
status(held.cmd('MAIL FROM:<>'), '553 5.1.7',
       'a session opened before the reload keeps its rules (null sender still refused)')
held.close()
d.stop()
t.done()
