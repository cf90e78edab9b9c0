#!/usr/bin/env python3
"""e0002-inject: sluice-inject sends files, directories and mboxes.

Inside a private network namespace, Postfix's smtp-sink on 127.0.0.2:2525
is the Gateway; sluiced listens for ESMTP and ECStream.  sluice-inject
sends:
  - a directory of three message files (LF line ends; a hidden file and a
    sub-directory are left out) over ECStream: three "250 <queue id>"
    lines, exit 0, each message at the sink with CRLF line ends;
  - an mbox of two messages (">From " unquoted) over SMTP: two 250 lines,
    a line starting with "." survives the dot-stuffing;
  - a message with a bare CR in a line: refused 554 5.6.0 over ECStream,
    exit status 1, the other message of the run still accepted;
  - nothing listening: exit status 2 and a message on stderr.
"""
import os
import re
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, like, diag  # noqa: E402

t.netns()

INJECT = os.path.join(t.TOP_BUILDDIR, 'sluice-inject')
P, E = 2840, 2841
sink = t.SmtpSink('127.0.0.2', 2525).start()
d = t.Sluiced('''
Relay_Domains = ( "sink.test" )
Gateway = "127.0.0.2:2525"
ECStream_Listener = ( 127.0.0.1:%d [ 0.0.0.0/0 = ( relay_for_sending_domains ) ] )
''' % E + t.listener('127.0.0.1:%d' % P, t.ESC_ACL), name='inject').start()
work = t.tmpdir('inject-input')


def inject(*args):
    p = subprocess.run([INJECT, '-H', '127.0.0.1'] + list(args), capture_output=True,
                       timeout=t.DEADLINE)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def body(tag):
    return ('From: a@src.test\nTo: r@sink.test\nSubject: %s\nMessage-ID: <%s@inject.test>\n'
            '\n%s line one\n.leading dot\nend\n' % (tag, tag.replace(' ', '-'), tag))


# ---------------------------------------------------------------- a directory over ECStream
mdir = os.path.join(work, 'dir')
os.makedirs(os.path.join(mdir, 'sub'))
for i in range(3):
    with open(os.path.join(mdir, 'm%d' % i), 'w') as f:
        f.write(body('dir %d' % i))
with open(os.path.join(mdir, '.hidden'), 'w') as f:
    f.write(body('hidden'))
rc, out, err = inject('-p', str(E), '-f', 'a@src.test', '-t', 'r@sink.test', mdir)
is_(rc, 0, 'a directory over ECStream: exit 0')
lines = out.splitlines()
ok(len(lines) == 3 and all(re.match(r'^.*/m\d: 250 [0-9A-F]{8}-[0-9A-F]{12}$', ln)
                           for ln in lines),
   '... one "<file>: 250 <queue id>" line for each of the three files, hidden ones left out',
   out, err)
ok(sink.wait_count(3), 'the sink got the three')
got = {m.msgid: m for m in sink.messages()}
m0 = got.get('<dir-0@inject.test>')
ok(m0 is not None and m0.content.endswith(body('dir 0').encode()),
   'a message arrived whole (after our Received: header)', m0 and m0.content[-200:])
r = d.r_lines(lines[0].split()[-1]) if lines else []
ok(r and r[0][11] == 'ecstream', 'its R line says ecstream', r)

# ---------------------------------------------------------------- an mbox over SMTP
mbox = os.path.join(work, 'box')
with open(mbox, 'w') as f:
    f.write('From a@src.test Thu Nov 26 12:00:00 2026\n' + body('mbox 1') +
            '>From the quoted line\n\n'
            'From a@src.test Thu Nov 26 12:00:01 2026\n' + body('mbox 2'))
rc, out, err = inject('-P', 'smtp', '-p', str(P), '-f', 'a@src.test', '-t', 'r@sink.test', mbox)
is_(rc, 0, 'an mbox over SMTP: exit 0')
lines = out.splitlines()
ok(len(lines) == 2 and all(re.match(r'^.*box#[12]: 250 ', ln) for ln in lines),
   '... two messages, "<mbox>#N: 250 ..."', out, err)
ok(sink.wait_count(5), 'the sink got them')
got = {m.msgid: m for m in sink.messages()}
m1 = got.get('<mbox-1@inject.test>')
ok(m1 is not None and b'\n.leading dot\n' in m1.content and
   b'\nFrom the quoted line\n' in m1.content and b'>From' not in m1.content,
   '">From " unquoted, a dot-led line intact through the dot-stuffing', m1 and m1.content)

# ---------------------------------------------------------------- a refusal: exit 1
bad = os.path.join(work, 'bad')
os.makedirs(bad)
with open(os.path.join(bad, 'a-bare-cr'), 'w') as f:
    f.write('Subject: cr\n\nbare\rcr\n')
with open(os.path.join(bad, 'b-fine'), 'w') as f:
    f.write(body('fine'))
rc, out, err = inject('-p', str(E), '-f', 'a@src.test', '-t', 'r@sink.test', bad)
is_(rc, 1, 'a refused message: exit 1')
like(out, r'a-bare-cr: 554 5\.6\.0 ', '... its line gives the refusal')
like(out, r'b-fine: 250 ', '... the other message is accepted')

# ---------------------------------------------------------------- errors: exit 2
rc, out, err = inject('-p', '2849', '-f', 'a@src.test', '-t', 'r@sink.test', bad)
is_(rc, 2, 'nothing listening: exit 2')
like(err, r'connect to 127\.0\.0\.1:2849', '... and stderr says why')
rc, out, err = inject('-p', str(E), '-f', 'a@src.test', '-t', 'r@sink.test',
                      os.path.join(work, 'missing'))
is_(rc, 2, 'an unreadable input: exit 2')
d.stop()
t.done()
