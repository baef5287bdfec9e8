#!/usr/bin/env bash
# Fuzzes every target in fuzz/fuzz_targets for FUZZ_SECONDS seconds each (default 30).
#
# The committed corpus (fuzz/corpus/<target>) and crash regressions (fuzz/regressions/<target>)
# seed each run; new interesting inputs go to a scratch directory, not into git. Crashes land in
# fuzz/artifacts/<target>/. Exits non-zero if any target crashes, hangs or allocates too much.
# The everyday test command only replays the corpora ({wal,engine,cdc}/tests/fuzz_corpus.rs); this runs
# the fuzzer.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-30}"
export RUSTC_BOOTSTRAP=1 # cargo fuzz needs nightly flags; this toolchain is stable

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

echo "==> building fuzz targets"
cargo fuzz build --fuzz-dir fuzz

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

failed=()
for path in fuzz/fuzz_targets/*.rs; do
  target="$(basename "$path" .rs)"
  mkdir -p "fuzz/corpus/$target" # a new target may not have a corpus yet
  seeds=("fuzz/corpus/$target")
  if [ -d "fuzz/regressions/$target" ]; then
    seeds+=("fuzz/regressions/$target")
  fi
  mkdir -p "$scratch/$target" "fuzz/artifacts/$target"
  echo "==> fuzzing $target for ${seconds}s"
  # -timeout: an input running 10 s is a hang; -malloc_limit_mb: no single allocation above
  # 256 MiB (the harnesses cap records at 64 KiB, so anything near this is unbounded).
  if ! cargo fuzz run --fuzz-dir fuzz "$target" "$scratch/$target" "${seeds[@]}" -- \
    -max_total_time="$seconds" -timeout=10 -malloc_limit_mb=256 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$target/"; then
    failed+=("$target")
  fi
done

if [ "${#failed[@]}" -ne 0 ]; then
  echo "==> fuzzing found problems in: ${failed[*]} (inputs in fuzz/artifacts/<target>/)" >&2
  exit 1
fi
echo "==> all fuzz targets ran ${seconds}s without a crash"
