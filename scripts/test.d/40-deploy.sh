# Sourced by scripts/test.sh (bash, as root): what the deployment tests run.
# tests/tests/tcpserver_deploy.rs and sslserver_deploy.rs socket-activate our servers
# with systemd's `systemd-socket-activate` (package systemd; only that command is used,
# systemd itself need not run) and put them behind HAProxy (package haproxy), which each
# test configures in a temporary directory and runs in the foreground (`haproxy -db`) on
# kernel-chosen loopback ports. Installing haproxy may start Debian's own instance,
# whose default configuration listens on no port; nothing here starts a daemon.

apt_install systemd haproxy
