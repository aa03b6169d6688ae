# Sourced by scripts/test.sh (bash, as root): what the SMTP end-to-end tests run.
# tests/tests/rblsmtpd_smtp.rs starts our tcpserver with our rblsmtpd in front of Exim
# run inetd-style (`exim4 -C private.conf -bs`, configured in a temporary directory by
# the test itself) and talks to it with swaks; tests/tests/ssl_e2e.rs and sslclient.rs
# do the same under our sslserver and tcpserver, with swaks's TLS (Net::SSLeay, from
# libnet-ssleay-perl, which swaks only recommends). Nothing here starts a daemon;
# installing exim4-daemon-light may start Debian's own Exim on 127.0.0.1:25, which the
# tests avoid by using kernel-chosen ports.

apt_install exim4-daemon-light swaks libnet-ssleay-perl
