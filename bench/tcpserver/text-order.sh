#!/bin/bash
# Adds to tcpserver/text-order.txt the symbols of the functions a tcpserver runs from
# start-up through its accept loop and a child up to exec, in the flag sets admins use
# (-HRl0; -vHRl0 with a rules cdb; default flags: -h and ident on). tcpserver/build.rs
# hands the file to lld, which places those functions first and together: the kernel
# maps text around each fault in 64 kB windows, so code that runs spread over the text
# makes the idle parent map more of it and every child (fork copies no page tables for
# text) fault in more windows.
# Two passes per flag set: callgrind names every function it runs, but sees glibc's
# string functions as chosen for its own CPU model and some functions under other
# aliases; perf's page faults name the native ones that still fault outside the list.
# The file only grows (the union with what it had); run it, rebuild, run it again until
# it adds nothing. Names a later build no longer has are skipped by the linker; rerun
# after a toolchain or dependency update or a change to the per-connection path.
# Usage: bench/tcpserver/text-order.sh [TCPSERVER]   (valgrind, perf, python3; loopback
# only: DNSCACHEIP=127.0.0.1 with no DNS server there, ident to the client's closed 113)
set -e
here=$(cd "$(dirname "$0")/../.." && pwd)
bin=${1:-$here/target/release/tcpserver}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
printf '10.0.0.1:deny\n127.0.0.1:allow,X="y"\n:allow\n' >"$W/rules"
"$here/.ext/ucspi-tcp/usr/bin/tcprules" "$W/rules.cdb" "$W/rules.tmp" <"$W/rules" 2>/dev/null ||
    python3 -c 'import sys; sys.exit("needs .ext/ucspi-tcp (scripts/test.sh fetches it)")'
. "$here/bench/tcpserver/callgrind-lib.sh"
connect3() {
    python3 - "$(cat "$1")" <<'PY'
import socket, sys
for _ in range(3):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
    s.recv(10)
    s.close()
PY
}
n=0
for flags in "-HRl0" "-vHRl0 -x $W/rules.cdb" "-c1000 -b1024"; do
    n=$((n + 1))
    mkdir "$W/$n"
    env -i PATH=/bin:/usr/bin DNSCACHEIP=127.0.0.1 valgrind --tool=callgrind --demangle=no \
        --trace-children=no --dump-before=execve --callgrind-out-file="$W/$n/out.%p" \
        "$bin" -1 $flags 127.0.0.1 0 /bin/true >"$W/$n/port" 2>/dev/null &
    vp=$!
    for _ in $(seq 100); do [ -s "$W/$n/port" ] && break; sleep 0.1; done
    connect3 "$W/$n/port"
    sleep 0.5
    stop $vp
    sed -n 's/^fn=([0-9]*) \(.*\)$/\1/p' "$W/$n"/out.* >>"$W/names"
    # Instruction fetches that faulted: the address is the instruction pointer.
    env -i PATH=/bin:/usr/bin DNSCACHEIP=127.0.0.1 perf record -q -e page-faults -c 1 -d \
        -o "$W/$n/perf.data" -- "$bin" -1 $flags 127.0.0.1 0 /bin/true >"$W/$n/port2" 2>/dev/null &
    pp=$!
    for _ in $(seq 100); do [ -s "$W/$n/port2" ] && break; sleep 0.1; done
    connect3 "$W/$n/port2"
    sleep 0.3
    kill -TERM $(pgrep -P $pp) 2>/dev/null || true
    wait $pp || true
    perf script -i "$W/$n/perf.data" -F addr,ip,sym --no-demangle 2>/dev/null |
        awk '$1 == $(NF-1) {print $NF}' >>"$W/names"
done
# One symbol a line, nothing else: the linker takes every line for a name.
list=$here/tcpserver/text-order.txt
touch "$list"
cat "$list" "$W/names" | grep -v '^0x\|^(below main)$\|^\[unknown\]$\|@plt$' | sort -u >"$W/new"
echo "$(($(wc -l <"$W/new") - $(wc -l <"$list"))) symbols added to tcpserver/text-order.txt"
cp "$W/new" "$list"
