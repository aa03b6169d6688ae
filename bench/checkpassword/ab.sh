#!/usr/bin/env bash
# Paired A/B of two checkpassword builds on SQLite logins (harness.c -ab): the way to tell a change
# of 0.1 ms from the noise of a VM whose speed drifts by a third within minutes, which
# separate runs of run.sh cannot. Prints three repeats of N pairs each. Both binaries are
# copied first: one written a moment ago started up to 0.2 ms faster here than one
# written half an hour before (an effect of the page cache, not of the code), which made
# changes look better than they were.
# Usage: bench/checkpassword/ab.sh BIN_A BIN_B [N]   (as root, like run.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 2 ] || { echo "usage: $0 BIN_A BIN_B [N]" >&2; exit 100; }
a=$(realpath "$1") b=$(realpath "$2") n=${3:-600}

# shellcheck source=scripts/deps.sh
. scripts/deps.sh
apt_install gcc libc6-dev libcrypt-dev whois sqlite3
work=$(mktemp -d /tmp/cp-ab.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
gcc -O2 -o "$work/harness" bench/checkpassword/harness.c -lcrypt
cp "$a" "$work/a"
cp "$b" "$work/b"
pw='Bench-pw-1'
mkdir -p "$work/home"
sqlite3 -batch "$work/users.sqlite" <<SQL
CREATE TABLE vpopmail (pw_name VARCHAR(64) NOT NULL, pw_domain VARCHAR(96) NOT NULL,
  pw_passwd VARCHAR(128), pw_uid INT, pw_gid INT, pw_gecos VARCHAR(64), pw_dir VARCHAR(160),
  pw_shell VARCHAR(20), pw_clear_passwd VARCHAR(128), PRIMARY KEY (pw_name, pw_domain));
INSERT INTO vpopmail VALUES ('bench', 'bench.example', '$(mkpasswd -m sha-512 "$pw")', 0, 0,
  'B', '$work/home', 'NOQUOTA', '');
SQL
for i in 1 2 3; do
  env CHECKPASSWORD_CONFIG=/dev/null CHECKPASSWORD_UID=43240 CHECKPASSWORD_GID=43241 \
    CHECKPASSWORD_VPOPMAIL_DIR="$work" QMAIL="$work" TCPLOCALPORT=110 TCPREMOTEIP=192.0.2.1 \
    CHECKPASSWORD_DB="sqlite:$work/users.sqlite" "$work/harness" "$n" "bench@bench.example:$pw" -ab "$work/a" "$work/b"
done
