# Sourced by scripts/test.sh (bash, set -euo pipefail, as root): private MariaDB and
# PostgreSQL instances for the checkpassword tests, plus what those tests run (Dovecot,
# mkpasswd, sqlite3, argon2 (the reference implementation's CLI, for Argon2 hashes made
# by another tool), libxcrypt's headers for the build).
#
# Each server gets its own data directory, unix socket and loopback port under one
# temporary directory and is stopped and removed at exit. The tests reach them through:
#   CHECKPASSWORD_TEST_MYSQL_URL, CHECKPASSWORD_TEST_MYSQL_SOCKET_URL, CHECKPASSWORD_TEST_MYSQL_CTL
#   (MySQL also has a read-only account cpread/cp-read, as vpopmail.mysql's first line)
#   CHECKPASSWORD_TEST_PG_URL, CHECKPASSWORD_TEST_PG_SOCKET_URL, CHECKPASSWORD_TEST_PG_CTL
# where *_CTL is a script taking `start`, `stop` or `sql` (SQL on stdin, rows out as
# tab-separated lines).

apt_install libcrypt-dev sqlite3 whois mariadb-server mariadb-client postgresql \
  dovecot-core dovecot-imapd dovecot-pop3d argon2

cp_free_port() {
  local p i
  for i in $(seq 1 200); do
    p=$((20000 + RANDOM % 30000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  echo "no free port" >&2
  return 1
}

cp_wait() {
  # cp_wait SECONDS COMMAND...: polls COMMAND until it succeeds.
  local n=$(($1 * 10)); shift
  while ! "$@" >/dev/null 2>&1; do
    n=$((n - 1))
    [ "$n" -gt 0 ] || return 1
    sleep 0.1
  done
}

cp_dbdir=$(mktemp -d /tmp/checkpassword-db.XXXXXX)
chmod 755 "$cp_dbdir"
cleanups+=("[ -x '$cp_dbdir/mysql-ctl' ] && '$cp_dbdir/mysql-ctl' stop; [ -x '$cp_dbdir/pg-ctl' ] && '$cp_dbdir/pg-ctl' stop; rm -rf '$cp_dbdir'")

# --- MariaDB: mariadbd drops to the mysql user itself (--user). ---
cp_my_port=$(cp_free_port)
mkdir -p "$cp_dbdir/mysql"
chown mysql:mysql "$cp_dbdir/mysql"
mariadb-install-db --no-defaults --user=mysql --datadir="$cp_dbdir/mysql/data" \
  --auth-root-authentication-method=socket --skip-test-db >"$cp_dbdir/mysql-install.log" 2>&1
cat >"$cp_dbdir/mysql-ctl" <<CTL
#!/bin/bash
set -eu
d='$cp_dbdir/mysql'
case "\$1" in
start)
  [ -S "\$d/mysql.sock" ] && mariadb-admin --no-defaults -S "\$d/mysql.sock" -uroot ping >/dev/null 2>&1 && exit 0
  setsid mariadbd --no-defaults --user=mysql --datadir="\$d/data" --socket="\$d/mysql.sock" \\
    --port=$cp_my_port --bind-address=127.0.0.1 --pid-file="\$d/mysql.pid" --skip-log-bin \\
    --skip-name-resolve --log-error="\$d/error.log" --innodb-buffer-pool-size=32M \\
    </dev/null >/dev/null 2>&1 &
  for i in \$(seq 1 300); do
    mariadb-admin --no-defaults -S "\$d/mysql.sock" -uroot ping >/dev/null 2>&1 && exit 0
    sleep 0.1
  done
  echo "mariadb did not start; see \$d/error.log" >&2; exit 1 ;;
stop)
  [ -f "\$d/mysql.pid" ] || exit 0
  pid=\$(cat "\$d/mysql.pid"); kill "\$pid" 2>/dev/null || true
  for i in \$(seq 1 300); do kill -0 "\$pid" 2>/dev/null || exit 0; sleep 0.1; done
  kill -9 "\$pid" 2>/dev/null || true ;;
sql)
  exec mariadb --no-defaults -S "\$d/mysql.sock" -uroot -N -B cptest ;;
esac
CTL
chmod 755 "$cp_dbdir/mysql-ctl"
"$cp_dbdir/mysql-ctl" start
mariadb --no-defaults -S "$cp_dbdir/mysql/mysql.sock" -uroot <<'SQL'
CREATE DATABASE cptest;
CREATE USER 'cptest'@'127.0.0.1' IDENTIFIED BY 'cp-pw';
CREATE USER 'cptest'@'localhost' IDENTIFIED BY 'cp-pw';
GRANT ALL ON cptest.* TO 'cptest'@'127.0.0.1';
GRANT ALL ON cptest.* TO 'cptest'@'localhost';
CREATE USER 'cpread'@'localhost' IDENTIFIED BY 'cp-read';
GRANT SELECT ON cptest.* TO 'cpread'@'localhost';
SQL
export CHECKPASSWORD_TEST_MYSQL_URL="mysql://cptest:cp-pw@127.0.0.1:$cp_my_port/cptest"
export CHECKPASSWORD_TEST_MYSQL_SOCKET_URL="mysql://cptest:cp-pw@localhost/cptest?socket=$cp_dbdir/mysql/mysql.sock"
export CHECKPASSWORD_TEST_MYSQL_CTL="$cp_dbdir/mysql-ctl"

# --- PostgreSQL: must not run as root, so everything runs as the postgres user. ---
cp_pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
cp_pg_port=$(cp_free_port)
mkdir -p "$cp_dbdir/pg"
chown postgres:postgres "$cp_dbdir/pg"
(cd / && runuser -u postgres -- "$cp_pg_bin/initdb" -D "$cp_dbdir/pg/data" -U postgres \
  --auth-local=trust --auth-host=scram-sha-256 >"$cp_dbdir/pg-initdb.log" 2>&1)
# Two roles that log in over TCP by the older password methods, md5 and password
# (cleartext), for the test of those (the test creates the roles); the first matching
# line counts, so these go before initdb's own.
sed -i '1i host cptest cpmd5 127.0.0.1/32 md5\nhost cptest cpclear 127.0.0.1/32 password' \
  "$cp_dbdir/pg/data/pg_hba.conf"
cat >"$cp_dbdir/pg-ctl" <<CTL
#!/bin/bash
set -eu
d='$cp_dbdir/pg'
cd /
case "\$1" in
start)
  runuser -u postgres -- "$cp_pg_bin/pg_ctl" -D "\$d/data" -l "\$d/log" -w -t 60 status >/dev/null 2>&1 && exit 0
  runuser -u postgres -- "$cp_pg_bin/pg_ctl" -D "\$d/data" -l "\$d/log" -w -t 60 \\
    -o "-k \$d -p $cp_pg_port -c listen_addresses=127.0.0.1 -c fsync=off -c shared_buffers=16MB" start >/dev/null ;;
stop)
  runuser -u postgres -- "$cp_pg_bin/pg_ctl" -D "\$d/data" -w -t 60 -m fast stop >/dev/null 2>&1 || true ;;
sql)
  exec runuser -u postgres -- psql -X -q -h "\$d" -p $cp_pg_port -U postgres -d cptest \\
    -v ON_ERROR_STOP=1 -A -t -F "\$(printf '\t')" ;;
esac
CTL
chmod 755 "$cp_dbdir/pg-ctl"
"$cp_dbdir/pg-ctl" start
(cd / && runuser -u postgres -- psql -X -q -h "$cp_dbdir/pg" -p "$cp_pg_port" -U postgres -d postgres \
  -v ON_ERROR_STOP=1 -c "CREATE ROLE cptest LOGIN PASSWORD 'cp-pw'" -c "CREATE DATABASE cptest OWNER cptest" >/dev/null)
(cd / && runuser -u postgres -- psql -X -q -h "$cp_dbdir/pg" -p "$cp_pg_port" -U postgres -d cptest \
  -v ON_ERROR_STOP=1 -c "GRANT ALL ON SCHEMA public TO cptest" >/dev/null)
export CHECKPASSWORD_TEST_PG_URL="postgres://cptest:cp-pw@127.0.0.1:$cp_pg_port/cptest"
export CHECKPASSWORD_TEST_PG_CTL="$cp_dbdir/pg-ctl"
# Local (unix socket) connections use trust authentication.
export CHECKPASSWORD_TEST_PG_SOCKET_URL="postgres://cptest@localhost/cptest?host=$cp_dbdir/pg&port=$cp_pg_port"
