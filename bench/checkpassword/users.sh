# Sourced by the checkpassword benchmarks: the vpopmail user they log in as, and how.
# cp_bench_setup DIR sets:
#   cp_domain, cp_pw      the user's domain and password
#   cp_hash               the password's \$6\$ hash, as stored
#   cp_login              user@domain:password, as the harness takes it
#   cp_schema, cp_row     SQL for vpopmail's table and the user's row (any of the three
#                         back ends; the row replaces an earlier one)
#   cp_env                the environment of a login: no config file, ids for the exec,
#                         qmail and vpopmail's directories in DIR, a POP3 connection
# and writes DIR/users.sqlite (the table, the row) and DIR/home (the user's directory).
cp_bench_setup() {
  local dir=$1
  cp_domain=bench.example
  cp_pw='Bench-pw-1'
  cp_login="bench@$cp_domain:$cp_pw"
  cp_hash=$(mkpasswd -m sha-512 "$cp_pw")
  mkdir -p "$dir/home"
  cp_schema="CREATE TABLE IF NOT EXISTS vpopmail (pw_name VARCHAR(64) NOT NULL,
  pw_domain VARCHAR(96) NOT NULL, pw_passwd VARCHAR(128), pw_uid INT, pw_gid INT,
  pw_gecos VARCHAR(64), pw_dir VARCHAR(160), pw_shell VARCHAR(20),
  pw_clear_passwd VARCHAR(128), PRIMARY KEY (pw_name, pw_domain));"
  cp_row="DELETE FROM vpopmail WHERE pw_domain = '$cp_domain';
  INSERT INTO vpopmail VALUES ('bench', '$cp_domain', '$cp_hash', 0, 0,
  'B', '$dir/home', 'NOQUOTA', '');"
  sqlite3 -batch "$dir/users.sqlite" <<<"$cp_schema $cp_row"
  cp_env=(env CHECKPASSWORD_CONFIG=/dev/null CHECKPASSWORD_UID=43240 CHECKPASSWORD_GID=43241
    CHECKPASSWORD_VPOPMAIL_DIR="$dir" QMAIL="$dir" TCPLOCALPORT=110 TCPREMOTEIP=192.0.2.1)
}
