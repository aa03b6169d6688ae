#!/bin/bash
# CPU time per connection (perf stat's task-clock, a software count: this machine's
# VM exposes no instruction counters), for what callgrind cannot run: Valgrind stops a
# program at a clone that is neither a fork nor a thread, so a tcpserver under Valgrind
# forks every connection (clone_exec.rs) and callgrind.sh counts the fork path only.
# Counts the server's parent alone (--no-inherit), then the parent with every child it
# starts, up to and including the program (/bin/true), over N sequential connections.
# Usage: bench/tcpserver/cpu-per-connection.sh TCPSERVER [FLAGS] [N]
#        (perf, python3; loopback only; DNSCACHEIP as given, else 127.0.0.1 with no DNS
#        server there)
set -e
bin=$1
flags=${2:--HRl0}
n=${3:-2000}
[ -n "$bin" ] || { echo "usage: cpu-per-connection.sh TCPSERVER [FLAGS] [N]" >&2; exit 2; }
W=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT
cat >"$W/client.py" <<'PY'
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.recv(16)
    s.close()
PY
for inherit in --no-inherit ""; do
  # shellcheck disable=SC2086
  env -i PATH=/bin:/usr/bin DNSCACHEIP="${DNSCACHEIP:-127.0.0.1}" "$bin" -1 $flags 127.0.0.1 0 /bin/true >"$W/port" 2>/dev/null &
  pid=$!
  for _ in $(seq 100); do [ -s "$W/port" ] && break; sleep 0.05; done
  python3 "$W/client.py" "$(cat "$W/port")" 50
  perf stat $inherit -x, -e task-clock -p "$pid" -o "$W/stat" -- \
    python3 "$W/client.py" "$(cat "$W/port")" "$n" >/dev/null 2>&1
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
  python3 - "$W/stat" "$n" "${inherit:-with children}" <<'PY'
import sys
path, n, what = sys.argv[1], int(sys.argv[2]), sys.argv[3]
got = {}
for line in open(path):
    f = line.strip().split(",")
    if len(f) > 2 and f[0].replace(".", "").isdigit():
        got[f[2]] = float(f[0]) / n
print(f"{what:>14}: {got.get('task-clock', 0) * 1000:7.1f} us of CPU per connection")
PY
done
