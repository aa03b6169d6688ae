# Sourced by scripts/test.sh (bash, as root): the TLS peers the sslserver and sslclient
# tests talk to. openssl makes each test's private CA and is the s_client/s_server
# peer; curl is an HTTPS client; Python's ssl module and swaks/exim4 (20-smtp.sh) are
# the others. Nothing here starts a daemon.

apt_install openssl curl ca-certificates python3
