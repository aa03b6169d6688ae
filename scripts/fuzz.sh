#!/bin/sh
# Builds the fuzz targets (fuzz/, cargo-fuzz on nightly) and runs each for SECONDS
# (default 60), one after another, then prints per target: executions, executions a
# second, coverage (cov: of libFuzzer's final stats line) and crashes (files in
# fuzz/artifacts/TARGET).
# New inputs go to fuzz/target/corpus/TARGET; the seeds in fuzz/corpus/TARGET are read.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
set -eu
secs=${1:-60}
[ $# -gt 0 ] && shift
cd "$(dirname "$0")/../fuzz"
# No allocation stack traces: the database clients allocate per message, and recording
# each one's stack took a quarter of their time. Replay a crash without this to see
# where its memory came from.
ASAN_OPTIONS=${ASAN_OPTIONS:-malloc_context_size=0}
export ASAN_OPTIONS
targets=${*:-$(cargo +nightly fuzz list)}
cargo +nightly fuzz build
logs=target/fuzz-logs
mkdir -p "$logs"
for t in $targets; do
    mkdir -p "target/corpus/$t" "corpus/$t"
    echo "== $t: ${secs}s" >&2
    # A crash ends the run with a failure status; the table below still reports it.
    # Shorter inputs where a longer one only repeats what a short one tries: settings'
    # lines (each password field found is followed by parsing the whole input again, so
    # the time per input grows with its square) and rules_line's lines (each compiled
    # alone; its coverage stopped growing at 1 kB inputs, while its rate halved on the
    # way to 4 kB) at most 1 kB; relay_rules' rows (of at most 45 bytes, each taken
    # alone, several dozen rows still fitting) at most 256 bytes, where at 1 kB it ran
    # at 3.5k a second.
    case $t in
    settings | rules_line) more=-max_len=1024 ;;
    relay_rules) more=-max_len=256 ;;
    *) more= ;;
    esac
    cargo +nightly fuzz run "$t" "target/corpus/$t" "corpus/$t" -- \
        -max_total_time="$secs" -print_final_stats=1 $more >"$logs/$t.log" 2>&1 || true
done
printf '%-18s %12s %8s %8s %8s\n' target execs execs/s cov crashes
for t in $targets; do
    log=$logs/$t.log
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)
    crashes=$(find "artifacts/$t" -type f 2>/dev/null | wc -l)
    printf '%-18s %12s %8s %8s %8s\n' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "$crashes"
done
