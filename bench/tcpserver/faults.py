#!/usr/bin/env python3
# Minor faults per connection in the parent (copy-on-write copies and first touches
# after each fork), over 200 serial connections to `/bin/echo ok`; exact enough to
# compare builds on a loaded machine. Loopback only.
# Usage: python3 bench/tcpserver/faults.py TCPSERVER [flags, default -HRl0]
import socket, subprocess, sys, time
def minflt(pid):
    st = open(f"/proc/{pid}/stat").read()
    return int(st[st.rfind(")") + 2:].split()[7])
def run(binary, flags):
    p = subprocess.Popen([binary, "-1", *flags, "127.0.0.1", "0", "/bin/echo", "ok"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={"PATH": "/bin:/usr/bin"})
    port = int(p.stdout.readline())
    def conn():
        s = socket.create_connection(("127.0.0.1", port))
        while s.recv(10): pass
        s.close()
    for _ in range(20): conn()
    time.sleep(0.2)
    a = minflt(p.pid)
    for _ in range(200): conn()
    time.sleep(0.2)
    b = minflt(p.pid)
    p.kill(); p.wait()
    return (b - a) / 200
flags = sys.argv[2:] or ["-HRl0"]
print(sys.argv[1].split("/")[-1], " ".join(flags), "parent minflt/conn %.2f" % run(sys.argv[1], flags))
