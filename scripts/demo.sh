#!/usr/bin/env bash
# The main job, end to end on loopback: tcprules compiles access rules, our tcpserver
# serves a POP3-style front end under them, and our checkpassword logs a user in
# against the embedded SQLite database the way qmail-popup calls it. Run as root on a
# fresh Debian machine: it installs what it needs, builds, and cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
. scripts/deps.sh
ensure_rust
ensure_debian_binaries            # djb's tcpclient plays the client
apt_install libcrypt-dev sqlite3 whois
cargo build --release -q -p tcprules -p tcpserver -p checkpassword
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

say "user database: vpopmail's schema in the embedded SQLite back end"
uid=$(id -u nobody) gid=$(getent group nogroup | cut -d: -f3)
mkdir -p "$d/domains/example.com/alice/Maildir"
chown -R "$uid:$gid" "$d/domains"
hash=$(mkpasswd -m sha-512 'correct horse')
sqlite3 "$d/users.sqlite" <<SQL
CREATE TABLE vpopmail (pw_name TEXT NOT NULL, pw_domain TEXT NOT NULL, pw_passwd TEXT,
  pw_uid INTEGER, pw_gid INTEGER, pw_gecos TEXT, pw_dir TEXT, pw_shell TEXT,
  pw_clear_passwd TEXT, PRIMARY KEY (pw_name, pw_domain));
INSERT INTO vpopmail VALUES ('alice', 'example.com', '$hash', 0, 0, 'Alice',
  '$d/domains/example.com/alice', 'NOQUOTA', '');
SQL
sqlite3 "$d/users.sqlite" 'SELECT pw_name, pw_domain, substr(pw_passwd, 1, 12) || '"'"'...'"'"' FROM vpopmail'
export CHECKPASSWORD_DB="sqlite:$d/users.sqlite" CHECKPASSWORD_UID=$uid CHECKPASSWORD_GID=$gid

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
sqlite3 "$d/users.sqlite" 'SELECT * FROM lastauth'
echo; echo "demo finished: all steps behaved as expected"
