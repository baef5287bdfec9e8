#!/usr/bin/env bash
# Runs the benchmarks and prints one summary table per suite (see BENCHMARKS.md).
#
#   scripts/bench.sh                 every suite: wal, engine, cdc, archive (~12 min on 2 cores, plus the build)
#   scripts/bench.sh --suite engine  only that suite (repeatable): wal, engine, cdc or archive
#   scripts/bench.sh --quick         smaller WAL logs: scan 64 MiB, open 256 MiB
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
suites=()
want_suite=0
for arg in "$@"; do
  if [ "$want_suite" = 1 ]; then
    case "$arg" in
      wal | engine | cdc | archive) suites+=("$arg") ;;
      *)
        echo "unknown suite: $arg (wal, engine, cdc or archive)" >&2
        exit 2
        ;;
    esac
    want_suite=0
    continue
  fi
  case "$arg" in
    --smoke) export WALDEN_BENCH_SMOKE=1 ;;
    --quick)
      export WALDEN_BENCH_SCAN_LOG_BYTES="${WALDEN_BENCH_SCAN_LOG_BYTES:-64M}"
      export WALDEN_BENCH_OPEN_LOG_BYTES="${WALDEN_BENCH_OPEN_LOG_BYTES:-256M}"
      ;;
    --suite) want_suite=1 ;;
    -v | --verbose) verbose=1 ;;
    -h | --help)
      sed -n '2,13p' "$0"
      exit 0
      ;;
    *) filters+=("$arg") ;;
  esac
done
if [ "${#suites[@]}" = 0 ]; then suites=(wal engine cdc archive); fi

target_dir="${CARGO_TARGET_DIR:-target}"
out_dir="$target_dir/walden-bench"
mkdir -p "$out_dir"
log="$out_dir/bench.log"
scale=full
if [ -n "${WALDEN_BENCH_SMOKE:-}" ] && [ "${WALDEN_BENCH_SMOKE}" != 0 ]; then scale=smoke; fi
summary_of() { # the file the suite's criterion target writes (see walden_benches::Suite)
  if [ "$1" = wal ]; then echo "$out_dir/summary-$scale.md"; else echo "$out_dir/summary-$1-$scale.md"; fi
}
for suite in "${suites[@]}"; do rm -f "$(summary_of "$suite")"; done

cmd=(cargo bench -p walden-benches)
for suite in "${suites[@]}"; do cmd+=(--bench "$suite"); done
cmd+=(-- "${filters[@]}")
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

echo
echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)   commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
printed=0
for suite in "${suites[@]}"; do
  summary=$(summary_of "$suite")
  # A suite whose benchmarks were all filtered out writes no summary.
  if [ -f "$summary" ]; then
    echo
    cat "$summary"
    printed=1
  fi
done
if [ "$printed" = 0 ]; then
  echo "no summary was written (filters matched nothing?); see $log" >&2
  exit 1
fi
