#!/bin/bash
# A child's memory at the moment of its execve: strace holds the call's entry for 2 s,
# so everything the child wrote from fork to exec is there to read in /proc (its
# Private_Dirty, VmPTE, mappings, and with V=1 which pages of each writable mapping are
# its own: pagemap's exclusively-mapped bit). Root, strace, python3; loopback only.
# Usage: [V=1] bench/tcpserver/preexec.sh TCPSERVER [flags, default -HRl0]
set -e
bin=$1; shift
flags=${*:--HRl0}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
"$bin" -1 $flags 127.0.0.1 0 /bin/echo ok >"$W/port" 2>/dev/null & sp=$!
for _ in $(seq 50); do [ -s "$W/port" ] && break; sleep 0.1; done
strace -q -f -p $sp -e trace=execve -e inject=execve:delay_enter=2000000 -o /dev/null & st=$!
sleep 0.5
python3 -c "import socket,time;s=socket.create_connection(('127.0.0.1',$(cat "$W/port")));time.sleep(1.2)" & cl=$!
sleep 0.9
c=$(ps -o pid= --ppid $sp | head -1 | tr -d ' ')
pd=$(awk '/^Private_Dirty/{print $2}' /proc/$c/smaps_rollup)
pte=$(awk '/^VmPTE/{print $2}' /proc/$c/status)
echo "$(basename "$bin") child at execve: Private_Dirty $pd kB, VmPTE $pte kB, maps $(wc -l < /proc/$c/maps)"
if [ -n "${V:-}" ]; then
  python3 - "$c" <<'PY'
import struct, sys
pid = sys.argv[1]
pm = open(f"/proc/{pid}/pagemap", "rb")
for line in open(f"/proc/{pid}/maps"):
    p = line.split()
    if "w" not in p[1]:
        continue
    a, b = (int(x, 16) for x in p[0].split("-"))
    own = []
    for page in range(a, b, 4096):
        pm.seek(page // 4096 * 8)
        e = struct.unpack("Q", pm.read(8))[0]
        if e >> 63 & 1 and e >> 56 & 1:
            own.append((page - a) // 4096)
    if own:
        print(f"  {p[5] if len(p) > 5 else '(anonymous)'}: own pages {own} of {(b - a) // 4096}")
PY
fi
wait $cl 2>/dev/null || true
kill $st 2>/dev/null || true; wait $st 2>/dev/null || true
kill $sp; wait $sp 2>/dev/null || true
