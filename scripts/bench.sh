#!/usr/bin/env bash
# Runs the WAL benchmarks and prints one summary table (see BENCHMARKS.md).
#
#   scripts/bench.sh                 full run (~5 min on 2 cores, plus the release build)
#   scripts/bench.sh --quick         smaller logs: scan 64 MiB, open 256 MiB
#   scripts/bench.sh --smoke         each benchmark body once on tiny data (seconds)
#   scripts/bench.sh -v [FILTER...]  stream criterion's own output; FILTERs go to criterion
#                                    (e.g. `scripts/bench.sh group_commit`)
#
# Environment: WALDEN_BENCH_DIR (where to write; must be a real disk, not tmpfs),
# WALDEN_BENCH_SCAN_LOG_BYTES, WALDEN_BENCH_OPEN_LOG_BYTES (e.g. 1G, 256M).
set -euo pipefail
cd "$(dirname "$0")/.."

verbose=0
filters=()
for arg in "$@"; do
  case "$arg" in
    --smoke) export WALDEN_BENCH_SMOKE=1 ;;
    --quick)
      export WALDEN_BENCH_SCAN_LOG_BYTES="${WALDEN_BENCH_SCAN_LOG_BYTES:-64M}"
      export WALDEN_BENCH_OPEN_LOG_BYTES="${WALDEN_BENCH_OPEN_LOG_BYTES:-256M}"
      ;;
    -v | --verbose) verbose=1 ;;
    -h | --help)
      sed -n '2,12p' "$0"
      exit 0
      ;;
    *) filters+=("$arg") ;;
  esac
done

target_dir="${CARGO_TARGET_DIR:-target}"
out_dir="$target_dir/walden-bench"
mkdir -p "$out_dir"
log="$out_dir/bench.log"
scale=full
if [ -n "${WALDEN_BENCH_SMOKE:-}" ] && [ "${WALDEN_BENCH_SMOKE}" != 0 ]; then scale=smoke; fi
summary="$out_dir/summary-$scale.md"
rm -f "$summary"

cmd=(cargo bench -p walden-benches --bench wal -- "${filters[@]}")
echo "==> ${cmd[*]}  (log: $log)" >&2
started=$(date +%s)
if [ "$verbose" = 1 ]; then
  "${cmd[@]}" 2>&1 | tee "$log"
else
  if ! "${cmd[@]}" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "benchmarks failed; full log in $log" >&2
    exit 1
  fi
fi
echo "==> finished in $(($(date +%s) - started)) s" >&2

if [ ! -f "$summary" ]; then
  echo "no summary was written ($summary); see $log" >&2
  exit 1
fi
echo
echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)   commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
cat "$summary"
