#!/usr/bin/env bash
# Runs one command inside the test environment that scripts/test.sh builds: Debian's
# ucspi-tcp binaries in .ext/, and the private servers of scripts/test.d (all of them, or
# only the files named in TEST_D, e.g. TEST_D="10-databases 40-deploy"), torn down when
# the command ends. For running part of the suite by hand:
#   bash scripts/with-test-env.sh cargo test -p blackbox --test checkpassword
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
# shellcheck source=scripts/deps.sh
. scripts/deps.sh
ensure_rust
ensure_debian_binaries
export UCSPI_DJB_BIN="$top/.ext/ucspi-tcp/usr/bin"
export UCSPI_FEFE_BIN="$top/.ext/ucspi-tcp-ipv6/usr/bin"
cleanups=()
on_exit() { local c; for c in "${cleanups[@]:-}"; do [ -n "$c" ] && eval "$c" || true; done; }
trap on_exit EXIT
for f in scripts/test.d/*.sh; do
  [ -e "$f" ] || continue
  if [ -n "${TEST_D:-}" ]; then
    case " $TEST_D " in *" $(basename "$f" .sh) "*) ;; *) continue ;; esac
  fi
  # shellcheck disable=SC1090
  . "$f"
done
"$@"
