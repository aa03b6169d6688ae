#!/usr/bin/env python3
"""Memory from /proc of an idle tcpserver and of a child held before exec (in an ident
lookup against a silent identd on 127.0.0.201:113, so run it as root): mappings, VmRSS,
VmPTE, Pss, Private_Dirty. N runs per binary (default 5); prints the median run's figures
and every run's idle VmRSS / child Private_Dirty. Loopback only.

Usage: N=5 python3 bench/tcpserver/memory.py TCPSERVER [TCPSERVER...]
"""
import os
import socket
import subprocess
import sys
import threading
import time


def status(pid, keys):
    d = {}
    for line in open(f"/proc/{pid}/status"):
        k = line.split(":")[0]
        if k in keys:
            d[k] = int(line.split()[1])
    return d


def rollup(pid):
    d = {}
    for line in open(f"/proc/{pid}/smaps_rollup").readlines()[1:]:
        p = line.split()
        d[p[0].rstrip(":")] = int(p[1])
    return d


def nmaps(pid):
    return len(open(f"/proc/{pid}/maps").readlines())


def kids(pid):
    out = []
    for n in os.listdir("/proc"):
        if n.isdigit():
            try:
                st = open(f"/proc/{n}/stat").read()
            except OSError:
                continue
            if int(st[st.rfind(")") + 2:].split()[1]) == pid:
                out.append(int(n))
    return out


def figures(pid):
    r = rollup(pid)
    return {"maps": nmaps(pid), **status(pid, ["VmRSS", "VmPTE"]),
            "Pss": r["Pss"], "Private_Dirty": r["Private_Dirty"]}


def one(binary):
    p = subprocess.Popen(
        [binary, "-1", "-HRl0", "-c1000", "-b1024", "-r", "-t", "5",
         "127.0.0.1", "0", "/bin/echo", "ok"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={"PATH": "/bin:/usr/bin"})
    try:
        port = int(p.stdout.readline())
        time.sleep(0.3)
        idle = figures(p.pid)
        c = socket.socket()
        c.bind(("127.0.0.201", 0))
        c.connect(("127.0.0.1", port))
        time.sleep(0.5)
        child = figures(kids(p.pid)[0])
        c.close()
        return idle, child
    finally:
        p.kill()
        p.wait()


def main():
    identd = socket.socket()
    identd.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    identd.bind(("127.0.0.201", 113))
    identd.listen(100)
    held = []
    threading.Thread(target=lambda: [held.append(identd.accept()) for _ in range(100)],
                     daemon=True).start()
    n = int(os.environ.get("N", "5"))
    for binary in sys.argv[1:]:
        runs = sorted((one(binary) for _ in range(n)), key=lambda r: r[0]["VmRSS"])
        print(binary)
        print("  idle  ", runs[n // 2][0], "VmRSS", [r[0]["VmRSS"] for r in runs])
        print("  child ", runs[n // 2][1], "Private_Dirty",
              [r[1]["Private_Dirty"] for r in runs])


main()
