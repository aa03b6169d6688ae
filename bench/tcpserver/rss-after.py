#!/usr/bin/env python3
"""VmRSS of a server idle and after 5000 connections, 50 at once (each child runs
`sleep 0.2; echo ok`), with `-c1000 -b1024 -HRl0 -x RULES`: whether what the parent
keeps per client grows with use. Loopback only.

Usage: python3 bench/tcpserver/rss-after.py RULES.cdb TCPSERVER [TCPSERVER...]
"""
import socket
import subprocess
import sys
import threading
import time


def rss(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1])
    return 0


rules = sys.argv[1]
for b in sys.argv[2:]:
    p = subprocess.Popen(
        [b, "-1", "-c1000", "-b1024", "-HRl0", "-x", rules, "127.0.0.1", "0",
         "/bin/sh", "-c", "sleep 0.2; echo ok"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={"PATH": "/bin:/usr/bin"})
    port = int(p.stdout.readline())
    time.sleep(0.2)
    idle = rss(p.pid)

    def worker():
        for _ in range(100):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            while s.recv(10):
                pass
            s.close()

    ts = [threading.Thread(target=worker) for _ in range(50)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    time.sleep(0.5)
    print(f"{b}: VmRSS idle {idle} kB, after 5000 connections {rss(p.pid)} kB")
    p.kill()
    p.wait()
