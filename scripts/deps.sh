# Sourced by scripts/test.sh and the benchmarks: installs what they need when missing.

apt_updated=
apt_install() {
  # Installs Debian packages that are not installed yet.
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "missing Debian packages: ${missing[*]} (run as root, or install them)" >&2
    return 1
  fi
  if [ -z "$apt_updated" ]; then apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_rust() {
  command -v cargo >/dev/null || { echo "cargo is missing: install Rust (rustup) first" >&2; return 1; }
}

# djb's binaries (Debian's ucspi-tcp) and fefe's IPv6 patch (ucspi-tcp-ipv6) conflict as
# packages, so both are unpacked into .ext/ instead of installed; the tests call them by
# path and never confuse them with ours.
ensure_debian_binaries() {
  local pkg dir tmp
  for pkg in ucspi-tcp ucspi-tcp-ipv6; do
    dir=".ext/$pkg"
    [ -x "$dir/usr/bin/tcprules" ] && continue
    command -v apt-get >/dev/null || { echo "need apt-get to fetch $pkg" >&2; return 1; }
    tmp=$(mktemp -d)
    if ! (cd "$tmp" && apt-get download "$pkg" >/dev/null 2>&1); then
      if [ -z "$apt_updated" ]; then apt-get update -qq; apt_updated=1; fi
      (cd "$tmp" && apt-get download "$pkg" >/dev/null 2>&1)
    fi
    rm -rf "$dir"; mkdir -p "$dir"
    dpkg -x "$tmp"/"$pkg"_*.deb "$dir"
    rm -rf "$tmp"
  done
}
