#!/usr/bin/env bash
# Regenerates checkpassword/hot-symbols.txt: the C functions (bundled SQLite, libxcrypt)
# that one SQLite login runs, which checkpassword/build.rs asks the linker to place side
# by side at the start of the program text. A login then touches a few dozen contiguous
# pages of code instead of pages spread over 1.7 MB: 7 page faults fewer per start, ~0.06 ms
# of a login on the benchmark VM (bench/checkpassword/ab.sh, paired A/B).
#
# Only C names go in: they stay the same from build to build, where Rust's mangled
# names carry a hash that changes with any edit. Run it after updating rusqlite (a new
# SQLite renames a few functions; the linker skips names it does not find, so a stale
# list only loses some of the gain).
# Usage: bench/checkpassword/hot-symbols.sh   (as root: the login runs as nobody)
set -euo pipefail
cd "$(dirname "$0")/../.."
top=$(pwd)

# shellcheck source=scripts/deps.sh
. scripts/deps.sh
apt_install valgrind sqlite3 whois
cargo build --release --locked -p checkpassword >&2
bin="${CARGO_TARGET_DIR:-$top/target}/release/checkpassword"

work=$(mktemp -d /tmp/cp-hot.XXXXXX)
trap 'rm -rf "$work"' EXIT
# shellcheck source=bench/checkpassword/users.sh
. bench/checkpassword/users.sh
cp_bench_setup "$work"
cp "$bin" "$work/checkpassword"
printf 'bench@%s\0%s\0\0' "$cp_domain" "$cp_pw" >"$work/fd3"
chown -R nobody "$work"
# Two logins: the first switches the file to WAL mode and creates lastauth, the second
# is an ordinary one. Run as an SMTP AUTH check (allowed without root) whose program
# cannot be run, so that the process exits (111) and callgrind writes its profile.
for i in 1 2; do
  rm -f "$work/callgrind.out"
  runuser -u nobody -- env -i PATH=/usr/bin:/bin CHECKPASSWORD_CONFIG=/dev/null \
    CHECKPASSWORD_VPOPMAIL_DIR="$work" QMAIL="$work" TCPLOCALPORT=25 TCPREMOTEIP=192.0.2.1 \
    CHECKPASSWORD_DB="sqlite:$work/users.sqlite" \
    valgrind -q --tool=callgrind --demangle=no --compress-strings=no \
    --callgrind-out-file="$work/callgrind.out" "$work/checkpassword" /nonexistent \
    3<"$work/fd3" 2>/dev/null || true
done
# The functions of our own binary without Rust's mangled names (_ZN..., _R...) and
# callgrind's pseudo-names (recursion, addresses, "(below main)"), sorted: the order
# within the hot set matters little, and a sorted list changes only where the set does.
awk '/^ob=/ { ours = ($0 ~ /checkpassword$/) } /^fn=/ && ours { print substr($0, 4) }' \
  "$work/callgrind.out" | grep -Ev "^(_ZN|_R)|'|^0x|[ ()]" | LC_ALL=C sort -u \
  >checkpassword/hot-symbols.txt
echo "checkpassword/hot-symbols.txt: $(wc -l <checkpassword/hot-symbols.txt) functions" >&2
