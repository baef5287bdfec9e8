#!/usr/bin/env python3
"""Independent reader check of a Walden archive table: pyiceberg AND DuckDB.

pyiceberg opens the table through the embedded sqlite SQL catalog (the catalog the Rust archiver
writes); DuckDB reads the same table with `iceberg_scan` on the current metadata JSON (loading its
iceberg/avro/parquet/httpfs extensions from the PyPI wheels' files: never from the internet).
Both read through the lake's own storage: the local disk, or S3 (moto) when the spec says so.

Prints one JSON object with what each reader saw; the Rust test compares it with what it archived
(archive/tests/py/readers.rs). Nothing is asserted here except what the table must satisfy on
its own (no duplicate LSN), so a failure shows up as a precise comparison in Rust.

Usage: check_table.py SPEC_JSON, where SPEC_JSON has
  catalog_db         path of the sqlite catalog
  warehouse          the catalog's warehouse URL
  ident              "walden.events"
  metadata_location  the table's current metadata JSON as the Rust archiver sees it
  days               ["2024-01-15", ...]: days (UTC) whose pruned reads to report
  gone_snapshot_ids  snapshot ids expected to be expired (time travel to them must fail)
  added_column       name of a column added after the first files were written, or null
  s3                 null, or {"endpoint", "key_id", "secret", "region"}
"""
import glob
import hashlib
import json
import os
import re
import sys
import sysconfig
from datetime import datetime, timedelta, timezone

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.expressions import And, GreaterThanOrEqual, LessThan

COLUMNS = [
    "lsn",
    "commit_lsn",
    "txn_id",
    "commit_ts",
    "op",
    "table_name",
    "key",
    "before",
    "after",
    "before_bin",
    "after_bin",
    "namespace",
    "correlation_id",
    "actor",
]


def canonical(row):
    """One row as a JSON line, bytes as hex, the timestamp as µs since the epoch."""
    out = []
    for v in row:
        if isinstance(v, (bytes, bytearray, memoryview)):
            v = bytes(v).hex()
        out.append(v)
    return json.dumps(out, separators=(",", ":"))


def digest(rows):
    h = hashlib.sha256()
    for row in rows:
        h.update(canonical(row).encode())
        h.update(b"\n")
    return h.hexdigest()


def day_bounds(day):
    start = datetime.fromisoformat(day).replace(tzinfo=timezone.utc)
    return start, start + timedelta(days=1)


def summary_of(rows):
    lsns = [r[0] for r in rows]
    return {
        "rows": len(rows),
        "lsns": lsns,
        "distinct_lsns": len(set(lsns)),
        "digest": digest(rows),
        "first_row": canonical(rows[0]) if rows else None,
    }


def arrow_rows(table):
    """(lsn, ..., actor) tuples sorted by LSN from a pyarrow table, commit_ts as µs."""
    table = table.sort_by("lsn")
    cols = []
    for name in COLUMNS:
        col = table.column(name)
        if name == "commit_ts":
            col = pc.cast(col, pa.int64())
        cols.append(col.to_pylist())
    return list(zip(*cols))


def check_pyiceberg(spec):
    props = {"uri": f"sqlite:///{spec['catalog_db']}", "warehouse": spec["warehouse"]}
    s3 = spec.get("s3")
    if s3:
        props.update(
            {
                "s3.endpoint": s3["endpoint"],
                "s3.access-key-id": s3["key_id"],
                "s3.secret-access-key": s3["secret"],
                "s3.region": s3["region"],
                "py-io-impl": "pyiceberg.io.pyarrow.PyArrowFileIO",
            }
        )
    catalog = SqlCatalog("walden", **props)
    table = catalog.load_table(spec["ident"])
    out = {"metadata_location": table.metadata_location}

    data = table.scan().to_arrow()
    out.update(summary_of(arrow_rows(data)))
    added = spec.get("added_column")
    if added:
        out["added_column_nulls"] = data.column(added).null_count

    schema = table.schema()
    out["schema_id"] = schema.schema_id
    out["schemas"] = len(table.metadata.schemas)
    out["fields"] = [[f.field_id, f.name, str(f.field_type), f.required] for f in schema.fields]
    out["partition"] = [f"{f.transform}({schema.find_column_name(f.source_id)})" for f in table.spec().fields]
    out["format_version"] = table.metadata.format_version
    out["current_snapshot_id"] = table.metadata.current_snapshot_id

    snapshots = []
    for snap in sorted(table.metadata.snapshots, key=lambda s: s.sequence_number):
        summary = snap.summary
        scan = table.scan(snapshot_id=snap.snapshot_id)
        snapshots.append(
            {
                "id": snap.snapshot_id,
                "parent_id": snap.parent_snapshot_id,
                "operation": summary.operation.value,
                "walden": {k: v for k, v in summary.additional_properties.items() if k.startswith("walden.")},
                "rows_at": scan.to_arrow().num_rows,
                "files_at": len(list(scan.plan_files())),
            }
        )
    out["snapshots"] = snapshots
    out["gone_snapshots_resolvable"] = [
        table.snapshot_by_id(i) is not None for i in spec.get("gone_snapshot_ids", [])
    ]

    # Partition pruning: a commit_ts filter on one day plans only that day's files.
    all_tasks = list(table.scan().plan_files())
    out["files"] = sorted(t.file.file_path for t in all_tasks)
    out["file_days"] = sorted(t.file.partition[0] for t in all_tasks)
    pruned = {}
    for day in spec.get("days", []):
        start, end = day_bounds(day)
        scan = table.scan(
            row_filter=And(GreaterThanOrEqual("commit_ts", start.isoformat()), LessThan("commit_ts", end.isoformat()))
        )
        tasks = list(scan.plan_files())
        pruned[day] = {
            "files": len(tasks),
            "file_days": sorted({t.file.partition[0] for t in tasks}),
            "rows": scan.to_arrow().num_rows,
        }
    out["pruned"] = pruned

    # Every live data file read with pyarrow directly (through pyiceberg's FileIO, not its
    # scan): codecs, LSN order, and whether it physically has the added column.
    codecs, sorted_files, without_added = set(), True, 0
    for path in out["files"]:
        with table.io.new_input(path).open() as f:
            pf = pq.ParquetFile(f)
            meta = pf.metadata
            for rg in range(meta.num_row_groups):
                for col in range(meta.num_columns):
                    codecs.add(meta.row_group(rg).column(col).compression)
            lsns = pf.read(columns=["lsn"]).column("lsn").to_pylist()
            sorted_files = sorted_files and all(a < b for a, b in zip(lsns, lsns[1:]))
            if added and added not in pf.schema_arrow.names:
                without_added += 1
    out["codecs"] = sorted(codecs)
    out["files_sorted_by_lsn"] = sorted_files
    out["files_without_added_column"] = without_added
    return out


def duckdb_extension_files():
    root = os.path.join(sysconfig.get_paths()["purelib"], "duckdb_ext", "extensions", "v" + duckdb.__version__)
    files = {}
    for name in ("parquet", "avro", "iceberg", "httpfs"):
        (path,) = glob.glob(os.path.join(root, "*", name + ".duckdb_extension"))
        files[name] = path
    return files


def files_read(con, query):
    """How many data files DuckDB's iceberg scan read for `query`, from its profile (what is
    left after pruning on the manifests' partition values and column bounds)."""
    profile = "\n".join(r[1] for r in con.execute(f"EXPLAIN ANALYZE {query}").fetchall())
    found = re.findall(r"Total Files Read:\s*(\d+)", profile)
    return int(found[0]) if len(found) == 1 else profile


def sql_str(s):
    return "'" + s.replace("'", "''") + "'"


def check_duckdb(spec):
    con = duckdb.connect(
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )
    s3 = spec.get("s3")
    exts = duckdb_extension_files()
    for name in ("parquet", "avro", "iceberg") + (("httpfs",) if s3 else ()):
        con.execute(f"LOAD {sql_str(exts[name])}")
    meta = spec["metadata_location"]
    if s3:
        endpoint = s3["endpoint"].split("://", 1)[1]
        con.execute(
            "CREATE SECRET lake (TYPE s3, KEY_ID {}, SECRET {}, REGION {}, ENDPOINT {}, URL_STYLE 'path', "
            "USE_SSL false)".format(
                sql_str(s3["key_id"]), sql_str(s3["secret"]), sql_str(s3["region"]), sql_str(endpoint)
            )
        )
    elif meta.startswith("file://"):
        meta = meta[len("file://") :]
    scan = f"iceberg_scan({sql_str(meta)})"
    out = {}
    out["columns"] = [[r[0], r[1]] for r in con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()]
    select = ", ".join("epoch_us(commit_ts)" if c == "commit_ts" else c for c in COLUMNS)
    rows = con.execute(f"SELECT {select} FROM {scan} ORDER BY lsn").fetchall()
    out.update(summary_of(rows))
    added = spec.get("added_column")
    if added:
        # An aggregate filter, not WHERE: DuckDB 1.4.4's iceberg extension prunes files whose
        # manifest entry has no null count for the column (files older than the column) on
        # `IS NULL` (duckdb/duckdb-iceberg#782, fixed after the 1.4.4 wheels).
        out["added_column_nulls"] = con.execute(
            f"SELECT count(*) FILTER (WHERE {added} IS NULL) FROM {scan}"
        ).fetchone()[0]

    pruned = {}
    for day in spec.get("days", []):
        start, end = day_bounds(day)
        where = f"commit_ts >= TIMESTAMPTZ {sql_str(start.isoformat())} AND commit_ts < TIMESTAMPTZ {sql_str(end.isoformat())}"
        count = con.execute(f"SELECT count(*) FROM {scan} WHERE {where}").fetchone()[0]
        pruned[day] = {"rows": count, "files_read": files_read(con, f"SELECT count(*) FROM {scan} WHERE {where}")}
    out["pruned"] = pruned
    out["files_read_unfiltered"] = files_read(con, f"SELECT count(*) FROM {scan}")

    snaps = con.execute(f"SELECT sequence_number, snapshot_id FROM iceberg_snapshots({sql_str(meta)}) ORDER BY 1").fetchall()
    out["snapshots"] = [
        {
            "id": sid,
            "rows_at": con.execute(
                f"SELECT count(*) FROM iceberg_scan({sql_str(meta)}, snapshot_from_id => {sid})"
            ).fetchone()[0],
        }
        for _, sid in snaps
    ]
    gone = []
    for sid in spec.get("gone_snapshot_ids", []):
        try:
            con.execute(f"SELECT count(*) FROM iceberg_scan({sql_str(meta)}, snapshot_from_id => {sid})").fetchone()
            gone.append(None)
        except duckdb.Error as e:
            gone.append(str(e).splitlines()[0])
    out["gone_snapshot_errors"] = gone
    return out


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    spec = json.loads(sys.argv[1])
    result = {"pyiceberg": check_pyiceberg(spec), "duckdb": check_duckdb(spec)}
    print(json.dumps(result))
    for reader, got in result.items():
        if got["distinct_lsns"] != got["rows"]:
            print(f"{reader}: duplicate LSNs in the table", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
