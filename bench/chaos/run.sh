#!/bin/bash
# bench/chaos/run.sh [SECONDS] [BACKENDS...]: checkpassword against databases that fail.
# Not part of the test suite; figures in README.md. Runs as root on loopback: starts a
# private MariaDB and PostgreSQL (as scripts/test.d/10-databases.sh does) and an SQLite
# file under one temporary directory, runs chaos.py against each, tears everything down.
#   SECONDS   length of each back end's run (default 60)
#   BACKENDS  any of sqlite mysql pg (default all three)
# CHAOS_SCHEDULE=long replaces the standard schedule (down, hang 4 s, hang 12 s, slow,
# table lock; SQLite: write transactions held 4, 12, 4 s) by one 45 s hang or hold.
# Binaries: $CHECKPASSWORD and $MAILACCOUNTS, else target/release/ of this checkout
# (CARGO_TARGET_DIR honoured).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
secs=${1:-60}; shift || true
backends=("$@"); [ ${#backends[@]} -gt 0 ] || backends=(sqlite mysql pg)
tgt=${CARGO_TARGET_DIR:-$root/target}
export CHECKPASSWORD=${CHECKPASSWORD:-$tgt/release/checkpassword}
export MAILACCOUNTS=${MAILACCOUNTS:-$tgt/release/mailaccounts}
[ -x "$CHECKPASSWORD" ] && [ -x "$MAILACCOUNTS" ] || { echo "build first: cargo build --release -p checkpassword -p mailaccounts" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }

d=$(mktemp -d /tmp/chaos.XXXXXX)
chmod 755 "$d"
out=${CHAOS_OUT:-$d/out}
mkdir -p "$out"
cleanup() {
  [ -x "$d/mysql-ctl" ] && "$d/mysql-ctl" stop || true
  [ -x "$d/pg-ctl" ] && "$d/pg-ctl" stop || true
  if [ -n "${CHAOS_KEEP:-}" ]; then echo "kept $d" >&2; else rm -rf "$d"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  local p i
  for i in $(seq 1 200); do
    p=$((20000 + RANDOM % 30000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  echo "no free port" >&2; return 1
}

want() { local b; for b in "${backends[@]}"; do [ "$b" = "$1" ] && return 0; done; return 1; }

# Each ctl script: start, stop, sql (SQL on stdin, tab-separated rows out), pids (the
# server's processes, one a line), lock SECONDS (another session holds a write lock on
# the user table for that long).
if want mysql; then
  port=$(free_port)
  mkdir -p "$d/mysql"; chown mysql:mysql "$d/mysql"
  mariadb-install-db --no-defaults --user=mysql --datadir="$d/mysql/data" \
    --auth-root-authentication-method=socket --skip-test-db >"$d/mysql-install.log" 2>&1
  cat >"$d/mysql-ctl" <<CTL
#!/bin/bash
set -eu
d='$d/mysql'
case "\$1" in
start)
  [ -S "\$d/mysql.sock" ] && mariadb-admin --no-defaults -S "\$d/mysql.sock" -uroot ping >/dev/null 2>&1 && exit 0
  setsid mariadbd --no-defaults --user=mysql --datadir="\$d/data" --socket="\$d/mysql.sock" \\
    --port=$port --bind-address=127.0.0.1 --pid-file="\$d/mysql.pid" --skip-log-bin \\
    --skip-name-resolve --log-error="\$d/error.log" --innodb-buffer-pool-size=32M \\
    --max-connections=500 </dev/null >/dev/null 2>&1 &
  for i in \$(seq 1 300); do
    mariadb-admin --no-defaults -S "\$d/mysql.sock" -uroot ping >/dev/null 2>&1 && exit 0
    sleep 0.1
  done
  echo "mariadb did not start; see \$d/error.log" >&2; exit 1 ;;
stop)
  [ -f "\$d/mysql.pid" ] || exit 0
  pid=\$(cat "\$d/mysql.pid"); kill -CONT "\$pid" 2>/dev/null || true; kill "\$pid" 2>/dev/null || true
  for i in \$(seq 1 300); do kill -0 "\$pid" 2>/dev/null || exit 0; sleep 0.1; done
  kill -9 "\$pid" 2>/dev/null || true ;;
pids)
  [ -f "\$d/mysql.pid" ] && cat "\$d/mysql.pid" || true ;;
lock)
  exec mariadb --no-defaults -S "\$d/mysql.sock" -uroot -N -B cptest \\
    -e "LOCK TABLES vpopmail WRITE; SELECT SLEEP(\$2); UNLOCK TABLES;" >/dev/null ;;
sql)
  exec mariadb --no-defaults -S "\$d/mysql.sock" -uroot -N -B cptest ;;
esac
CTL
  chmod 755 "$d/mysql-ctl"
  "$d/mysql-ctl" start
  mariadb --no-defaults -S "$d/mysql/mysql.sock" -uroot <<'SQL'
CREATE DATABASE cptest;
CREATE USER 'cptest'@'127.0.0.1' IDENTIFIED BY 'cp-pw';
GRANT ALL ON cptest.* TO 'cptest'@'127.0.0.1';
SQL
  mysql_url="mysql://cptest:cp-pw@127.0.0.1:$port/cptest"
fi

if want pg; then
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  port=$(free_port)
  mkdir -p "$d/pg"; chown postgres:postgres "$d/pg"
  (cd / && runuser -u postgres -- "$pg_bin/initdb" -D "$d/pg/data" -U postgres \
    --auth-local=trust --auth-host=scram-sha-256 >"$d/pg-initdb.log" 2>&1)
  cat >"$d/pg-ctl" <<CTL
#!/bin/bash
set -eu
d='$d/pg'
cd /
case "\$1" in
start)
  runuser -u postgres -- "$pg_bin/pg_ctl" -D "\$d/data" -l "\$d/log" -w -t 60 status >/dev/null 2>&1 && exit 0
  runuser -u postgres -- "$pg_bin/pg_ctl" -D "\$d/data" -l "\$d/log" -w -t 60 \\
    -o "-k \$d -p $port -c listen_addresses=127.0.0.1 -c fsync=off -c shared_buffers=16MB -c max_connections=200" start >/dev/null ;;
stop)
  for p in \$("\$0" pids); do kill -CONT "\$p" 2>/dev/null || true; done
  runuser -u postgres -- "$pg_bin/pg_ctl" -D "\$d/data" -w -t 60 -m fast stop >/dev/null 2>&1 || true ;;
pids)
  [ -f "\$d/data/postmaster.pid" ] || exit 0
  pm=\$(head -n 1 "\$d/data/postmaster.pid")
  echo "\$pm"
  for s in /proc/[0-9]*/stat; do
    read -r pid _ _ ppid _ 2>/dev/null <"\$s" || continue
    [ "\$ppid" = "\$pm" ] && echo "\$pid"
  done
  true ;;
lock)
  exec runuser -u postgres -- psql -X -q -h "\$d" -p $port -U postgres -d cptest -v ON_ERROR_STOP=1 \\
    -c "BEGIN; LOCK TABLE vpopmail IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(\$2); COMMIT;" >/dev/null ;;
sql)
  exec runuser -u postgres -- psql -X -q -h "\$d" -p $port -U postgres -d cptest \\
    -v ON_ERROR_STOP=1 -A -t -F "\$(printf '\t')" ;;
esac
CTL
  chmod 755 "$d/pg-ctl"
  "$d/pg-ctl" start
  (cd / && runuser -u postgres -- psql -X -q -h "$d/pg" -p "$port" -U postgres -d postgres \
    -v ON_ERROR_STOP=1 -c "CREATE ROLE cptest LOGIN PASSWORD 'cp-pw'" -c "CREATE DATABASE cptest OWNER cptest" >/dev/null)
  (cd / && runuser -u postgres -- psql -X -q -h "$d/pg" -p "$port" -U postgres -d cptest \
    -v ON_ERROR_STOP=1 -c "GRANT ALL ON SCHEMA public TO cptest" >/dev/null)
  pg_url="postgres://cptest:cp-pw@127.0.0.1:$port/cptest"
fi

if want sqlite; then
  mkdir -p "$d/sqlite"
  cat >"$d/sqlite-ctl" <<CTL
#!/bin/bash
set -eu
f='$d/sqlite/vpopmail.sqlite'
case "\$1" in
start|stop|pids) ;;
lock)
  # A process holding a write transaction open (BEGIN IMMEDIATE) for \$2 seconds.
  { echo '.timeout 20000'; echo 'BEGIN IMMEDIATE;'; sleep "\$2"; echo 'COMMIT;'; } | sqlite3 "\$f" ;;
sql)
  exec sqlite3 -separator "\$(printf '\t')" "\$f" ;;
esac
CTL
  chmod 755 "$d/sqlite-ctl"
fi

sched=${CHAOS_SCHEDULE:-standard}
suffix=; [ "$sched" = standard ] || suffix=-$sched
status=0
for b in "${backends[@]}"; do
  case "$b" in
  sqlite) url="sqlite:$d/sqlite/vpopmail.sqlite" ;;
  mysql) url=$mysql_url ;;
  pg) url=$pg_url ;;
  *) echo "unknown back end $b" >&2; exit 1 ;;
  esac
  mkdir -p "$d/$b-home"
  python3 "$here/chaos.py" --backend "$b" --db "$url" --ctl "$d/$b-ctl" --home "$d/$b-home" \
    --seconds "$secs" --schedule "$sched" --out "$out/$b$suffix" || status=$?
done
python3 "$here/chaos.py" --report "$out" "${backends[@]/%/$suffix}"
echo "records in $out (removed at exit unless CHAOS_OUT or CHAOS_KEEP is set)" >&2
exit $status
