#!/usr/bin/env bash
# Paired A/B of two checkpassword builds (harness.c -ab), on SQLite logins or on MariaDB
# logins over its unix socket: the way to tell a change of 0.1 ms from the noise of a VM
# whose speed drifts by a third within minutes, which separate runs of run.sh cannot.
# Prints three repeats of N pairs each. Both binaries are copied first: one written a
# moment ago started up to 0.2 ms faster here than one written half an hour before (an
# effect of the page cache, not of the code), which made changes look better than they
# were. For MariaDB it starts the private server of scripts/test.d/10-databases.sh, as
# run.sh does, unless that has already exported its URLs.
# Usage: bench/checkpassword/ab.sh BIN_A BIN_B [N] [sqlite|mysql]   (as root, like run.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
usage="usage: $0 BIN_A BIN_B [N] [sqlite|mysql]"
[ $# -ge 2 ] || { echo "$usage" >&2; exit 100; }
a=$(realpath "$1") b=$(realpath "$2") n=${3:-600} backend=${4:-sqlite}
case "$backend" in
sqlite | mysql) ;;
*) echo "$usage" >&2; exit 100 ;;
esac

# shellcheck source=scripts/deps.sh
. scripts/deps.sh
apt_install gcc libc6-dev libcrypt-dev whois sqlite3
cleanups=()
on_exit() { local c; for c in "${cleanups[@]:-}"; do [ -n "$c" ] && eval "$c" || true; done; }
trap on_exit EXIT
work=$(mktemp -d /tmp/cp-ab.XXXXXX)
cleanups+=("rm -rf '$work'")
chmod 755 "$work"
gcc -O2 -o "$work/harness" bench/checkpassword/harness.c -lcrypt
cp "$a" "$work/a"
cp "$b" "$work/b"
# shellcheck source=bench/checkpassword/users.sh
. bench/checkpassword/users.sh
cp_bench_setup "$work"
db="sqlite:$work/users.sqlite"
if [ "$backend" = mysql ]; then
  if [ -z "${CHECKPASSWORD_TEST_MYSQL_CTL:-}" ]; then
    # shellcheck source=scripts/test.d/10-databases.sh
    . scripts/test.d/10-databases.sh
  fi
  echo "$cp_schema $cp_row" | "$CHECKPASSWORD_TEST_MYSQL_CTL" sql
  db=$CHECKPASSWORD_TEST_MYSQL_SOCKET_URL
fi
echo "A: $a"
echo "B: $b"
echo "$backend logins, $n pairs a repeat"
for i in 1 2 3; do
  "${cp_env[@]}" CHECKPASSWORD_DB="$db" "$work/harness" "$n" "$cp_login" -ab "$work/a" "$work/b"
done
