# Sourced by scripts/test.sh (bash, as root): what the rblsmtpd end-to-end test runs.
# tests/tests/rblsmtpd_smtp.rs starts our tcpserver with our rblsmtpd in front of Exim
# run inetd-style (`exim4 -C private.conf -bs`, configured in a temporary directory by
# the test itself) and talks to it with swaks. Nothing here starts a daemon; installing
# exim4-daemon-light may start Debian's own Exim on 127.0.0.1:25, which the test avoids
# by listening on 127.0.42.51.

apt_install exim4-daemon-light swaks
