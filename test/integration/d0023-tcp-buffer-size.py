#!/usr/bin/env python3
"""d0023-tcp-buffer-size: tcp_buffer_size sizes the buffers of outbound sockets.

sluiced relays to a receiver on 127.0.0.2:2525 and keeps the connection
open for idle_timeout afterwards; ss -tm shows the socket's buffers
(skmem rb = receive, tb = send; Linux doubles the size set, socket(7)):
  - tcp_buffer_size = 8k: rb and tb are 16384;
  - after a reload without it (the default, 32768): a new connection has 65536.
"""
import os
import re
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sltest as t  # noqa: E402
from sltest import ok, is_  # noqa: E402

t.netns()

P = 2870
rcv = t.Receiver('127.0.0.2', 2525, name='bufsize').start()


def conf(extra):
    return '''
Relay_Domains = ( "buf.test" )
Gateway = "127.0.0.2:2525"
idle_timeout = 2
%s
''' % extra + t.listener('127.0.0.1:%d' % P, t.ESC_ACL)


def out_buffers():
    """(rb, tb) of each established socket to the receiver, as ss shows them."""
    r = subprocess.run(['ss', '-tmnH', 'state', 'established', 'dst', '127.0.0.2:2525'],
                       capture_output=True, timeout=t.DEADLINE)
    return [(int(m.group(1)), int(m.group(2)))
            for m in re.finditer(rb'skmem:\(r\d+,rb(\d+),t\d+,tb(\d+)', r.stdout)]


d = t.Sluiced(conf('tcp_buffer_size = 8k'), name='bufsize').start()
q = t.inject(P, 'from@src.test', ['a@buf.test'], t.message('small buffers'))
ok(q, 'a message is queued')
ok(t.wait_for(lambda: len(rcv.msgs) >= 1), 'it reaches the receiver')
got = t.wait_for(out_buffers)
is_(got, [(16384, 16384)], 'tcp_buffer_size = 8k: the outbound socket has 8k buffers (16384 in ss)')

ok(t.wait_for(lambda: out_buffers() == []), 'the idle connection closes')
ok(d.reload(conf('')), 'reload without tcp_buffer_size')
time.sleep(1.5)  # delivery threads take the new configuration on their 1 s tick
q = t.inject(P, 'from@src.test', ['b@buf.test'], t.message('default buffers'))
ok(t.wait_for(lambda: len(rcv.msgs) >= 2), 'a second message reaches the receiver')
got = t.wait_for(out_buffers)
is_(got, [(65536, 65536)], 'the default 32768 gives a new connection 32k buffers (65536 in ss)')

d.stop()
t.done()
