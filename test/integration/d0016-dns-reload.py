#!/usr/bin/env python3
"""d0016-dns-reload: a reload applies Resolv_Conf and min_dns_ttl to the
delivery loops' resolvers, and refuses values delivery would refuse.

Two dnsmasq servers give different answers for the same names: on port
5353 the exchanger of a.test is 127.0.0.2, on port 5354 it is 127.0.0.3,
each with a 1 s TTL; an smtp-sink listens on each address.
  - the first message goes to 127.0.0.2 (Resolv_Conf names 5353);
  - a reload naming another file (5354): the next message goes to
    127.0.0.3, and that server was asked;
  - the same file name rewritten to point at 5353 again: a reload
    re-reads it, the next message goes to 127.0.0.2;
  - min_dns_ttl = 300 by reload: after the 1 s TTL has passed, a message
    is delivered without asking again (min_dns_ttl 0 asks again);
  - reloads with Routes = ("smtp://1.2.3.4?type=mx"), Resolv_Conf naming
    no file, Prohibited_Hosts with a bad block or Bind_Address = "notanip"
    are refused with file:line:col; the running generation stays and
    delivers.
Which sink got each message, query counts and log lines are asserted,
never a duration.
"""
import os
import re
import signal
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_, diag  # noqa: E402

t.netns()

P = 2960
SINK_PORT = 2525


def dnsmasq(port, ip):
    return t.DnsMasq(['--mx-host=a.test,mx.a.test,10', '--host-record=mx.a.test,%s,1' % ip],
                     port=port, name='dns%d' % port).start()


dns1 = dnsmasq(5353, '127.0.0.2')
dns2 = dnsmasq(5354, '127.0.0.3')
sinks = {ip: t.SmtpSink(ip, SINK_PORT).start() for ip in ('127.0.0.2', '127.0.0.3')}
resolv1 = dns1.resolv_conf()
resolv2 = dns2.resolv_conf()


def conf(resolv, extra=''):
    return '''
Relay_Domains = ( "a.test" )
Resolv_Conf = "%s"
Remote_SMTP_Port = %d
ThreadPool "Deliver" { Concurrency = 2 }
%s
''' % (resolv, SINK_PORT, extra) + t.listener('127.0.0.1:%d' % P, t.ESC_ACL)


d = t.Sluiced(conf(resolv1))
d.start()

n_sent = 0


def deliver(what):
    """One message to a.test; returns the IP its D line names."""
    global n_sent
    n_sent += 1
    qid = t.inject(P, 'from@src.test', ['r%d@a.test' % n_sent], t.message(what))
    got = d.wait_outcomes(1, 'D', qid=qid) if qid else []
    if len(got) != 1:
        diag('%s: outcomes %r' % (what, d.outcomes(qid=qid)))
        return None
    return got[0].ip


def reload(text=None):
    """Reload; then wait until both delivery loops took the new resolver
    (each logs it once it adopted the generation)."""
    n = len(re.findall('resolver reconfigured', d.paniclog()))
    return d.reload(text) and t.wait_for(
        lambda: len(re.findall('resolver reconfigured', d.paniclog())) >= n + 2)


def a_queries(dns):
    return dns.queries(r'query\[A\] mx\.a\.test ')


is_(deliver('first'), '127.0.0.2', 'Resolv_Conf on port 5353: delivered to 127.0.0.2')

# ---------------------------------------------------------------- another file
before2 = a_queries(dns2)
ok(reload(conf(resolv2)), 'reload naming the resolv.conf of port 5354')
is_(deliver('after switch'), '127.0.0.3', 'after the reload: delivered to 127.0.0.3')
ok(a_queries(dns2) > before2, 'the server on port 5354 was asked',
   a_queries(dns2), before2)
ok(re.search(r'resolver reconfigured from .*dns5354', d.paniclog()),
   'the paniclog says the resolver was reconfigured from that file')

# ---------------------------------------------------------------- the same file, new content
with open(resolv2, 'w') as f:
    f.write('nameserver 127.0.0.1:5353\noptions timeout:1 attempts:2\n')
ok(reload(), 'reload after rewriting that file (port 5353 again)')
is_(deliver('same file rewritten'), '127.0.0.2',
    'the rewritten file is read again: delivered to 127.0.0.2')

# ---------------------------------------------------------------- min_dns_ttl
ok(reload(conf(resolv2, 'min_dns_ttl = 300')), 'reload with min_dns_ttl = 300')
is_(deliver('min ttl 1'), '127.0.0.2', 'delivered after the min_dns_ttl reload')
asked = a_queries(dns1)
time.sleep(2.5)   # the records' own TTL (1 s) has passed; min_dns_ttl keeps them
is_(deliver('min ttl 2'), '127.0.0.2', 'delivered again')
is_(a_queries(dns1), asked, 'min_dns_ttl = 300 from the reload: not asked again')
ok(reload(conf(resolv2, 'min_dns_ttl = 0')), 'reload with min_dns_ttl = 0')
asked = a_queries(dns1)
is_(deliver('ttl 0'), '127.0.0.2', 'delivered with min_dns_ttl 0')
ok(a_queries(dns1) > asked, 'min_dns_ttl = 0: a new resolver asks again', a_queries(dns1), asked)

# ---------------------------------------------------------------- refused reloads
BAD = [
    ('Routes = ( "smtp://1.2.3.4?type=mx" )',
     r'\.conf:\d+:12: bad value for .Routes.: .*type=mx needs a domain name'),
    ('Prohibited_Hosts = ( "127.0.0.4/33" )',
     r'\.conf:\d+:22: bad value for .Prohibited_Hosts.: .*33'),
    ('Bind_Address = "notanip"',
     r'\.conf:\d+:16: bad value for .Bind_Address.: .notanip. is not'),
]
for extra, pattern in BAD:
    fails = len(re.findall('reload failed', d.paniclog()))
    d.write_conf(conf(resolv2, extra))
    os.kill(d.pid, signal.SIGHUP)
    ok(t.wait_for(lambda: len(re.findall('reload failed', d.paniclog())) > fails),
       'reload with %s is refused' % extra)
    like_ok = re.search(pattern, d.paniclog()) is not None
    ok(like_ok, 'the paniclog names the value at file:line:col (%s)' % extra)
fails = len(re.findall('reload failed', d.paniclog()))
d.write_conf(conf('/nonexistent/resolv.conf'))
os.kill(d.pid, signal.SIGHUP)
ok(t.wait_for(lambda: len(re.findall('reload failed', d.paniclog())) > fails),
   'reload with a Resolv_Conf that does not exist is refused')
ok(re.search(r'bad value for .Resolv_Conf.: /nonexistent/resolv.conf: No such file',
             d.paniclog()), 'the paniclog says why')
is_(deliver('after refusals'), '127.0.0.2', 'the running configuration still delivers')

d.write_conf(conf(resolv2))
d.stop()
t.done()
