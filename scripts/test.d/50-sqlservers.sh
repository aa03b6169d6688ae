# Sourced by scripts/test.sh (bash, as root): what tests/tests/mailaccounts_config.rs
# runs against the configuration `mailaccounts config` prints. Dovecot's SQL drivers
# (Dovecot itself comes from 10-databases.sh) and Postfix's postmap with its MySQL,
# PostgreSQL and SQLite map modules.
#
# Debian's postfix conflicts with exim4, which other tests need installed, so Postfix is
# unpacked into .ext/postfix, not installed; the test runs its postmap by path with
# LD_LIBRARY_PATH=.ext/postfix/usr/lib/postfix and a private main.cf. Its libraries'
# own dependencies are installed here. The test finds it through POSTFIX_TEST_ROOT.

apt_install dovecot-sqlite dovecot-mysql dovecot-pgsql \
  libdb5.3 libicu72 libnsl2 libsasl2-2 libssl3 libmariadb3 libpq5 libsqlite3-0

ensure_postfix_unpacked() {
  local dir=.ext/postfix tmp pkg
  [ -x "$dir/usr/sbin/postmap" ] && [ -e "$dir/usr/lib/postfix/postfix-pgsql.so" ] && return 0
  tmp=$(mktemp -d)
  if ! (cd "$tmp" && apt-get download postfix postfix-mysql postfix-pgsql postfix-sqlite >/dev/null 2>&1); then
    if [ -z "$apt_updated" ]; then apt-get update -qq; apt_updated=1; fi
    (cd "$tmp" && apt-get download postfix postfix-mysql postfix-pgsql postfix-sqlite >/dev/null 2>&1)
  fi
  rm -rf "$dir"; mkdir -p "$dir"
  for pkg in "$tmp"/*.deb; do dpkg -x "$pkg" "$dir"; done
  rm -rf "$tmp"
}
ensure_postfix_unpacked
export POSTFIX_TEST_ROOT="$top/.ext/postfix"
