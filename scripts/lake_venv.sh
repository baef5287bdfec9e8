#!/usr/bin/env bash
# Creates the Python virtualenv with the independent readers and the S3 server the archive tests
# (archive/tests/pyiceberg.rs, archive/tests/s3.rs) check the lake with:
#   - pyiceberg 0.12 (sqlite SQL catalog, pyarrow, pyiceberg-core),
#   - DuckDB 1.4.4 with its iceberg, avro, parquet and httpfs (S3) extensions as PyPI wheels
#     (loaded offline with LOAD on the .duckdb_extension files they install; DuckDB never
#     downloads anything),
#   - moto's S3 server,
#   - libfaketime (its wheel ships the preloadable library): the tests run one writer process
#     under a faked wall clock, so the WAL stamps its commits on an earlier day.
#
# Idempotent: a venv whose marker lists exactly these requirements is kept as it is (a warm call
# costs nothing); any other content is removed and rebuilt. Concurrent calls serialise on a lock.
#
# Usage: scripts/lake_venv.sh [VENV_DIR]
#   VENV_DIR defaults to $WALDEN_LAKE_VENV, else ${XDG_CACHE_HOME:-$HOME/.cache}/walden/lake-venv
#   (outside the clone, so repeated CI runs on fresh clones reuse it). The tests find it there
#   too; WALDEN_LAKE_PYTHON names another interpreter that has the same packages.
# Prints the venv's python on stdout.
set -euo pipefail

requirements=(
  "pyiceberg[sql-sqlite,pyarrow,pyiceberg-core]==0.12.0"
  "duckdb==1.4.4"
  "duckdb-ext-iceberg==1.4.4.20260205"
  "duckdb-ext-avro==1.4.4.20260205"
  "duckdb-ext-parquet==1.4.4.20260205"
  "duckdb-ext-httpfs==1.4.4.20260205"
  "moto[server]==5.2.5"
  "libfaketime==3.0.1"
)

venv="${1:-${WALDEN_LAKE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/walden/lake-venv}}"
python3="${WALDEN_PYTHON3:-python3}"
marker="$venv/.walden-lake-venv"
wanted="$(printf '%s\n' "v3" "${requirements[@]}")"

ready() { [ -f "$marker" ] && [ "$(cat "$marker")" = "$wanted" ] && [ -x "$venv/bin/python" ]; }

if ready; then
  echo "$venv/bin/python"
  exit 0
fi

mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if ! ready; then
  started=$SECONDS
  echo "creating the lake venv in $venv" >&2
  rm -rf "$venv"
  "$python3" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input "${requirements[@]}" >&2
  # Everything the tests import, so a broken install fails here and not inside a test.
  "$venv/bin/python" - <<'EOF' >&2
import glob, os, sysconfig
import duckdb, libfaketime, moto.server, pyarrow, pyiceberg.catalog.sql  # noqa: F401
root = os.path.join(sysconfig.get_paths()["purelib"], "duckdb_ext", "extensions", "v" + duckdb.__version__)
con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
for name in ("parquet", "avro", "iceberg", "httpfs"):
    (path,) = glob.glob(os.path.join(root, "*", name + ".duckdb_extension"))
    con.execute(f"LOAD '{path}'")
(path,) = glob.glob(os.path.join(os.path.dirname(libfaketime.__file__), "vendor", "libfaketime", "src", "libfaketime.so.1"))
EOF
  printf '%s\n' "$wanted" >"$marker"
  echo "lake venv ready in $((SECONDS - started)) s: $venv" >&2
fi
echo "$venv/bin/python"
