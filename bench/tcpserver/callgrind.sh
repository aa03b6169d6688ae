#!/bin/bash
# User-space instructions per connection under callgrind, djb's tcpserver vs ours:
# the parent per accept (difference between 50 connections and none) and a child from
# fork to exec (--dump-before=execve; the child's dump includes the parent's count at
# fork, which is subtracted). Exactly repeatable, unlike wall time.
# Usage: bench/tcpserver/callgrind.sh OURS [DJB]   (needs valgrind, python3; loopback only)
set -e
OURS=${1:?usage: callgrind.sh path/to/our/tcpserver [djb tcpserver]}
DJB=${2:-$(dirname "$0")/../../.ext/ucspi-tcp/usr/bin/tcpserver}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT

total() { callgrind_annotate "$1" 2>/dev/null | grep -m1 'PROGRAM TOTALS' | awk '{print $1}' | tr -d ,; }

run() { # bin connections extra-valgrind-args -> prints the parent's total
  rm -f "$W"/out.* "$W"/port
  valgrind --tool=callgrind --trace-children=no $3 --callgrind-out-file="$W/out.%p" \
    "$1" -1 -HRl0 127.0.0.1 0 /bin/echo ok >"$W/port" 2>/dev/null &
  local vp=$!
  for _ in $(seq 100); do [ -s "$W/port" ] && break; sleep 0.1; done
  python3 -c "
import socket
for i in range($2):
    s = socket.create_connection(('127.0.0.1', $(cat "$W/port"))); s.recv(100); s.close()
"
  sleep 0.5
  kill -TERM $vp; wait $vp 2>/dev/null || true
}

for bin in "$DJB" "$OURS"; do
  run "$bin" 0 ""; base=$(total "$(ls "$W"/out.* | head -1)")
  run "$bin" 50 ""; fifty=$(total "$(ls "$W"/out.* | head -1)")
  per=$(( (fifty - base) / 50 ))
  run "$bin" 1 "--dump-before=execve"
  child=$(total "$(ls "$W"/out.*.1 | head -1)")
  echo "$bin: parent $per instructions per accept, child $(( child - base - per )) fork to exec"
done
