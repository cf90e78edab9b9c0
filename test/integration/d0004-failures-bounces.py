#!/usr/bin/env python3
"""d0004-failures-bounces: transient and permanent failures, retries,
expiry, DNS failures and the bounces (DSNs) they produce.

Inside a private network namespace, dnsmasq on 127.0.0.1:5353 gives every
test domain (and the senders' domain src.test) one MX at 127.0.0.2, where
aiosmtpd (python3-aiosmtpd) answers by local part: tempfail... 451,
tempfailonce... 451 the first time, reject... 550 5.1.1, mailboxfull... 552
5.2.2.  sluice runs with Retry_Interval = 1.  Checked, in the mainlog, the
bouncelog and what aiosmtpd received:
  - a 4xx recipient: T line (stage 4, the reply), a retry that succeeds
    (D line with retries 1), the other recipient delivered once;
  - 5xx recipients: P lines, bouncelog B lines with Momentum's codes (10 for
    550 5.1.1, 22 for 552 5.2.2), one DSN to the sender (null envelope
    sender, multipart/report with each failed recipient's Status and
    Diagnostic-Code, From: MailerDaemon, the original's headers);
  - no DSN for the null sender, nor with Generate_Bounces = false;
  - Bounces_Inline_Original all / none; MailerDaemon in a Domain scope;
  - Message_Expiration = 3 with a server that always says 451: T lines,
    then P "exceeded max time" and a DSN; max_retries = 2: three attempts;
  - NXDOMAIN and a null MX: P at once (no T), a DSN; a dead DNS server
    (a second sluiced): T lines, no P, no bounce.
"Is there no DSN?" is answered by order, not by waiting: a later message's
DSN, made after the failure was logged, is spooled after any DSN for it.
"""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, like, diag  # noqa: E402

t.require_modules('aiosmtpd')
t.netns()

P, P2 = 2720, 2721
DOMAINS = ['dest.test', 'nobounce.test', 'inlall.test', 'inlnone.test', 'md.test',
           'expire.test', 'maxretry.test', 'src.test']
dns = t.DnsMasq(['--host-record=mx.rcv.test,127.0.0.2', '--mx-host=nullmx.test,.,0'] +
                ['--mx-host=%s,mx.rcv.test,10' % x for x in DOMAINS]).start()
rcv = t.AioReceiver('127.0.0.2', 2525).start()
d = t.Sluiced('''
Relay_Domains = ( %s "nx.test" "nullmx.test" )
Resolv_Conf = "%s"
Remote_SMTP_Port = 2525
Retry_Interval = 1
Domain "nobounce.test" { Generate_Bounces = false }
Domain "inlall.test" { Bounces_Inline_Original = "all" }
Domain "inlnone.test" { Bounces_Inline_Original = "none" }
Domain "md.test" { MailerDaemon = "bounce-handler@md.example" }
Domain "expire.test" { Message_Expiration = 3 }
Domain "maxretry.test" { max_retries = 2 }
''' % (' '.join('"%s"' % x for x in DOMAINS), dns.resolv_conf()) +
    t.listener('127.0.0.1:%d' % P, t.ESC_ACL)).start()

msgs = {}   # name -> (qid, data)


def send(name, sender, rcpts, body='Hello.\r\n'):
    data = t.message(name, body=body)
    qid = t.inject(P, sender, rcpts, data)
    msgs[name] = (qid, data)
    return qid


def dsn_envelopes(sender):
    """What aiosmtpd took from the null sender for `sender`."""
    return [e for e in rcv.envelopes if e['sender'] == '' and e['rcpts'] == [sender]]


def wait_dsn(sender, n=1):
    t.wait_for(lambda: len(dsn_envelopes(sender)) >= n)
    return dsn_envelopes(sender)


def dsn_r_lines(qid):
    """R lines of DSNs made for message qid (a DSN's connection id is the
    failed message's queue id; its protocol is "internal")."""
    return [f for f in d.r_lines() if f[3] == qid and f[11] == 'internal']


def bounce_for(qid, rcpt):
    got = [b for b in d.bounces(qid) if b.rcpt == rcpt]
    return got[0] if len(got) == 1 else got


def check_no_dsn(qid, what):
    """After a marker message's DSN is in the mainlog, nothing for qid is."""
    mq = send('marker after %s' % what, 'marker@src.test', ['rejectmarker@dest.test'])
    t.wait_for(lambda: dsn_r_lines(mq))
    ok(dsn_r_lines(mq), '(a later marker message got its DSN)', mq)
    is_(dsn_r_lines(qid), [], '%s: no DSN was made' % what)
    is_([e for e in rcv.envelopes if e['sender'] == '' and
         any(msgs_qid_in(e, qid) for _ in [0])], [], '%s: none reached the receiver' % what)


def msgs_qid_in(env, qid):
    return qid is not None and qid.encode() in env['content']


q_a = send('tempfail once', 's1@src.test', ['tempfailonce1@dest.test', 'ok1@dest.test'])
q_b = send('permanent', 's2@src.test', ['reject2@dest.test', 'mailboxfull2@dest.test',
                                        'ok2@dest.test'])
q_c = send('null sender', '', ['reject3@dest.test'])
q_d = send('generate bounces off', 's4@src.test', ['reject4@nobounce.test'])
q_e = send('inline all', 's5@src.test', ['reject5@inlall.test'], body='BODY-MARKER-5\r\n')
q_f = send('inline none', 's6@src.test', ['reject6@inlnone.test'])
q_g = send('mailer daemon', 's7@src.test', ['reject7@md.test'])
q_x = send('expires', 's8@src.test', ['tempfail8@expire.test'])
q_r = send('max retries', 's9@src.test', ['tempfail9@maxretry.test'])
q_n = send('nxdomain', 's10@src.test', ['a@nx.test'])
q_z = send('null mx', 's11@src.test', ['a@nullmx.test'])
ok(all(v[0] for v in msgs.values()), 'eleven messages queued', msgs.keys())

# ---------------------------------------------------------------- 4xx, then a retry that works
got = d.wait_outcomes(3, qid=q_a)
ts = [o for o in got if o.kind == 'T']
ds = sorted((o.retries, o.ip) for o in got if o.kind == 'D')
ok(len(got) == 3 and len(ts) == 1 and ds == [(0, '127.0.0.2'), (1, '127.0.0.2')],
   '4xx for one recipient: one T line, then two D lines (retries 0, then 1 after the retry)',
   *map(repr, got))
o = ts[0] if ts else None
ok(o is not None and (o.domain, o.stage, o.retries, o.ip) == ('dest.test', 4, 0, '127.0.0.2') and
   o.response.startswith('451 4.3.0 <tempfailonce1@dest.test>: temporary failure'),
   'the T line: domain, stage 4 (RCPT), retries 0, the server and its reply', o)
ok(got and got.index(ts[0]) < [i for i, x in enumerate(got) if x.kind == 'D' and x.retries][0]
   if ts and any(x.kind == 'D' and x.retries for x in got) else False,
   'the retried D line comes after the T line', *map(repr, got))
envs = [e for e in rcv.envelopes if e['sender'] == 's1@src.test']
is_([e['rcpts'] for e in envs], [['ok1@dest.test'], ['tempfailonce1@dest.test']],
    'the receiver got ok1 once, then tempfailonce1 alone in the retry (no duplicate)')
is_(d.bounces(q_a), [], 'a 4xx is no bounce: no bouncelog line')

# ---------------------------------------------------------------- 5xx: P, B lines, DSN
got = d.wait_outcomes(3, qid=q_b)
ps = {o.response.split(' ')[2] if o.kind == 'P' else 'D': o for o in got}
ok(sorted(o.kind for o in got) == ['D', 'P', 'P'],
   '5xx for two recipients of three: two P lines and a D line', *map(repr, got))
for rcpt, resp in (('reject2@dest.test', '550 5.1.1 <reject2@dest.test>: Recipient address '
                    'rejected: User unknown'),
                   ('mailboxfull2@dest.test', '552 5.2.2 <mailboxfull2@dest.test>: Mailbox full')):
    o = ps.get('<%s>:' % rcpt)
    ok(o is not None and (o.domain, o.stage, o.retries, o.ip, o.response) ==
       ('dest.test', 4, 0, '127.0.0.2', resp),
       'P line for %s: stage 4, retries 0, ip, the reply' % rcpt, *map(repr, got))
b1, b2 = bounce_for(q_b, 'reject2@dest.test'), bounce_for(q_b, 'mailboxfull2@dest.test')
size = int(d.r_lines(q_b)[0][10]) if d.r_lines(q_b) else None
ok(isinstance(b1, t.Bounce) and (b1.kind, b1.code, b1.sender, b1.stage, b1.ip, b1.size) ==
   ('B', 10, 's2@src.test', 4, '127.0.0.2', size) and b1.text.startswith('550 5.1.1'),
   'bouncelog: 550 5.1.1 is class 10 (invalid recipient), with sender, stage, ip, size', b1)
ok(isinstance(b2, t.Bounce) and (b2.kind, b2.code) == ('B', 22) and b2.text.startswith('552'),
   'bouncelog: 552 5.2.2 is class 22 (mailbox full)', b2)
is_(len(d.bounces(q_b)), 2, 'bouncelog: exactly two lines for the message')
envs = wait_dsn('s2@src.test')
is_(len(envs), 1, 'one DSN for the two failed recipients, to the original sender, from <>')
dsn = t.Dsn(envs[0]['content']) if envs else None
ok(dsn and (dsn.ctype, dsn.report_type) == ('multipart/report', 'delivery-status'),
   'the DSN is multipart/report; report-type=delivery-status', dsn)
is_(dsn and dsn.parts, ['text/plain', 'message/delivery-status', 'text/rfc822-headers'],
    'its parts: text, delivery-status, the original\'s headers (the default "headers")')
like(dsn and dsn.frm, r'mailer-daemon@sluice\.test', 'From: mailer-daemon@ the Hostname')
like(dsn and dsn.to, r's2@src\.test', 'To: the original sender')
is_(dsn and dsn.auto_submitted, 'auto-replied', 'Auto-Submitted: auto-replied')
like(dsn and dsn.per_message.get('reporting-mta'), r'^dns; ?sluice\.test$',
     'Reporting-MTA: dns; sluice.test')
is_(dsn and len(dsn.rcpts), 2, 'two recipient blocks (not the delivered one)')
r1 = dsn.rcpt('reject2@dest.test') if dsn else None
r2 = dsn.rcpt('mailboxfull2@dest.test') if dsn else None
ok(r1 and r1.get('action') == 'failed' and r1.get('status') == '5.1.1' and
   r1.get('diagnostic-code', '').startswith('smtp; 550 5.1.1 <reject2@dest.test>') and
   '127.0.0.2' in r1.get('remote-mta', ''),
   'reject2: Action failed, Status 5.1.1, Diagnostic-Code smtp; 550 5.1.1 ..., Remote-MTA', r1)
ok(r2 and r2.get('status') == '5.2.2' and
   r2.get('diagnostic-code', '').startswith('smtp; 552 5.2.2'),
   'mailboxfull2: Status 5.2.2, Diagnostic-Code smtp; 552 5.2.2 ...', r2)
orig = dsn.original.get_payload() if dsn and dsn.original else ''
ok('Subject: permanent' in orig and 'Hello.' not in orig,
   'the third part has the original\'s header section, not its body', orig[:400])
dq = [o for o in d.outcomes('D', domain='src.test')
      if any(f[3] == q_b for f in d.r_lines(o.qid))]
is_(len(dq), 1, 'the DSN itself has a D line (to src.test)')

# ---------------------------------------------------------------- no DSN
o = d.wait_outcomes(1, 'P', qid=q_c)
ok(len(o) == 1 and o[0].response.startswith('550 5.1.1'), 'null sender: its P line', o)
ok(len(o) == 1 and o[0].stage == 4,
   'a lone recipient refused at RCPT: stage 4 (RCPT) on its P line too', o)
ok(isinstance(bounce_for(q_c, 'reject3@dest.test'), t.Bounce), 'null sender: its B line')
check_no_dsn(q_c, 'null sender')
o = d.wait_outcomes(1, 'P', qid=q_d)
ok(len(o) == 1, 'Generate_Bounces = false: its P line', o)
ok(isinstance(bounce_for(q_d, 'reject4@nobounce.test'), t.Bounce),
   'Generate_Bounces = false: its B line')
check_no_dsn(q_d, 'Generate_Bounces = false')

# ---------------------------------------------------------------- inline original, MailerDaemon
envs = wait_dsn('s5@src.test')
dsn = t.Dsn(envs[0]['content']) if envs else None
is_(dsn and dsn.parts, ['text/plain', 'message/delivery-status', 'message/rfc822'],
    'Bounces_Inline_Original = all: the third part is message/rfc822')
orig = dsn.original.as_string() if dsn and dsn.original else ''
ok('BODY-MARKER-5' in orig and 'Subject: inline all' in orig,
   '... holding the whole original, body included', orig[:400])
envs = wait_dsn('s6@src.test')
dsn = t.Dsn(envs[0]['content']) if envs else None
is_(dsn and dsn.parts, ['text/plain', 'message/delivery-status'],
    'Bounces_Inline_Original = none: no third part')
envs = wait_dsn('s7@src.test')
dsn = t.Dsn(envs[0]['content']) if envs else None
like(dsn and dsn.frm, r'bounce-handler@md\.example',
     'MailerDaemon in Domain "md.test": the From: of its bounces')

# ---------------------------------------------------------------- DNS: NXDOMAIN, null MX
got = d.wait_outcomes(1, qid=q_n)
ok(len(got) == 1 and got[0].kind == 'P' and (got[0].stage, got[0].retries, got[0].ip) ==
   (0, 0, '') and got[0].response.startswith('550 5.1.2') and 'NXDOMAIN' in got[0].response,
   'NXDOMAIN: a P line at once (stage 0, no ip, 550 5.1.2 ...), no T line', *map(repr, got))
b = bounce_for(q_n, 'a@nx.test')
ok(isinstance(b, t.Bounce) and b.code == 21, 'NXDOMAIN: bouncelog class 21 (DNS failure)', b)
envs = wait_dsn('s10@src.test')
dsn = t.Dsn(envs[0]['content']) if envs else None
r = dsn.rcpt('a@nx.test') if dsn else None
ok(r and r.get('status') == '5.1.2', 'NXDOMAIN: a DSN with Status 5.1.2', dsn)
got = d.wait_outcomes(1, qid=q_z)
ok(len(got) == 1 and got[0].kind == 'P' and got[0].stage == 0 and '5.1.10' in got[0].response,
   'null MX: a P line at once with 5.1.10, no T line', *map(repr, got))
ok(got and got[0].response.startswith('556 5.1.10'),
   'null MX: the reply code is 556 (RFC 7505 section 3.2, as proto/bounce.h says)',
   *map(repr, got))
b = bounce_for(q_z, 'a@nullmx.test')
ok(isinstance(b, t.Bounce) and b.code == 10,
   'null MX: bouncelog class 10 (invalid recipient), not 21 (proto/bounce.h)', b)
envs = wait_dsn('s11@src.test')
ok(len(envs) == 1, 'null MX: a DSN to the sender', envs)

# ---------------------------------------------------------------- Message_Expiration
got = d.wait_outcomes(1, 'P', qid=q_x, timeout=t.DEADLINE)
allx = d.outcomes(qid=q_x)
ts = [o for o in allx if o.kind == 'T']
ok(len(got) == 1 and 'exceeded max time' in got[0].response and
   got[0].response.startswith('554 5.4.7'),
   'Message_Expiration = 3, always 451: a P line "554 5.4.7 exceeded max time ..."',
   *map(repr, allx))
ok(len(ts) >= 2 and all(o.response.startswith('451') for o in ts) and
   [o.retries for o in ts] == list(range(len(ts))),
   'before it: T lines with retries 0, 1, ... (%d)' % len(ts), *map(repr, allx))
ok(allx and allx[-1].kind == 'P', 'the P line is the last line for the message',
   *map(repr, allx))
ok(got and got[0].secs >= 3, 'the P line is 3 s or more after reception', got)
b = bounce_for(q_x, 'tempfail8@expire.test')
ok(isinstance(b, t.Bounce) and b.code == 24,
   'expiry: bouncelog class 24 (timeout), as proto/bounce.h says for message_expiration', b)
envs = wait_dsn('s8@src.test')
dsn = t.Dsn(envs[0]['content']) if envs else None
r = dsn.rcpt('tempfail8@expire.test') if dsn else None
ok(r and r.get('status', '').startswith(('4.', '5.')) and r.get('action') == 'failed',
   'expiry: a DSN with Action failed', dsn)
diag('expiry DSN recipient block: %s' % r)

# ---------------------------------------------------------------- max_retries
got = d.wait_outcomes(1, 'P', qid=q_r, timeout=t.DEADLINE)
allr = d.outcomes(qid=q_r)
tries = [a for a, _ in rcv.rcpt_log if a == 'tempfail9@maxretry.test']
ok(len(got) == 1 and 'max retries' in got[0].response,
   'max_retries = 2: it fails with a P line "exceeded max retries"', *map(repr, allr))
is_(len(tries), 3, 'max_retries = 2: three attempts reached the server (the first and 2 retries)')
is_([o.retries for o in allr if o.kind == 'T'], [0, 1, 2][:len(tries)],
    'max_retries = 2: one T line per attempt, retries 0, 1, 2')
envs = wait_dsn('s9@src.test')
ok(len(envs) == 1, 'max_retries: a DSN to the sender', envs)

txns = [(e['content'], tuple(e['rcpts'])) for e in rcv.envelopes]
is_(len(txns), len(set(txns)), 'the receiver never got the same message for the same '
    'recipients twice')
d.stop()

# ---------------------------------------------------------------- the DNS server is down
dead = os.path.join(t.tmpdir('deaddns'), 'resolv.conf')
with open(dead, 'w') as f:
    f.write('nameserver 127.0.0.1:5399\noptions timeout:1 attempts:1\n')
d2 = t.Sluiced('''
Relay_Domains = ( "dest.test" )
Resolv_Conf = "%s"
Remote_SMTP_Port = 2525
Retry_Interval = 1
''' % dead + t.listener('127.0.0.1:%d' % P2, t.ESC_ACL), name='deaddns').start()
n_before = len(rcv.envelopes)
q = t.inject(P2, 's@src.test', ['x@dest.test'], t.message('dns down'))
got = d2.wait_outcomes(2, qid=q)
ok(len(got) >= 2 and all(o.kind == 'T' and o.stage == 0 and o.ip == '' and
                         o.response.startswith('451 4.4.3') for o in got) and
   [o.retries for o in got] == list(range(len(got))),
   'the DNS server down: T lines (451 4.4.3, stage 0, retries 0, 1, ...), no P',
   *map(repr, got))
is_(d2.bounces(), [], 'the DNS server down: no bounce in the bouncelog')
is_(len(rcv.envelopes), n_before, 'the DNS server down: nothing delivered, no DSN')
d2.stop()
is_([o.kind for o in d2.outcomes() if o.kind != 'T'], [], '... and no D or P line at all')
t.done()
