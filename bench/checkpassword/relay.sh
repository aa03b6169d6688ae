#!/usr/bin/env bash
# What POP-before-SMTP's rebuild after a login (relay_rebuild = on) adds to a POP login:
# instructions of one SQLite login under callgrind (release build), as ratios to the same
# login with relay = on and relay_rebuild = off. The usual login comes from an address
# the cdb already holds (one cdb lookup more); a login from a new address rebuilds the
# cdb from the 3-line base file and 10, 1,000 or 10,000 open relay rows.
# Usage: bench/checkpassword/relay.sh   (as root: the login drops to the benchmark ids)
set -euo pipefail
cd "$(dirname "$0")/../.."
top=$(pwd)

# shellcheck source=scripts/deps.sh
. scripts/deps.sh
apt_install valgrind sqlite3 whois
cargo build --release --locked -p checkpassword >&2
bin="${CARGO_TARGET_DIR:-$top/target}/release/checkpassword"

work=$(mktemp -d /tmp/cp-relay.XXXXXX)
trap 'rm -rf "$work"' EXIT
# shellcheck source=bench/checkpassword/users.sh
. bench/checkpassword/users.sh
cp_bench_setup "$work"
printf 'bench@%s\0%s\0\0' "$cp_domain" "$cp_pw" >"$work/fd3"
mkdir -p "$work/etc"
printf '127.0.0.1:allow,RELAYCLIENT=""\n10.0.0.0/8:allow,RELAYCLIENT=""\n:allow\n' \
  >"$work/etc/tcp.smtp"

# Instructions of one login from $1 with relay_rebuild $2; the program cannot be run, so
# that the process exits (111) and callgrind reports.
ins() {
  { "${cp_env[@]}" TCPREMOTEIP="$1" CHECKPASSWORD_RELAY=on CHECKPASSWORD_RELAY_REBUILD="$2" \
    CHECKPASSWORD_DB="sqlite:$work/users.sqlite" \
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" /nonexistent \
    3<"$work/fd3" 2>&1 >/dev/null || true; } | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
ratio() { awk -v a="$1" -v b="$base" 'BEGIN { printf "%.2f", a / b }'; }

ins 192.0.2.1 off >/dev/null # WAL mode and the tables, once
base=$(ins 192.0.2.1 off)
echo "relay_rebuild off:                      $base instructions"
ins 192.0.2.1 on >/dev/null # puts 192.0.2.1 into the cdb
n=$(ins 192.0.2.1 on)
echo "relay_rebuild on, address in the cdb:   $n ($(ratio "$n"))"
now=$(date +%s)
k=10
for rows in 10 1000 10000; do
  {
    echo "BEGIN; DELETE FROM relay WHERE ip_addr LIKE '10.%';"
    for i in $(seq 1 "$rows"); do
      echo "INSERT INTO relay VALUES ('10.$((i / 62500)).$((i / 250 % 250)).$((1 + i % 250))', $now);"
    done
    echo "COMMIT;"
  } | sqlite3 -batch "$work/users.sqlite"
  k=$((k + 1))
  n=$(ins "198.51.100.$k" on)
  printf 'relay_rebuild on, rebuild, %5d rows: %s (%s)\n' "$rows" "$n" "$(ratio "$n")"
done
