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
#
# Both servers speak TLS with a certificate for 127.0.0.1 and localhost made here by a
# private CA; for the TLS tests (tests/tests/checkpassword_tls.rs) also:
#   CHECKPASSWORD_TEST_CA, CHECKPASSWORD_TEST_WRONG_CA   the CA, and one that signed nothing
#   CHECKPASSWORD_TEST_MYSQL_TLS_URL   an account created REQUIRE SSL
#   CHECKPASSWORD_TEST_PG_TLS_URL      a role that pg_hba.conf lets in by hostssl only
#   CHECKPASSWORD_TEST_MYSQL_STRICT_URL, _CTL   a second MariaDB with require_secure_transport
#   CHECKPASSWORD_TEST_MYSQL_PLAIN_URL, _CTL    a third MariaDB, without TLS
#   CHECKPASSWORD_TEST_PG_PLAIN_URL, _CTL       a second PostgreSQL, without TLS
# (the extra servers are the TLS tests' alone: the shared ones keep their settings).

apt_install libcrypt-dev sqlite3 whois mariadb-server mariadb-client postgresql \
  dovecot-core dovecot-imapd dovecot-pop3d argon2 openssl

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
cleanups+=("for c in '$cp_dbdir'/*-ctl; do [ -x \"\$c\" ] && \"\$c\" stop; done; rm -rf '$cp_dbdir'")

# --- Certificates: a CA, the servers' certificate (RSA 2048, as Debian's snakeoil and
# MySQL's own), a CA that signed nothing; a copy of the key for each server's account. ---
cp_tls="$cp_dbdir/tls"
mkdir -p "$cp_tls"
(
  cd "$cp_tls"
  ca_ext=(-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign)
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 \
    -subj "/CN=checkpassword test CA" "${ca_ext[@]}" 2>/dev/null
  openssl req -x509 -newkey rsa:2048 -nodes -keyout wrong-ca.key -out wrong-ca.pem -days 2 \
    -subj "/CN=checkpassword wrong CA" "${ca_ext[@]}" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=localhost" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.ext
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile server.ext -out server.pem 2>/dev/null
  rm -f ca.key wrong-ca.key server.csr server.ext ca.srl
  install -m 600 -o mysql -g mysql server.key mysql.key
  install -m 600 -o postgres -g postgres server.key pg.key
  rm -f server.key
  chmod 644 ca.pem wrong-ca.pem server.pem
)
chmod 755 "$cp_tls"
export CHECKPASSWORD_TEST_CA="$cp_tls/ca.pem"
export CHECKPASSWORD_TEST_WRONG_CA="$cp_tls/wrong-ca.pem"

# --- MariaDB: mariadbd drops to the mysql user itself (--user). ---
# cp_mysql_instance NAME PORT OPTIONS...: the control script $cp_dbdir/NAME-ctl for a
# server on the data directory $cp_dbdir/NAME/data.
cp_mysql_instance() {
  local name=$1 port=$2
  shift 2
  cat >"$cp_dbdir/$name-ctl" <<CTL
#!/bin/bash
set -eu
d='$cp_dbdir/$name'
case "\$1" in
start)
  [ -S "\$d/mysql.sock" ] && mariadb-admin --no-defaults -S "\$d/mysql.sock" -uroot ping >/dev/null 2>&1 && exit 0
  setsid mariadbd --no-defaults --user=mysql --datadir="\$d/data" --socket="\$d/mysql.sock" \\
    --port=$port --bind-address=127.0.0.1 --pid-file="\$d/mysql.pid" --skip-log-bin \\
    --skip-name-resolve --log-error="\$d/error.log" --innodb-buffer-pool-size=32M $* \\
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
  chmod 755 "$cp_dbdir/$name-ctl"
}
cp_my_port=$(cp_free_port)
mkdir -p "$cp_dbdir/mysql"
chown mysql:mysql "$cp_dbdir/mysql"
mariadb-install-db --no-defaults --user=mysql --datadir="$cp_dbdir/mysql/data" \
  --auth-root-authentication-method=socket --skip-test-db >"$cp_dbdir/mysql-install.log" 2>&1
# The TLS tests' two servers start from copies of the fresh data directory.
for cp_name in mysql-strict mysql-plain; do
  mkdir -p "$cp_dbdir/$cp_name"
  cp -a "$cp_dbdir/mysql/data" "$cp_dbdir/$cp_name/data"
  chown mysql:mysql "$cp_dbdir/$cp_name"
done
cp_my_tls="--ssl-cert=$cp_tls/server.pem --ssl-key=$cp_tls/mysql.key --ssl-ca=$cp_tls/ca.pem"
cp_my_strict_port=$(cp_free_port)
cp_my_plain_port=$(cp_free_port)
cp_mysql_instance mysql "$cp_my_port" "$cp_my_tls"
cp_mysql_instance mysql-strict "$cp_my_strict_port" "$cp_my_tls" --require-secure-transport=ON
cp_mysql_instance mysql-plain "$cp_my_plain_port" --skip-ssl
"$cp_dbdir/mysql-strict-ctl" start &
cp_strict_pid=$!
"$cp_dbdir/mysql-plain-ctl" start &
cp_plain_pid=$!
"$cp_dbdir/mysql-ctl" start
wait "$cp_strict_pid" "$cp_plain_pid"
for cp_name in mysql-strict mysql-plain; do
  mariadb --no-defaults -S "$cp_dbdir/$cp_name/mysql.sock" -uroot <<'SQL'
CREATE DATABASE cptest;
CREATE USER 'cptest'@'127.0.0.1' IDENTIFIED BY 'cp-pw';
GRANT ALL ON cptest.* TO 'cptest'@'127.0.0.1';
SQL
done
mariadb --no-defaults -S "$cp_dbdir/mysql/mysql.sock" -uroot <<'SQL'
CREATE DATABASE cptest;
CREATE USER 'cptest'@'127.0.0.1' IDENTIFIED BY 'cp-pw';
CREATE USER 'cptest'@'localhost' IDENTIFIED BY 'cp-pw';
GRANT ALL ON cptest.* TO 'cptest'@'127.0.0.1';
GRANT ALL ON cptest.* TO 'cptest'@'localhost';
CREATE USER 'cpread'@'localhost' IDENTIFIED BY 'cp-read';
GRANT SELECT ON cptest.* TO 'cpread'@'localhost';
CREATE USER 'cptls'@'127.0.0.1' IDENTIFIED BY 'cp-tls' REQUIRE SSL;
GRANT ALL ON cptest.* TO 'cptls'@'127.0.0.1';
SQL
export CHECKPASSWORD_TEST_MYSQL_URL="mysql://cptest:cp-pw@127.0.0.1:$cp_my_port/cptest"
export CHECKPASSWORD_TEST_MYSQL_SOCKET_URL="mysql://cptest:cp-pw@localhost/cptest?socket=$cp_dbdir/mysql/mysql.sock"
export CHECKPASSWORD_TEST_MYSQL_CTL="$cp_dbdir/mysql-ctl"
export CHECKPASSWORD_TEST_MYSQL_TLS_URL="mysql://cptls:cp-tls@127.0.0.1:$cp_my_port/cptest"
export CHECKPASSWORD_TEST_MYSQL_STRICT_URL="mysql://cptest:cp-pw@127.0.0.1:$cp_my_strict_port/cptest"
export CHECKPASSWORD_TEST_MYSQL_STRICT_CTL="$cp_dbdir/mysql-strict-ctl"
export CHECKPASSWORD_TEST_MYSQL_PLAIN_URL="mysql://cptest:cp-pw@127.0.0.1:$cp_my_plain_port/cptest"
export CHECKPASSWORD_TEST_MYSQL_PLAIN_CTL="$cp_dbdir/mysql-plain-ctl"

# --- PostgreSQL: must not run as root, so everything runs as the postgres user. ---
cp_pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
cp_pg_port=$(cp_free_port)
mkdir -p "$cp_dbdir/pg"
chown postgres:postgres "$cp_dbdir/pg"
(cd / && runuser -u postgres -- "$cp_pg_bin/initdb" -D "$cp_dbdir/pg/data" -U postgres \
  --auth-local=trust --auth-host=scram-sha-256 >"$cp_dbdir/pg-initdb.log" 2>&1)
# A second cluster without TLS, for the TLS tests, from a copy of the fresh one.
mkdir -p "$cp_dbdir/pg-plain"
cp -a "$cp_dbdir/pg/data" "$cp_dbdir/pg-plain/data"
chown postgres:postgres "$cp_dbdir/pg-plain"
# Two roles that log in over TCP by the older password methods, md5 and password
# (cleartext), for the test of those (the test creates the roles), and one that may log
# in over TLS only; the first matching line counts, so these go before initdb's own.
sed -i '1i host cptest cpmd5 127.0.0.1/32 md5\nhost cptest cpclear 127.0.0.1/32 password\nhostssl cptest cptls 127.0.0.1/32 scram-sha-256\nhostnossl cptest cptls 127.0.0.1/32 reject' \
  "$cp_dbdir/pg/data/pg_hba.conf"
# cp_pg_instance NAME PORT OPTIONS: the control script $cp_dbdir/NAME-ctl.
cp_pg_instance() {
  cat >"$cp_dbdir/$1-ctl" <<CTL
#!/bin/bash
set -eu
d='$cp_dbdir/$1'
cd /
case "\$1" in
start)
  runuser -u postgres -- "$cp_pg_bin/pg_ctl" -D "\$d/data" -l "\$d/log" -w -t 60 status >/dev/null 2>&1 && exit 0
  runuser -u postgres -- "$cp_pg_bin/pg_ctl" -D "\$d/data" -l "\$d/log" -w -t 60 \\
    -o "-k \$d -p $2 -c listen_addresses=127.0.0.1 -c fsync=off -c shared_buffers=16MB $3" start >/dev/null ;;
stop)
  runuser -u postgres -- "$cp_pg_bin/pg_ctl" -D "\$d/data" -w -t 60 -m fast stop >/dev/null 2>&1 || true ;;
sql)
  exec runuser -u postgres -- psql -X -q -h "\$d" -p $2 -U postgres -d cptest \\
    -v ON_ERROR_STOP=1 -A -t -F "\$(printf '\t')" ;;
esac
CTL
  chmod 755 "$cp_dbdir/$1-ctl"
}
cp_pg_plain_port=$(cp_free_port)
cp_pg_instance pg "$cp_pg_port" "-c ssl=on -c ssl_cert_file=$cp_tls/server.pem -c ssl_key_file=$cp_tls/pg.key"
cp_pg_instance pg-plain "$cp_pg_plain_port" "-c ssl=off"
"$cp_dbdir/pg-ctl" start
"$cp_dbdir/pg-plain-ctl" start
for cp_name in pg pg-plain; do
  cp_port=$cp_pg_port
  [ "$cp_name" = pg ] || cp_port=$cp_pg_plain_port
  (cd / && runuser -u postgres -- psql -X -q -h "$cp_dbdir/$cp_name" -p "$cp_port" -U postgres -d postgres \
    -v ON_ERROR_STOP=1 -c "CREATE ROLE cptest LOGIN PASSWORD 'cp-pw'" -c "CREATE DATABASE cptest OWNER cptest" >/dev/null)
  (cd / && runuser -u postgres -- psql -X -q -h "$cp_dbdir/$cp_name" -p "$cp_port" -U postgres -d cptest \
    -v ON_ERROR_STOP=1 -c "GRANT ALL ON SCHEMA public TO cptest" >/dev/null)
done
# The TLS-only role acts as cptest (SET ROLE at each login), so that a table
# checkpassword creates on its first login belongs to cptest like the others.
(cd / && runuser -u postgres -- psql -X -q -h "$cp_dbdir/pg" -p "$cp_pg_port" -U postgres -d cptest \
  -v ON_ERROR_STOP=1 -c "CREATE ROLE cptls LOGIN PASSWORD 'cp-tls' IN ROLE cptest" \
  -c "ALTER ROLE cptls SET role TO 'cptest'" >/dev/null)
export CHECKPASSWORD_TEST_PG_URL="postgres://cptest:cp-pw@127.0.0.1:$cp_pg_port/cptest"
export CHECKPASSWORD_TEST_PG_CTL="$cp_dbdir/pg-ctl"
# Local (unix socket) connections use trust authentication.
export CHECKPASSWORD_TEST_PG_SOCKET_URL="postgres://cptest@localhost/cptest?host=$cp_dbdir/pg&port=$cp_pg_port"
export CHECKPASSWORD_TEST_PG_TLS_URL="postgres://cptls:cp-tls@127.0.0.1:$cp_pg_port/cptest"
export CHECKPASSWORD_TEST_PG_PLAIN_URL="postgres://cptest:cp-pw@127.0.0.1:$cp_pg_plain_port/cptest"
export CHECKPASSWORD_TEST_PG_PLAIN_CTL="$cp_dbdir/pg-plain-ctl"
