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
# shellcheck source=bench/checkpassword/users.sh
. bench/checkpassword/users.sh
cp_bench_setup "$work"
for i in 1 2 3; do
  "${cp_env[@]}" CHECKPASSWORD_DB="sqlite:$work/users.sqlite" \
    "$work/harness" "$n" "$cp_login" -ab "$work/a" "$work/b"
done
