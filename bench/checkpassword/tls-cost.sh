#!/usr/bin/env bash
# What TLS costs checkpassword itself on one TCP login, in instructions (callgrind; the
# machine's speed and load do not enter): MariaDB and PostgreSQL over loopback TCP without
# TLS, with TLS unverified (`require`) and verified (`verify-full` against the test CA),
# each the second of two logins. The servers' side of the handshake is not counted here;
# run.sh's wall times hold both.
# Usage: bench/checkpassword/tls-cost.sh   (as root; starts private database servers
# unless scripts/test.d/10-databases.sh has already exported their URLs)
set -euo pipefail
cd "$(dirname "$0")/../.."
top=$(pwd)

# shellcheck source=scripts/deps.sh
. scripts/deps.sh
apt_install valgrind sqlite3 whois
cleanups=()
on_exit() { local c; for c in "${cleanups[@]:-}"; do [ -n "$c" ] && eval "$c" || true; done; }
trap on_exit EXIT
if [ -z "${CHECKPASSWORD_TEST_MYSQL_CTL:-}" ] || [ -z "${CHECKPASSWORD_TEST_CA:-}" ]; then
  # shellcheck source=scripts/test.d/10-databases.sh
  . scripts/test.d/10-databases.sh
fi
cargo build --release --locked -p checkpassword >&2
bin="${CARGO_TARGET_DIR:-$top/target}/release/checkpassword"

work=$(mktemp -d /tmp/cp-tlscost.XXXXXX)
cleanups+=("rm -rf '$work'")
# shellcheck source=bench/checkpassword/users.sh
. bench/checkpassword/users.sh
cp_bench_setup "$work"
echo "$cp_schema $cp_row" | "$CHECKPASSWORD_TEST_MYSQL_CTL" sql
echo "$cp_schema ALTER TABLE vpopmail OWNER TO cptest; $cp_row" | "$CHECKPASSWORD_TEST_PG_CTL" sql >/dev/null
cp "$bin" "$work/checkpassword"
cp "$CHECKPASSWORD_TEST_CA" "$work/ca.pem"
printf 'bench@%s\0%s\0\0' "$cp_domain" "$cp_pw" >"$work/fd3"
chown -R nobody "$work"

# Instructions of one login: as an SMTP AUTH check (allowed without root) whose program
# cannot be run, so that the process exits (111) and callgrind writes its profile.
instructions() {
  local i
  for i in 1 2; do
    rm -f "$work/callgrind.out"
    runuser -u nobody -- env -i PATH=/usr/bin:/bin CHECKPASSWORD_CONFIG=/dev/null \
      CHECKPASSWORD_VPOPMAIL_DIR="$work" QMAIL="$work" TCPLOCALPORT=25 TCPREMOTEIP=192.0.2.1 \
      CHECKPASSWORD_DB="$1" valgrind -q --tool=callgrind \
      --callgrind-out-file="$work/callgrind.out" "$work/checkpassword" /nonexistent \
      3<"$work/fd3" >/dev/null 2>"$work/err" || true
  done
  # The login must have got as far as the program.
  grep -q 'login success' "$work/err" || { cat "$work/err" >&2; exit 1; }
  awk '/^summary:/ { print $2 }' "$work/callgrind.out"
}
vfy="sslmode=verify-full&sslrootcert=$work/ca.pem"
printf '%-12s %14s %14s %14s\n' "" "no TLS" "TLS" "TLS verified"
for db in mysql pg; do
  if [ "$db" = mysql ]; then url=$CHECKPASSWORD_TEST_MYSQL_URL; else url=$CHECKPASSWORD_TEST_PG_URL; fi
  plain=$(instructions "$url?sslmode=disable")
  tls=$(instructions "$url?sslmode=require")
  verified=$(instructions "$url?$vfy")
  printf '%-12s %14s %14s %14s\n' "$db" "$plain" "$tls" "$verified"
  awk -v p="$plain" -v t="$tls" -v v="$verified" -v d="$db" \
    'BEGIN { printf "%s: TLS adds %.2f M instructions (x%.2f), verified %.2f M (x%.2f)\n", d, (t - p) / 1e6, t / p, (v - p) / 1e6, v / p }'
done
