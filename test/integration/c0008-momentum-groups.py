#!/usr/bin/env python3
"""c0008-momentum-groups: configuration from Momentum's pages that sluice
used to refuse, checked with `sluiced -t` and `sluiced -T`:
  - binding_group = "name" inside a Binding (conf.ref.binding_group, before
    2.2.1.26): -T prints the Binding inside the group, with the group's
    options at the group, not copied into the Binding;
  - one Binding_Group declared twice, the second part in an included file:
    one group in -T holding the bindings of both parts, the first part's
    option once; an option set in both parts is an error naming both
    file:line; a Binding inside one group naming another is an error;
  - Security { Privileges = ... } (Solaris): accepted with the no-effect
    notice at its file:line; user, group and Capabilities (applied by
    sluiced, c0010-security) draw none;
  - max_retry_interval: its default (43200) in -T, a Domain's value kept.
-T output must itself pass -t (it is configuration).
"""
import os
import re
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, like, unlike, diag  # noqa: E402

t.netns()
D = t.tmpdir('c0008')


def write(name, text):
    path = os.path.join(D, name)
    with open(path, 'w') as f:
        f.write(text)
    return path


def run(flag, path):
    p = subprocess.run([t.SLUICED, flag, '-c', path], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=t.DEADLINE)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def block(dump, head):
    """The text of the top-level block that starts with `head` in a -T dump
    (up to its closing brace at column 0), or None."""
    m = re.search(r'(?ms)^' + re.escape(head) + r' \{\n(.*?)^\}\n', dump)
    return m.group(1) if m else None


# ---------------------------------------------------------------- binding_group = and a group in two files
write('part.conf', '''# the second part of group1
binding_group "group1" {
  binding "example2" { bind_address = "10.10.10.11" }
}
''')
main = write('main.conf', '''Max_Outbound_Connections = 30
binding "old" {
  binding_group = "group1"
  bind_address = "10.10.10.12"
}
binding_group "group1" {
  max_outbound_connections = 5
  binding "example" { bind_address = "10.10.10.10" }
}
include "part.conf"
binding "lone" { binding_group = "solo" }
binding "plain" { }
''')
rc, out, err = run('-t', main)
is_(rc, 0, 'binding_group = inside a Binding and a group split over two files pass -t')
unlike(err, r'warning|error', '... without a warning')
rc, dump, err = run('-T', main)
is_(rc, 0, '-T exits 0')
g1 = block(dump, 'Binding_Group "group1"')
ok(g1 is not None, '-T prints Binding_Group "group1"', dump[-2000:])
is_(len(re.findall(r'(?m)^Binding_Group "group1"', dump)), 1, '... once, not once per part')
g1 = g1 or ''
for name in ('example', 'example2', 'old'):
    like(g1, r'(?m)^\tBinding "%s" \{' % name, '... with Binding "%s" inside it' % name)
is_(len(re.findall(r'(?m)^\tMax_Outbound_Connections = 5$', g1)), 1,
    '... and the first part\'s Max_Outbound_Connections = 5 at the group level')
unlike(g1, r'(?i)binding_group =', '... binding_group = is not printed as a value')
unlike(dump, r'(?m)^Binding "(old|example|example2)"',
       'none of the three is printed as a top-level Binding')
like(block(dump, 'Binding_Group "solo"') or '', r'(?m)^\tBinding "lone" \{',
     'a group no block declares is made: Binding_Group "solo" holds "lone"')
like(dump, r'(?m)^Binding "plain" \{', 'a Binding without a group stays at top level')
again = write('again.conf', dump)
rc, out, err = run('-t', again)
is_(rc, 0, 'the -T output passes -t')
rc, dump2, err = run('-T', again)
is_(dump2.split('\n', 1)[1], dump.split('\n', 1)[1], '... and prints the same again')

# ---------------------------------------------------------------- conflicts
write('part2.conf', '''binding_group "group1" {
  max_outbound_connections = 6
}
''')
bad = write('bad.conf', '''binding_group "group1" {
  max_outbound_connections = 5
}
include "part2.conf"
binding_group "g2" { binding "b" { binding_group = "group1" } }
''')
rc, out, err = run('-t', bad)
is_(rc, 1, 'an option set in two parts of one group is refused')
like(err, r'part2\.conf:2:3: option \'Max_Outbound_Connections\' is already set at \S*bad\.conf:2',
     '... naming the second file:line and the first')
like(err, r'bad\.conf:5:36: binding_group "group1" names another group than the '
     r'Binding_Group "g2"', 'a Binding inside g2 naming group1 is refused at its file:line')
bad = write('bad2.conf', 'binding_group = "group1"\n')
rc, out, err = run('-t', bad)
is_(rc, 1, 'binding_group = at top level is refused')
like(err, r'bad2\.conf:1:1: .*not valid in global scope \(valid in: binding\)',
     '... saying where it is valid')

# ---------------------------------------------------------------- Security
sec = write('security.conf', '''Security {
  user = nobody
  group = nogroup
  # Linux
  Capabilities = "cap_net_bind_service+ep"
  # Solaris
  Privileges = "basic net_privaddr"
}
''')
rc, out, err = run('-t', sec)
is_(rc, 0, 'Security with Privileges passes -t')
like(err, r'security\.conf:7:3: Privileges is accepted for compatibility and has no effect',
     '... with the no-effect notice for Privileges at its file:line')
unlike(err, r'(user|group|Capabilities) is', 'user, group and Capabilities draw no notice')
rc, dump, err = run('-T', sec)
like(block(dump, 'Security') or '', r'(?m)^\tPrivileges = "basic net_privaddr"$',
     '-T prints Privileges in the Security block')

# ---------------------------------------------------------------- max_retry_interval
mri = write('mri.conf', '''retry_interval = 1200
Domain "fixed.test" { max_retry_interval = 1200 max_retries = 5 }
''')
rc, dump, err = run('-T', mri)
is_(rc, 0, 'max_retry_interval in a Domain passes')
like(dump, r'(?m)^max_retry_interval = 43200$', '-T: the global default is 43200')
like(block(dump, 'Domain "fixed.test"') or '', r'(?m)^\tmax_retry_interval = 1200$',
     '-T: the Domain keeps its value')
rc, out, err = run('-t', write('mri0.conf', 'max_retry_interval = 0\n'))
is_(rc, 1, 'max_retry_interval = 0 is refused (at least 1)')
diag('dumps and files in %s' % D)
t.done()
