#!/usr/bin/env bash
# Per-login wall time of checkpassword (fork, fd 3, lookup, $6$ verify, lastauth and
# lockout bookkeeping, exec of /bin/true) against SQLite, MariaDB over its unix socket
# and PostgreSQL over its unix socket, and both over loopback TCP without TLS, with TLS
# (unverified, the default `prefer`) and with TLS verified (verify-full against the
# test CA: its file read, the chain and the name checked), next to:
#   - the floor: fork+exec of /bin/true alone
#   - the hash alone: crypt_r of the same $6$ hash
#   - a C checkpassword doing the same one lookup with libmariadb (c_mysql_login.c)
#   - a C checkpassword doing the same SQLite lookup and lastauth update with the system's
#     libsqlite3 (c_sqlite_login.c), for reference
# Also: a wrong password and an unknown user, which must cost the same.
# Prints medians and 90th percentiles in microseconds, and the issue's two ratios:
#   SQLite: p50 login cost above the hash's own cost (target <= 1500 us)
#   MariaDB: ours / the C client (target <= 0.7)
# Usage: [ROUNDS=20] bench/checkpassword/run.sh [N]   (as root; starts private database servers
# unless scripts/test.d/10-databases.sh has already exported their URLs)
set -euo pipefail
cd "$(dirname "$0")/../.."
top=$(pwd)
n=${1:-300}

# shellcheck source=scripts/deps.sh
. scripts/deps.sh
apt_install gcc libc6-dev libmariadb-dev libcrypt-dev libsqlite3-dev whois sqlite3
cleanups=()
on_exit() { local c; for c in "${cleanups[@]:-}"; do [ -n "$c" ] && eval "$c" || true; done; }
trap on_exit EXIT
if [ -z "${CHECKPASSWORD_TEST_MYSQL_CTL:-}" ] || [ -z "${CHECKPASSWORD_TEST_PG_SOCKET_URL:-}" ]; then
  # shellcheck source=scripts/test.d/10-databases.sh
  . scripts/test.d/10-databases.sh
fi

cargo build --release --locked -p checkpassword >&2
cp_bin="${CARGO_TARGET_DIR:-$top/target}/release/checkpassword"

work=$(mktemp -d /tmp/cp-bench.XXXXXX)
chmod 755 "$work"
cleanups+=("rm -rf '$work'")
gcc -O2 -o "$work/harness" bench/checkpassword/harness.c -lcrypt
# shellcheck disable=SC2046
gcc -O2 -o "$work/c_mysql_login" bench/checkpassword/c_mysql_login.c $(mariadb_config --cflags --libs) -lcrypt
gcc -O2 -o "$work/c_sqlite_login" bench/checkpassword/c_sqlite_login.c -lsqlite3 -lcrypt

# shellcheck source=bench/checkpassword/users.sh
. bench/checkpassword/users.sh
cp_bench_setup "$work"
echo "$cp_schema $cp_row" | "$CHECKPASSWORD_TEST_MYSQL_CTL" sql
echo "$cp_schema ALTER TABLE vpopmail OWNER TO cptest; $cp_row" | "$CHECKPASSWORD_TEST_PG_CTL" sql >/dev/null

mysock=${CHECKPASSWORD_TEST_MYSQL_SOCKET_URL#*socket=}

# Rounds alternate between the configurations so that load from elsewhere on the
# machine hits them alike; each figure is the median of the rounds' medians (p90 alike).
# Short rounds (15 logins by default): the speed of a shared VM changes within seconds,
# and long rounds let one configuration catch a slow spell that another escapes.
rounds=${ROUNDS:-20}
per=$(( (n + rounds - 1) / rounds ))
names=(floor hash sqlite csqlite wrong unknown mysql cmysql mysqlnf mytcp mytls myvfy pg pgtls pgvfy pgsock)
vfy="sslmode=verify-full&sslrootcert=$CHECKPASSWORD_TEST_CA"
declare -A med p90
run_one() {
  case "$1" in
  floor) "$work/harness" "$per" "$cp_login" /bin/true ;;
  hash) "$work/harness" "$per" hash "$cp_hash" "$cp_pw" ;;
  sqlite) "${cp_env[@]}" CHECKPASSWORD_DB="sqlite:$work/users.sqlite" "$work/harness" "$per" "$cp_login" "$cp_bin" /bin/true ;;
  csqlite) "$work/harness" "$per" "$cp_login" "$work/c_sqlite_login" "$work/users.sqlite" 192.0.2.1 /bin/true ;;
  wrong | unknown)
    local l="$cp_login"
    if [ "$1" = wrong ]; then l="bench@$cp_domain:not-$cp_pw"; else l="nobody@$cp_domain:$cp_pw"; fi
    "${cp_env[@]}" CHECKPASSWORD_DB="sqlite:$work/users.sqlite" HARNESS_ANY_STATUS=1 \
      CHECKPASSWORD_LOCKOUT_FAILURES=0 CHECKPASSWORD_LOCKOUT_IP_FAILURES=0 \
      "$work/harness" "$per" "$l" "$cp_bin" /bin/true ;;
  mysql) "${cp_env[@]}" CHECKPASSWORD_DB="$CHECKPASSWORD_TEST_MYSQL_SOCKET_URL" "$work/harness" "$per" "$cp_login" "$cp_bin" /bin/true ;;
  mysqlnf)
    # The same, with the server not syncing its log at each commit (a common setting
    # on mail servers): shows what our lastauth write costs the server, which the C
    # lookup-only client does not pay.
    echo "SET GLOBAL innodb_flush_log_at_trx_commit = 2" | "$CHECKPASSWORD_TEST_MYSQL_CTL" sql
    "${cp_env[@]}" CHECKPASSWORD_DB="$CHECKPASSWORD_TEST_MYSQL_SOCKET_URL" "$work/harness" "$per" "$cp_login" "$cp_bin" /bin/true
    echo "SET GLOBAL innodb_flush_log_at_trx_commit = 1" | "$CHECKPASSWORD_TEST_MYSQL_CTL" sql ;;
  cmysql) "$work/harness" "$per" "$cp_login" "$work/c_mysql_login" "$mysock" cptest cp-pw cptest /bin/true ;;
  mytcp | mytls | myvfy)
    local q=sslmode=disable
    if [ "$1" = mytls ]; then q=sslmode=prefer; elif [ "$1" = myvfy ]; then q=$vfy; fi
    "${cp_env[@]}" CHECKPASSWORD_DB="$CHECKPASSWORD_TEST_MYSQL_URL?$q" "$work/harness" "$per" "$cp_login" "$cp_bin" /bin/true ;;
  pg | pgtls | pgvfy)
    local q=sslmode=disable
    if [ "$1" = pgtls ]; then q=sslmode=prefer; elif [ "$1" = pgvfy ]; then q=$vfy; fi
    "${cp_env[@]}" CHECKPASSWORD_DB="$CHECKPASSWORD_TEST_PG_URL?$q" "$work/harness" "$per" "$cp_login" "$cp_bin" /bin/true ;;
  pgsock) "${cp_env[@]}" CHECKPASSWORD_DB="$CHECKPASSWORD_TEST_PG_SOCKET_URL" "$work/harness" "$per" "$cp_login" "$cp_bin" /bin/true ;;
  esac
}
for r in $(seq 1 "$rounds"); do
  for k in "${names[@]}"; do
    out=$(run_one "$k" </dev/null)
    med[$k]+="${out%% *} "
    p90[$k]+="${out##* } "
  done
done
middle() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
echo "checkpassword benchmark: $rounds rounds of $per logins each, microseconds"
printf '%-44s %8s %8s\n' "" median p90
label() {
  case "$1" in
  floor) echo "fork+exec /bin/true (floor)" ;;
  hash) echo "crypt_r of the \$6\$ hash alone" ;;
  sqlite) echo "ours, SQLite" ;;
  csqlite) echo "C + libsqlite3, SQLite (lookup, lastauth)" ;;
  wrong) echo "ours, SQLite, wrong password (exit 1)" ;;
  unknown) echo "ours, SQLite, unknown user (exit 1)" ;;
  mysql) echo "ours, MariaDB (unix socket)" ;;
  mysqlnf) echo "ours, MariaDB, flush_log_at_trx_commit=2" ;;
  cmysql) echo "C + libmariadb, MariaDB (unix socket)" ;;
  mytcp) echo "ours, MariaDB (loopback TCP, no TLS)" ;;
  mytls) echo "ours, MariaDB (TCP, TLS unverified)" ;;
  myvfy) echo "ours, MariaDB (TCP, TLS verify-full)" ;;
  pg) echo "ours, PostgreSQL (loopback TCP, SCRAM, no TLS)" ;;
  pgtls) echo "ours, PostgreSQL (TCP, TLS unverified)" ;;
  pgvfy) echo "ours, PostgreSQL (TCP, TLS verify-full)" ;;
  pgsock) echo "ours, PostgreSQL (unix socket, trust)" ;;
  esac
}
declare -A m
for k in "${names[@]}"; do
  m[$k]=$(middle "${med[$k]}")
  printf '%-44s %8s %8s\n' "$(label "$k")" "${m[$k]}" "$(middle "${p90[$k]}")"
done
# The targets, each also taken round by round (the configurations of one round run
# within a second or two of each other, so a change in the machine's speed between
# rounds cancels out), then the median over the rounds.
above=$((m[sqlite] - m[floor] - m[hash]))
above_rounds=$(awk -v s="${med[sqlite]}" -v f="${med[floor]}" -v h="${med[hash]}" \
  'BEGIN { n = split(s, a, " "); split(f, b, " "); split(h, c, " ")
           for (i = 1; i <= n; i++) printf "%d ", a[i] - b[i] - c[i] }')
ratio_rounds=$(awk -v a="${med[mysql]}" -v b="${med[cmysql]}" \
  'BEGIN { n = split(a, x, " "); split(b, y, " "); for (i = 1; i <= n; i++) printf "%.3f ", x[i] / y[i] }')
echo "SQLite: p50 login cost above the fork+exec floor and the hash: ${above} us;" \
  "round by round: $(middle "$above_rounds") us (target <= 1500)"
awk -v a="${m[mysql]}" -v b="${m[cmysql]}" -v r="$(middle "$ratio_rounds")" \
  'BEGIN { printf "MariaDB: ours / C client = %.2f; round by round: %.2f (target <= 0.70)\n", a / b, r }'
awk -v a="${m[mysqlnf]}" -v b="${m[cmysql]}" \
  'BEGIN { printf "MariaDB without a log sync per commit: ours / C client = %.2f\n", a / b }'
awk -v a="${m[sqlite]}" -v b="${m[csqlite]}" -v f="${m[floor]}" -v h="${m[hash]}" \
  'BEGIN { printf "SQLite: ours / C + libsqlite3 = %.2f (the C client: %d us above the floor and the hash)\n", a / b, b - f - h }'
echo "SQLite: unknown user vs wrong password: ${m[unknown]} vs ${m[wrong]} us (the dummy hash keeps them alike)"
awk -v a="${m[pg]}" -v b="${m[cmysql]}" \
  'BEGIN { printf "PostgreSQL: ours / C MariaDB client = %.2f (for reference)\n", a / b }'
# TLS's cost per TCP login, round by round (each round's configurations run side by
# side), then the median over the rounds.
tls_cost() {
  awk -v a="${med[$2]}" -v b="${med[$1]}" \
    'BEGIN { n = split(a, x, " "); split(b, y, " "); for (i = 1; i <= n; i++) printf "%d ", x[i] - y[i] }'
}
for pair in "mytcp mytls MariaDB" "mytcp myvfy MariaDB" "pg pgtls PostgreSQL" "pg pgvfy PostgreSQL"; do
  read -r plain tls db <<<"$pair"
  echo "$db over TCP: $(label "$tls") - no TLS = $(middle "$(tls_cost "$plain" "$tls")") us a login" \
    "(${m[$plain]} -> ${m[$tls]} us from the medians)"
done
