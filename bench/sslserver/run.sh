#!/bin/sh
# Builds sslserver and tcpserver (release, from the workspace) and the benchmark, then
# runs it against Debian's stunnel4. Not part of CI.
#
#   bench/sslserver/run.sh [benchmark options...]
#
# Environment:
#   CARGO_TARGET_DIR  where the workspace binaries are built (default: the workspace's
#                     target/); the benchmark reads them from $CARGO_TARGET_DIR/release
#   BIN               take sslserver and tcpserver from this directory instead, unbuilt
#   STUNNEL           stunnel4 binary (default /usr/bin/stunnel4; apt-get install stunnel4)
#   WAIT_QUIET        wait up to this many minutes for a 1-minute load average below 1.0
#                     before running (default 0: run at once)
# Options are the benchmark's (defaults here: --seconds 3 --rounds 5, K = 1,10,100,
# 200 connections held, 256 MiB relayed, s_time 10 s); see src/main.rs or README.md.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
stunnel=${STUNNEL:-/usr/bin/stunnel4}

if [ ! -x "$stunnel" ]; then
    echo "run.sh: no $stunnel (apt-get install stunnel4)" >&2
    exit 1
fi
command -v openssl >/dev/null || { echo "run.sh: no openssl (apt-get install openssl)" >&2; exit 1; }

if [ -n "${BIN:-}" ]; then
    bin=$BIN
else
    (cd "$root" && cargo build --release -p sslserver -p tcpserver)
    bin=${CARGO_TARGET_DIR:-$root/target}/release
fi
# The benchmark is its own workspace with its own target directory.
(cd "$here" && CARGO_TARGET_DIR="$here/target" cargo build --release)

minutes=${WAIT_QUIET:-0}
if [ "$minutes" -gt 0 ]; then
    i=0
    while [ "$i" -lt $((minutes * 6)) ]; do
        load=$(cut -d' ' -f1 /proc/loadavg)
        if awk "BEGIN { exit !($load < 1.0) }"; then
            break
        fi
        i=$((i + 1))
        sleep 10
    done
fi
echo "uptime before the run: $(uptime)"

exec "$here/target/release/sslserver-bench" \
    --sslserver "$bin/sslserver" --tcpserver "$bin/tcpserver" --stunnel "$stunnel" \
    --seconds 3 --rounds 5 "$@"
