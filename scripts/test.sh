#!/usr/bin/env bash
# Runs every test Walden has. This is the README's test command and what CI runs (.ci/run).
# It installs and starts whatever the tests need, and stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "rustfmt"
cargo fmt --all --check

step "clippy (-D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "fuzz targets build"
if [ -d fuzz ]; then
  cargo check --manifest-path fuzz/Cargo.toml --quiet
fi

step "tests (unit, integration, crash, property, fuzz-corpus replay, doc)"
cargo test --workspace --locked

if [ "${FUZZ_SECONDS:-0}" != "0" ]; then
  step "fuzzing each target for ${FUZZ_SECONDS}s"
  scripts/fuzz.sh
fi
