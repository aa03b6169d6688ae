#!/usr/bin/env python3
# Serial connect-to-first-byte latency: 300 connections per server, servers alternated
# round by round (R rounds, default 3), each under -1 -HRl0 -c200 -x RULES serving
# /bin/echo ok; prints the median (ms) per server per round. Loopback only.
# Usage: R=5 python3 bench/tcpserver/serial.py RULES.cdb TCPSERVER [TCPSERVER...]
import socket, subprocess, sys, time, os
cdb = sys.argv[1]
def lat(binary, n=300):
    p = subprocess.Popen([binary, "-1", "-HRl0", "-c200", "-x", cdb, "127.0.0.1", "0", "/bin/echo", "ok"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={"PATH": "/bin:/usr/bin"})
    port = int(p.stdout.readline())
    ls = []
    for i in range(n):
        t = time.perf_counter()
        s = socket.create_connection(("127.0.0.1", port)); s.recv(10); ls.append(time.perf_counter() - t)
        while s.recv(10): pass
        s.close()
    p.kill(); p.wait()
    ls.sort(); return ls[n // 2] * 1000
for r in range(int(os.environ.get("R", "3"))):
    print(" ".join(f"{os.path.basename(b)} {lat(b):.2f}" for b in sys.argv[2:]))
