#!/usr/bin/env bash
# Runs Walden side by side with its peers (okaywal, RocksDB, SQLite in WAL mode, fjall, sled) on
# the same disk, in one run, beside the machine's own limits, and prints one table
# (BENCHMARKS.md, "Side by side with peers").
#
#   scripts/bench_peers.sh                 full run with every peer (~10 min of measurement, plus a
#                                          ~5 min first release build)
#   scripts/bench_peers.sh --smoke         tiny sizes: proves every workload runs and checks itself (seconds)
#   scripts/bench_peers.sh --only rates    only workloads 1-3 (also: replay, reopen)
#
#   scripts/bench_peers.sh --filter "64 concurrent" --peers rocksdb   one rate workload, two contenders
#   scripts/bench_peers.sh --record        after a full run with every peer, rewrite the peers table of
#                                          BENCHMARKS.md from the summary (scripts/bench_doc.py)
#
# RocksDB: the rocksdb crate (0.19) is linked to the system's librocksdb (Debian's
# librocksdb-dev, RocksDB 7.8.3, installed here if missing), because compiling the bundled C++
# takes hours on this shared 2-core machine. WALDEN_PEERS_ROCKSDB_FROM_SOURCE=1 builds the
# crate's bundled RocksDB (7.4.4) instead.
#
# Environment: WALDEN_BENCH_DIR (where to write; a real disk, not tmpfs), WALDEN_PEERS_FEATURES
# (default all-peers; e.g. "okaywal sqlite"), WALDEN_PEERS_SLICE_MS (250), WALDEN_PEERS_ROUNDS (8),
# WALDEN_PEERS_REPLAY_RECORDS (1000000), WALDEN_PEERS_REOPEN_MIB (1024),
# WALDEN_PEERS_PREALLOCATE_BYTES (Walden's WalConfig::preallocate_bytes; default the WAL's, 4 MiB; 0 turns it off),
# WALDEN_PEERS_FLUSHER (0 turns Walden's group-commit flusher thread off; default on),
# WALDEN_BENCH_DOC (the document --record rewrites, default BENCHMARKS.md; set to a copy, it also
# takes a partial run, to try --record).
set -euo pipefail
# The document --record rewrites, resolved before the cd below.
doc=$(realpath -m "${WALDEN_BENCH_DOC:-$(dirname "$0")/../BENCHMARKS.md}")
cd "$(dirname "$0")/.."

case "${1:-}" in
  -h | --help)
    sed -n '2,26p' "$0"
    exit 0
    ;;
esac

features="${WALDEN_PEERS_FEATURES:-all-peers}"
record=0
pass=() # the runner's arguments: all but --record
for arg in "$@"; do
  if [ "$arg" = --record ]; then record=1; else pass+=("$arg"); fi
done
if [ "$record" = 1 ] && [ -z "${WALDEN_BENCH_DOC:-}" ]; then
  # The document shows the full comparison: every workload, every peer, full sizes.
  for arg in "${pass[@]}"; do
    case "$arg" in
      --smoke | --only | --filter | --peers)
        echo "--record: $arg makes a partial table; record full runs only (or set WALDEN_BENCH_DOC to a copy)" >&2
        exit 2
        ;;
    esac
  done
  if [ "$features" != all-peers ]; then
    echo "--record: WALDEN_PEERS_FEATURES=\"$features\" leaves peers out; record all-peers runs only" >&2
    exit 2
  fi
fi

if [[ " $features " == *" all-peers "* || " $features " == *" rocksdb "* ]]; then
  # librocksdb-sys generates its bindings with bindgen, which loads libclang at build time.
  need=()
  # (Not `libclang*`: libclang-cpp, which other packages bring, is not the C API bindgen loads.)
  compgen -G '/usr/lib/llvm-*/lib/libclang.so*' >/dev/null || compgen -G '/usr/lib/*/libclang.so*' >/dev/null ||
    compgen -G '/usr/lib/*/libclang-[0-9]*.so*' >/dev/null || need+=(libclang-dev)
  if [ "${WALDEN_PEERS_ROCKSDB_FROM_SOURCE:-0}" = 0 ]; then
    [ -f /usr/include/rocksdb/c.h ] || need+=(librocksdb-dev)
    export ROCKSDB_LIB_DIR="${ROCKSDB_LIB_DIR:-/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)}"
    export ROCKSDB_INCLUDE_DIR="${ROCKSDB_INCLUDE_DIR:-/usr/include}"
  fi
  if [ "${#need[@]}" -gt 0 ]; then
    echo "==> apt-get install ${need[*]} (to build the rocksdb crate)" >&2
    apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
  fi
fi

target_dir="${CARGO_TARGET_DIR:-target}"
out_dir="$target_dir/walden-peers"
mkdir -p "$out_dir"
echo "==> cargo build --release -p walden-peers --features \"$features\"" >&2
cargo build --release -p walden-peers --features "$features"

summary="$out_dir/summary.md"
echo "==> $target_dir/release/walden-peers ${pass[*]}  (table also in $summary)" >&2
run_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
run_commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
echo "date: $run_date   commit: $run_commit"
"$target_dir/release/walden-peers" --out "$summary" "${pass[@]}"

if [ "$record" = 1 ]; then
  # Only a smoke run says so in its summary; bench_doc.py refuses it unless told.
  allow_smoke=()
  if [ -n "${WALDEN_BENCH_DOC:-}" ]; then allow_smoke=(--allow-smoke); fi
  python3 scripts/bench_doc.py --doc "$doc" --date "$run_date" --commit "$run_commit" \
    --command "$(echo scripts/bench_peers.sh "${pass[@]}")" "${allow_smoke[@]}" "peers=$summary"
fi
