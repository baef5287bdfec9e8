#!/usr/bin/env bash
# Creates .venv (gitignored) with the independent Iceberg readers the archive tests check the lake
# with: pyiceberg 0.12 (sqlite catalog + pyarrow), and moto's S3 server the S3 tests run against.
# Idempotent: an existing, complete venv is kept.
# Usage: scripts/lake_venv.sh [VENV_DIR]   (default: .venv at the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-.venv}"
marker="$venv/.walden-lake-venv-2"
if [ -f "$marker" ]; then
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check \
  "pyiceberg[sql-sqlite,pyarrow]==0.12.0" "moto[server]==5.2.5"
touch "$marker"
echo "lake venv ready: $venv"
