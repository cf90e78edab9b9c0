#!/usr/bin/env python3
"""d0021-bounce-classifier: the bounce_classifier block classifies bounces.

Inside a private network namespace, dnsmasq on 127.0.0.1:5353 points the
.test domains at aiosmtpd on 127.0.0.2:2525, which refuses recipients by
local part.  sluiced has a bounce_classifier block with a custom class (99
"profanity") and a user_smtp_classification_overide file:
  - a global rule "naughty|words" -> 99: a 550 5.7.1 reply with those words
    is class 99 in the bouncelog, not 50 (mail block) as the built-in rules
    say for 5.7.1;
  - a rule for strict.test only -> 51 (spam block) on "user unknown": a
    550 5.1.1 "User unknown" there is 51, at another domain still 10;
  - a reply no rule matches keeps its built-in class (10);
  - after the file is changed and the configuration reloaded, the new
    snapshot's rules apply (98 "renamed"), so rules are compiled per
    snapshot rather than once at start;
  - a reload while the file has a bad line is refused with the file and
    line in the paniclog, and the running rules stay (98);
  - with refresh = 1 the file is read again without a reload (in the
    background): a changed rule applies (97 "refreshed"), and a bad line
    written later is logged with file:line and the file's rules left out.
"""
import os
import re
import signal
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_  # noqa: E402

t.require_modules('aiosmtpd')
t.netns()

P = 2760
DOMAINS = ['dest.test', 'strict.test', 'src.test']
dns = t.DnsMasq(['--host-record=mx.rcv.test,127.0.0.2'] +
                ['--mx-host=%s,mx.rcv.test,10' % x for x in DOMAINS]).start()
rcv = t.AioReceiver('127.0.0.2', 2525).start()
rcv.rules.insert(0, ('profane', '550 5.7.1 <%s>: naughty words are not welcome here'))

CONF = '''
Relay_Domains = ( %s )
Resolv_Conf = "%s"
Remote_SMTP_Port = 2525
Generate_Bounces = false
bounce_classifier {
  custom_classes = [ %%s ]
  user_smtp_classification_overide = "rules.ovr"
%%s}
''' % (' '.join('"%s"' % x for x in DOMAINS), dns.resolv_conf()) + \
    t.listener('127.0.0.1:%d' % P, t.ESC_ACL)

d = t.Sluiced(CONF % ('99 = "profanity"', ''))
with open(d.path('rules.ovr'), 'w') as f:
    f.write('# site rules\n'
            ',99,naughty|words\n'
            'strict.test,51,user unknown\n')
d.start()


def bounce_of(rcpt, name):
    qid = t.inject(P, 's@src.test', [rcpt], t.message(name))
    ok(qid, '%s: accepted' % name)
    d.wait_outcomes(1, 'P', qid=qid)
    b = t.wait_for(lambda: d.bounces(qid)) or []
    is_(len(b), 1, '%s: one bouncelog line' % name)
    return b[0] if b else None


b = bounce_of('profane@dest.test', 'custom class')
ok(b is not None and b.code == 99 and '5.7.1' in b.text,
   'a 550 5.7.1 reply matching the global rule "naughty|words": class 99 (not 50)', b)

b = bounce_of('reject@strict.test', 'domain rule')
ok(b is not None and b.code == 51,
   'a 550 5.1.1 "User unknown" at strict.test: class 51 by its domain rule', b)

b = bounce_of('reject@dest.test', 'other domain')
ok(b is not None and b.code == 10,
   'the same reply at dest.test (no rule for it): built-in class 10', b)

# A new snapshot reads the rules again.
with open(d.path('rules.ovr'), 'w') as f:
    f.write(',98,naughty words\n')
ok(d.reload(CONF % ('98 = "renamed"', '')), 'reload with changed rules and classes')
# A delivery thread takes the new snapshot at its next tick: probe until it has.
seen = []


def probe(local, domain, code):
    b = bounce_of('%s%d@%s' % (local, len(seen), domain), 'after reload')
    seen.append(b)
    return b if b is not None and b.code == code else None


b = t.wait_for(lambda: probe('profane', 'dest.test', 98))
ok(b is not None, 'after the reload the new rules apply: class 98', *seen)
ok(all(x is not None and x.code in (98, 99) for x in seen),
   '... and every bounce meanwhile had the old class or the new one', *seen)
seen = []
b = t.wait_for(lambda: probe('reject', 'strict.test', 10))
ok(b is not None, 'after the reload the dropped strict.test rule no longer applies: class 10',
   *seen)

# A bad rule line refuses the reload: file:line and reason in the paniclog, old rules kept.
with open(d.path('rules.ovr'), 'w') as f:
    f.write(',98,naughty words\nstrict.test,abc,user unknown\n')
d.proc.send_signal(signal.SIGHUP)
refused = t.wait_for(lambda: re.search(
    r'reload failed; still running generation 2\b.*\n.*: bounce_classifier: '
    r'user_smtp_classification_overide: \S*rules\.ovr:2: bounce code "abc" is not a number',
    d.paniclog()))
ok(refused, 'a reload with a bad rule line is refused, with the file:line and the reason',
   d.paniclog()[-2000:])
b = bounce_of('profane-kept@dest.test', 'after the refused reload')
ok(b is not None and b.code == 98, '... and the running rules still classify (class 98)', b)
ok(not re.search(r'generation 3\b', d.paniclog()), '... and generation 2 still runs')

# refresh: read again in the background, without a reload.
with open(d.path('rules.ovr'), 'w') as f:
    f.write(',98,naughty words\n')
ok(d.reload(CONF % ('97 = "refreshed" 98 = "renamed"', '  refresh = 1\n')),
   'reload with refresh = 1: generation 3')
with open(d.path('rules.ovr'), 'w') as f:
    f.write(',97,naughty words\n')
seen = []
b = t.wait_for(lambda: probe('profane', 'dest.test', 97))
ok(b is not None, 'the changed file applies after a refresh, without a reload: class 97', *seen)
ok(all(x is not None and x.code in (97, 98) for x in seen),
   '... and every bounce meanwhile had the old class or the new one', *seen)
with open(d.path('rules.ovr'), 'w') as f:
    f.write(',97,naughty words\nnot a rule\n')
ok(t.wait_for(lambda: probe('profane', 'dest.test', 50) and re.search(
    r'bounce_classifier: user_smtp_classification_overide: \S*rules\.ovr:2: expected '
    r'domain,bounce_code,rule \(its rules are not used\)', d.paniclog())),
   'a file gone bad between reloads: logged with file:line at the refresh, its rules '
   'left out (class 50 again)', d.paniclog()[-1500:])
ok(not re.search(r'generation 4\b', d.paniclog()), '... all on generation 3')

d.stop()
t.done()
