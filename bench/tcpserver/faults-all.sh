#!/bin/bash
# Minor page faults per connection of a server and all its children together (each
# child from fork through its exec of /bin/true to its exit), counted by `perf stat`
# over 1000 serial connections: what the kernel faulted in for the child besides what
# the parent's own faults (faults.py) show, text pages above all, which fork does not
# copy and every child faults in again. Loopback only; needs perf, python3.
# Usage: bench/tcpserver/faults-all.sh TCPSERVER [flags, default -HRl0]
set -e
bin=$1; shift
flags=${*:--HRl0}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
perf stat -x, -e minor-faults -o "$W/stat" -- "$bin" -1 $flags 127.0.0.1 0 /bin/true >"$W/port" 2>/dev/null &
pp=$!
for _ in $(seq 50); do [ -s "$W/port" ] && break; sleep 0.1; done
python3 - "$(cat "$W/port")" <<'PY'
import socket, sys
port = int(sys.argv[1])
for _ in range(1000):
    s = socket.create_connection(("127.0.0.1", port))
    s.recv(10)
    s.close()
PY
sleep 0.3
kill -TERM $(pgrep -P $pp)
wait $pp || true
n=$(grep minor "$W/stat" | cut -d, -f1)
echo "$(basename "$bin") $flags: $(python3 -c "print('%.1f' % ($n / 1000))") minor faults per connection, server and children"
