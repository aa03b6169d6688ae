#!/bin/bash
# User-space instructions of one connection's child with DNS on, as callgrind.sh counts
# them (the child from fork to exec, --dump-before=execve, less the parent's count at
# fork), for `-1 -hRl0` (one PTR lookup of the client) and `-1 -hpRl0` (PTR, then the
# paranoid A lookup of the name). The DNS is a tiny responder of our own on
# 127.0.0.211:53, UDP and TCP, answering 1.0.0.127.in-addr.arpa PTR localhost. and
# localhost A 127.0.0.1 (other names: NXDOMAIN); tcpserver gets DNSCACHEIP=127.0.0.211.
# The server runs /usr/bin/env, and the client checks TCPREMOTEHOST=localhost, so a
# failed lookup cannot pass for a cheap one. With two binaries it prints SECOND - FIRST.
# Usage: bench/tcpserver/callgrind-dns.sh FIRST [SECOND]
#        (root for port 53; needs valgrind, python3; loopback only)
set -e
[ -n "$1" ] || { echo "usage: callgrind-dns.sh path/to/tcpserver [other tcpserver]" >&2; exit 2; }
DNSIP=127.0.0.211
W=$(mktemp -d)
dnspid=
cleanup() {
  [ -n "$dnspid" ] && kill "$dnspid" 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT

cat >"$W/dns.py" <<'EOF'
# A DNS responder for the benchmark: two records, UDP and TCP, stops by itself.
import select, socket, struct, sys, time
ip, ready, log = sys.argv[1], sys.argv[2], sys.argv[3]
ZONE = {
    (b"1.0.0.127.in-addr.arpa", 12): b"\x09localhost\x00",
    (b"localhost", 1): bytes([127, 0, 0, 1]),
}
NAMES = {n for n, _ in ZONE}

def reply(q):
    if len(q) < 12 or q[2] & 0x80:
        return None
    qid, flags, qd = struct.unpack(">HHH", q[:6])
    if qd != 1:
        return None
    pos, labels = 12, []
    while pos < len(q) and q[pos]:
        n = q[pos]
        labels.append(q[pos + 1:pos + 1 + n])
        pos += 1 + n
    pos += 1
    if pos + 4 > len(q):
        return None
    qtype, qclass = struct.unpack(">HH", q[pos:pos + 4])
    question = q[12:pos + 4]
    name = b".".join(labels).lower()
    data = ZONE.get((name, qtype)) if qclass == 1 else None
    rcode = 0 if name in NAMES else 3
    head = struct.pack(">HHHHHH", qid, 0x8180 | (flags & 0x0100) | rcode, 1,
                       1 if data else 0, 0, 0)
    ans = b""
    if data:
        ans = struct.pack(">HHHIH", 0xC00C, qtype, 1, 300, len(data)) + data
    with open(log, "a") as f:
        f.write("%s %d %s\n" % (name.decode(), qtype, "answer" if data else "rcode %d" % rcode))
    return head + question + ans

u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind((ip, 53))
t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind((ip, 53))
t.listen(16)
open(ready, "w").write("ok\n")
end = time.time() + 900
while time.time() < end:
    r, _, _ = select.select([u, t], [], [], 1.0)
    if u in r:
        q, peer = u.recvfrom(4096)
        a = reply(q)
        if a:
            u.sendto(a, peer)
    if t in r:
        c, _ = t.accept()
        c.settimeout(5)
        try:
            buf = b""
            while len(buf) < 2 or len(buf) < 2 + struct.unpack(">H", buf[:2])[0]:
                b = c.recv(4096)
                if not b:
                    break
                buf += b
            a = reply(buf[2:]) if len(buf) >= 2 else None
            if a:
                c.sendall(struct.pack(">H", len(a)) + a)
        except OSError:
            pass
        c.close()
EOF
timeout 1000 python3 "$W/dns.py" "$DNSIP" "$W/dns.ready" "$W/dns.log" 2>"$W/dns.err" &
dnspid=$!
for _ in $(seq 50); do [ -s "$W/dns.ready" ] && break; sleep 0.1; done
[ -s "$W/dns.ready" ] || { echo "DNS responder did not start on $DNSIP:53:" >&2; cat "$W/dns.err" >&2; exit 1; }

. "$(dirname "$0")/callgrind-lib.sh"

run() { # bin flags connections extra-valgrind-args -> leaves the dumps in $W, sets vp
  rm -f "$W"/out.* "$W"/port
  DNSCACHEIP=$DNSIP valgrind --tool=callgrind --trace-children=no $4 \
    --callgrind-out-file="$W/out.%p" "$1" $2 127.0.0.1 0 /usr/bin/env >"$W/port" 2>/dev/null &
  vp=$!
  for _ in $(seq 100); do [ -s "$W/port" ] && break; sleep 0.1; done
  [ -s "$W/port" ] || { echo "$1 did not start" >&2; stop $vp; exit 1; }
  python3 -c "
import socket, sys
for i in range($3):
    s = socket.create_connection(('127.0.0.1', $(cat "$W/port")), timeout=30)
    got = b''
    while True:
        b = s.recv(65536)
        if not b:
            break
        got += b
    s.close()
    if b'TCPREMOTEHOST=localhost\n' not in got:
        sys.exit('connection %d: no TCPREMOTEHOST=localhost in the environment' % i)
" || { stop $vp; exit 1; }
  sleep 0.5
  stop $vp
}

measure() { # bin flags -> prints the child's count
  local base fifty per child
  run "$1" "$2" 0 ""; base=$(total "$W/out.$vp")
  run "$1" "$2" 50 ""; fifty=$(total "$W/out.$vp")
  per=$(( (fifty - base) / 50 ))
  run "$1" "$2" 1 "--dump-before=execve"
  child=$(total "$(ls "$W"/out.*.1 | head -1)")
  echo $(( child - base - per ))
}

for flags in "-1 -hRl0" "-1 -hpRl0"; do
  : >"$W/dns.log"
  a=$(measure "$1" "$flags")
  echo "$1 $flags: child $a fork to exec"
  if [ -n "$2" ]; then
    b=$(measure "$2" "$flags")
    echo "$2 $flags: child $b fork to exec"
    echo "difference ($flags): $(( b - a )) (second - first)"
  fi
  echo "queries answered: $(sort "$W/dns.log" | uniq -c | tr -s ' ' | paste -sd';')"
done
