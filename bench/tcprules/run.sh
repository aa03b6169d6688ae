#!/usr/bin/env bash
# tcprules benchmark: Debian's (djb's 0.88) and ours compile the same 1,000 /
# 100,000 / 1,000,000-line files in the same run, alternating, several times each.
# Prints the median wall time and peak RSS of each and the ratio ours/djb; then the
# cost of one lookup in a 10-line and in a 1M-line cdb (instructions, by callgrind).
set -euo pipefail
cd "$(dirname "$0")/../.."
top=$(pwd)
. scripts/deps.sh
ensure_debian_binaries
apt_install time valgrind python3 >/dev/null
cargo build --release -q -p tcprules
djb=$top/.ext/ucspi-tcp/usr/bin
ours=$top/target/release
runs=${RUNS:-5}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

printf '%-9s %-5s %10s %10s %10s %10s %8s %8s\n' lines "" djb_s ours_s djb_MiB ours_MiB t_ratio rss_ratio
for n in 1000 100000 1000000; do
  python3 bench/tcprules/gen.py "$n" > "$work/in.txt"
  : > "$work/djb.times"; : > "$work/ours.times"; : > "$work/djb.rss"; : > "$work/ours.rss"
  for i in $(seq "$runs"); do
    for who in djb ours; do
      bin=$djb/tcprules; [ "$who" = ours ] && bin=$ours/tcprules
      t0=$EPOCHREALTIME
      /usr/bin/time -f '%M' -o "$work/t" "$bin" "$work/$who.cdb" "$work/$who.tmp" < "$work/in.txt"
      t1=$EPOCHREALTIME
      read -r kb < "$work/t"
      secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }')
      echo "$secs" >> "$work/$who.times"; echo "$kb" >> "$work/$who.rss"
    done
  done
  cmp -s "$work/djb.cdb" "$work/ours.cdb" || { echo "cdb bytes differ at $n lines" >&2; exit 1; }
  dt=$(median < "$work/djb.times"); ot=$(median < "$work/ours.times")
  dr=$(median < "$work/djb.rss"); orss=$(median < "$work/ours.rss")
  awk -v n="$n" -v dt="$dt" -v ot="$ot" -v dr="$dr" -v orss="$orss" 'BEGIN {
    tr = (dt > 0) ? ot / dt : 0;
    printf "%-9s %-5s %10.4f %10.4f %10.1f %10.1f %8.2f %8.2f\n", n, "", dt, ot, dr/1024, orss/1024, tr, orss/dr }'
  cp "$work/ours.cdb" "$work/rules-$n.cdb"
done

echo
echo "lookup cost (instructions of one tcprulescheck run, by callgrind; same client each time):"
printf '1.2.3.4:allow\n=.example.com:deny\n:allow,DEFAULT="1"\n' > "$work/small.txt"
for i in $(seq 7); do echo "10.$i.0.0:allow"; done >> "$work/small.txt"
"$ours/tcprules" "$work/rules-10.cdb" "$work/x.tmp" < "$work/small.txt"
count() { # bin cdb
  TCPREMOTEIP=203.0.113.9 TCPREMOTEHOST=mail.example.org TCPREMOTEINFO=joe \
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$1" "$2" 2>&1 >/dev/null |
    sed -n 's/.*Collected : *\([0-9]*\).*/\1/p'
}
printf '%-12s %14s %14s %8s\n' program "10-line cdb" "1M-line cdb" ratio
for who in djb ours; do
  bin=$djb/tcprulescheck; [ "$who" = ours ] && bin=$ours/tcprulescheck
  s=$(count "$bin" "$work/rules-10.cdb"); l=$(count "$bin" "$work/rules-1000000.cdb")
  awk -v w="$who" -v s="$s" -v l="$l" 'BEGIN { printf "%-12s %14d %14d %8.3f\n", w, s, l, l/s }'
done
