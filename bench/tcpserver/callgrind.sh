#!/bin/bash
# User-space instructions per connection under callgrind, djb's tcpserver vs ours:
# the parent per accept (difference between 51 connections and one) and the second
# connection's child from fork to exec (--dump-before=execve; the child's dump includes the parent's count at
# fork, which is subtracted). Exactly repeatable, unlike wall time.
# Usage: [FLAGS="-HRl0 -x rules.cdb"] bench/tcpserver/callgrind.sh OURS [DJB]
#        (FLAGS default -HRl0; needs valgrind, python3; loopback only)
set -e
OURS=${1:?usage: callgrind.sh path/to/our/tcpserver [djb tcpserver]}
DJB=${2:-$(dirname "$0")/../../.ext/ucspi-tcp/usr/bin/tcpserver}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT

. "$(dirname "$0")/callgrind-lib.sh"

run() { # bin connections extra-valgrind-args -> leaves the dumps in $W, sets vp
  rm -f "$W"/out.* "$W"/port
  valgrind --tool=callgrind --trace-children=no $3 --callgrind-out-file="$W/out.%p" \
    "$1" -1 ${FLAGS:--HRl0} 127.0.0.1 0 /bin/echo ok >"$W/port" 2>/dev/null &
  vp=$!
  for _ in $(seq 100); do [ -s "$W/port" ] && break; sleep 0.1; done
  [ -s "$W/port" ] || { echo "$1 did not start" >&2; stop $vp; exit 1; }
  python3 -c "
import socket
for i in range($2):
    s = socket.create_connection(('127.0.0.1', $(cat "$W/port"))); s.recv(100); s.close()
"
  sleep 0.5
  stop $vp
}

# Counted from the second connection on: the first one's also pays what our parent does
# once (reading a rules file into its cache).
for bin in "$DJB" "$OURS"; do
  run "$bin" 1 ""; base=$(total "$W/out.$vp")
  run "$bin" 51 ""; fifty=$(total "$W/out.$vp")
  per=$(( (fifty - base) / 50 ))
  run "$bin" 2 "--dump-before=execve"
  # The second child's dump: the one whose pid is larger.
  second=$(ls "$W"/out.*.1 | sed 's/.*out\.\([0-9]*\)\.1$/\1/' | sort -n | tail -1)
  child=$(total "$W/out.$second.1")
  echo "$bin: parent $per instructions per accept, child $(( child - base - per )) fork to exec"
done
