#!/usr/bin/env bash
# Runs the benchmarks and prints one summary table per suite (see BENCHMARKS.md).
#
#   scripts/bench.sh                 every suite: wal, engine, cdc, archive (~12 min on 2 cores, plus the build)
#   scripts/bench.sh --suite engine  only that suite (repeatable): wal, engine, cdc or archive
#   scripts/bench.sh --quick         smaller WAL logs: scan 64 MiB, open 256 MiB
#   scripts/bench.sh --smoke         each benchmark body once on tiny data (seconds)
#   scripts/bench.sh -v [FILTER...]  stream criterion's own output; FILTERs go to criterion
#                                    (e.g. `scripts/bench.sh group_commit`)
#   scripts/bench.sh --record        after the run, rewrite the tables of the suites that ran in
#                                    BENCHMARKS.md from their summaries (scripts/bench_doc.py);
#                                    unfiltered runs only
#
# Environment: WALDEN_BENCH_DIR (where to write; must be a real disk, not tmpfs),
# WALDEN_BENCH_SCAN_LOG_BYTES, WALDEN_BENCH_OPEN_LOG_BYTES (e.g. 1G, 256M),
# WALDEN_BENCH_DOC (the document --record rewrites, default BENCHMARKS.md; set to a copy, it also
# takes a --smoke run, to try --record).
set -euo pipefail
# The document --record rewrites, resolved before the cd below.
doc=$(realpath -m "${WALDEN_BENCH_DOC:-$(dirname "$0")/../BENCHMARKS.md}")
cd "$(dirname "$0")/.."

verbose=0
record=0
filters=()
suites=()
shown=() # the arguments as recorded in the document: all but --record
want_suite=0
for arg in "$@"; do
  if [ "$arg" = --record ]; then
    record=1
    continue
  fi
  shown+=("$arg")
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
      sed -n '2,17p' "$0"
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
if [ "$record" = 1 ]; then
  if [ "${#filters[@]}" -gt 0 ]; then
    echo "--record: a filtered run leaves rows out of the tables; run whole suites" >&2
    exit 2
  fi
  if [ "$scale" = smoke ] && [ -z "${WALDEN_BENCH_DOC:-}" ]; then
    echo "--record: a --smoke run measures nothing; set WALDEN_BENCH_DOC to a copy of the document to try it" >&2
    exit 2
  fi
fi
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

run_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
run_commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
echo
echo "date: $run_date   commit: $run_commit"
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

if [ "$record" = 1 ]; then
  blocks=()
  for suite in "${suites[@]}"; do blocks+=("$suite=$(summary_of "$suite")"); done
  allow_smoke=()
  if [ "$scale" = smoke ]; then allow_smoke=(--allow-smoke); fi
  python3 scripts/bench_doc.py --doc "$doc" --date "$run_date" --commit "$run_commit" \
    --command "$(echo scripts/bench.sh "${shown[@]}")" "${allow_smoke[@]}" "${blocks[@]}"
fi
