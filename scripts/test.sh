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

step "lake venv (pyiceberg, DuckDB + iceberg extensions, moto, libfaketime) for the archive tests"
# The archive's independent-reader and S3 tests run against it and must not skip here.
# WALDEN_LAKE_PYTHON may name an interpreter that already has these packages.
if [ -z "${WALDEN_LAKE_PYTHON:-}" ]; then
  WALDEN_LAKE_PYTHON="$(scripts/lake_venv.sh)"
fi
export WALDEN_LAKE_PYTHON
export WALDEN_REQUIRE_LAKE_VENV=1
echo "using $WALDEN_LAKE_PYTHON"

step "tests (unit, integration, crash, property, fuzz-corpus replay, doc)"
# Servers the tests start (moto's S3 server) are per test and stop with it, also on failure.
cargo test --workspace --locked

if [ "${FUZZ_SECONDS:-0}" != "0" ]; then
  step "fuzzing each target for ${FUZZ_SECONDS}s"
  scripts/fuzz.sh
fi
