#!/usr/bin/env bash
# The main job, end to end on loopback: tcprules compiles access rules, mailaccounts
# creates a domain and a user in the embedded SQLite database, our tcpserver serves a
# POP3-style front end under the rules, and our checkpassword logs the user in the way
# qmail-popup calls it. Run as root on a
# fresh Debian machine: it installs what it needs, builds, and cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
. scripts/deps.sh
ensure_rust
ensure_debian_binaries            # djb's tcpclient plays the client
apt_install libcrypt-dev
cargo build --release -q -p tcprules -p tcpserver -p checkpassword -p mailaccounts
bin=$top/target/release
tcpclient=$top/.ext/ucspi-tcp/usr/bin/tcpclient

d=$(mktemp -d /tmp/ucspi-demo.XXXXXX); chmod 755 "$d"
server=
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$d"; }
trap cleanup EXIT
say() { printf '\n== %s\n' "$*"; }

say "rules: relaying for 127.0.0.1, 127.0.0.2 denied, everyone else allowed"
cat > "$d/tcp.pop3" <<'RULES'
127.0.0.1:allow,RELAYCLIENT="",DEMO="local"
127.0.0.2:deny
:allow
RULES
cat "$d/tcp.pop3"
"$bin/tcprules" "$d/tcp.pop3.cdb" "$d/tcp.pop3.tmp" < "$d/tcp.pop3"
TCPREMOTEIP=127.0.0.1 "$bin/tcprulescheck" "$d/tcp.pop3.cdb"

say "user database: mailaccounts init, add-domain, add (embedded SQLite)"
uid=$(id -u nobody) gid=$(getent group nogroup | cut -d: -f3)
export CHECKPASSWORD_DB="sqlite:$d/users.sqlite" QMAIL="$d/qmail"
mkdir -p "$d/domains"
"$bin/mailaccounts" init
"$bin/mailaccounts" add-domain example.com --uid "$uid" --gid "$gid" --dir "$d/domains/example.com"
echo 'correct horse' | "$bin/mailaccounts" add alice@example.com --gecos Alice
"$bin/mailaccounts" list
cat "$QMAIL/users/assign"

say "tcpserver on 127.0.0.1, port chosen by the kernel (-1 prints it)"
"$bin/tcpserver" -v -1 -R -H -l0 -c 10 -x "$d/tcp.pop3.cdb" 127.0.0.1 0 \
  "$top/scripts/demo/pop3-front" "$bin/checkpassword" "$top/scripts/demo/pop3-session" \
  > "$d/port" 2> "$d/log" &
server=$!
for _ in $(seq 100); do [ -s "$d/port" ] && break; sleep 0.05; done
port=$(cat "$d/port"); echo "listening on 127.0.0.1:$port"

pop() { # pop SOURCE-IP USER PASS
  "$tcpclient" -RHl0 -i "$1" 127.0.0.1 "$port" sh -c \
    'printf "USER %s\r\nPASS %s\r\nQUIT\r\n" "$0" "$1" >&7; exec cat <&6' "$2" "$3" | tr -d '\r'
}
say "login with the right password (from 127.0.0.1)"
out=$(pop 127.0.0.1 alice@example.com 'correct horse'); echo "$out"
grep -q "+OK logged in: USER=alice HOME=$d/domains/example.com/alice uid=$uid" <<<"$out"
say "login with a wrong password"
out=$(pop 127.0.0.1 alice@example.com 'wrong'); echo "$out"
grep -q -- '-ERR authorization failed' <<<"$out"
say "a client the rules deny (127.0.0.2): the connection is closed at once"
out=$(pop 127.0.0.2 alice@example.com 'correct horse' || true); echo "${out:-(nothing)}"
[ -z "$out" ]
sleep 0.3
say "tcpserver's log (-v) and checkpassword's lines"
cat "$d/log"
say "lastauth, written by checkpassword"
"$bin/mailaccounts" lastauth
echo; echo "demo finished: all steps behaved as expected"
