#!/usr/bin/env python3
"""Independent reader check of a Walden archive table with pyiceberg.

Opens the table through the embedded sqlite SQL catalog (the same catalog the Rust archiver
writes), scans it with pyarrow and prints a JSON summary the Rust test compares with what it
archived: row count, distinct LSNs, LSN range, schema field names, partition spec, and for every
snapshot its walden.first-lsn / walden.last-lsn properties and the row count when time-travelling
to it. Exits non-zero if the table breaks an invariant on its own (duplicate LSNs).

Usage: check_table.py CATALOG_DB WAREHOUSE_URL [NAMESPACE.TABLE]
"""
import json
import sys
from urllib.parse import unquote, urlparse

import pyarrow.parquet as pq
from pyiceberg.catalog.sql import SqlCatalog


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    catalog_db, warehouse = sys.argv[1], sys.argv[2]
    ident = sys.argv[3] if len(sys.argv) > 3 else "walden.events"
    catalog = SqlCatalog("walden", uri=f"sqlite:///{catalog_db}", warehouse=warehouse)
    table = catalog.load_table(ident)

    data = table.scan().to_arrow()
    lsns = data.column("lsn").to_pylist() if data.num_rows else []
    snapshots = []
    for snap in sorted(table.metadata.snapshots, key=lambda s: s.sequence_number):
        props = snap.summary.additional_properties if snap.summary else {}
        rows_at = table.scan(snapshot_id=snap.snapshot_id).to_arrow().num_rows
        snapshots.append(
            {
                "id": snap.snapshot_id,
                "first_lsn": int(props["walden.first-lsn"]),
                "last_lsn": int(props["walden.last-lsn"]),
                "rows_at": rows_at,
            }
        )
    # Every data file of the current snapshot: its compression codecs and whether its rows are in
    # LSN order (read with pyarrow directly, not through pyiceberg).
    codecs = set()
    files_sorted = True
    file_paths = table.inspect.files().column("file_path").to_pylist() if table.current_snapshot() else []
    for path in file_paths:
        local = unquote(urlparse(path).path)
        meta = pq.read_metadata(local)
        for rg in range(meta.num_row_groups):
            for col in range(meta.num_columns):
                codecs.add(meta.row_group(rg).column(col).compression)
        file_lsns = pq.read_table(local, columns=["lsn"]).column("lsn").to_pylist()
        files_sorted = files_sorted and all(a < b for a, b in zip(file_lsns, file_lsns[1:]))
    spec = table.spec()
    summary = {
        "rows": data.num_rows,
        "distinct_lsns": len(set(lsns)),
        "min_lsn": min(lsns) if lsns else None,
        "max_lsn": max(lsns) if lsns else None,
        "fields": [f.name for f in table.schema().fields],
        "partition": [f"{f.transform}({table.schema().find_column_name(f.source_id)})" for f in spec.fields],
        "format_version": table.metadata.format_version,
        "snapshots": snapshots,
        "data_files": len(file_paths),
        "codecs": sorted(codecs),
        "files_sorted_by_lsn": files_sorted,
    }
    print(json.dumps(summary))
    if summary["distinct_lsns"] != summary["rows"]:
        print("duplicate LSNs in the table", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
