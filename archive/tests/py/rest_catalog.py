#!/usr/bin/env python3
"""A small but real Iceberg REST catalog for Walden's tests, backed by pyiceberg's SqlCatalog.

The request and response bodies are pyiceberg's own models (pyiceberg.catalog.rest,
pyiceberg.table.update); SqlCatalog.commit_table checks the requirements and applies the updates,
and writes each new metadata file, as a real catalog does. Endpoints: GET /v1/config,
POST /v1/oauth/tokens (client-credentials grant), and under /v1/[prefix/]: namespaces (list,
create, load, exists, drop), tables (list, create, load, exists, commit, drop). Every request but
the token exchange needs `Authorization: Bearer <token>` when the server has a token or a
credential. Test hooks: POST /v1/[prefix/]_test/fail-next-commit with {"mode": "conflict"} (the
next commit is refused with 409, nothing applied) or {"mode": "lost-answer"} (the next commit is
applied, then answered with 500, as when a gateway loses the answer); POST
.../_test/external-replace/{namespace}/{table} commits a `replace` snapshot without Walden's
properties, as another writer's compaction does; GET .../_test/stats gives request counts.

Usage:
  rest_catalog.py serve --db PATH --warehouse URL [--token T] [--credential ID:SECRET]
                        [--prefix P] [--table-config KEY=VALUE ...]
      Binds 127.0.0.1 on a free port, prints "LISTENING <port>" on stdout, serves until killed
      or until its standard input closes (so it never outlives the test that started it).
  rest_catalog.py check --uri URI --token T [--namespace NS] [--table NAME]
      pyiceberg's own RestCatalog reads the table through the server; prints a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

JSON = "application/json"


class RestError(Exception):
    def __init__(self, code: int, kind: str, message: str):
        super().__init__(message)
        self.code, self.kind, self.message = code, kind, message


def error_body(code: int, kind: str, message: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": kind, "code": code}}).encode()


class Catalog:
    """The REST operations over a pyiceberg SqlCatalog; one request at a time."""

    def __init__(self, db: str, warehouse: str, table_config: dict[str, str]):
        from pyiceberg.catalog.sql import SqlCatalog

        self.sql = SqlCatalog("rest", uri=f"sqlite:///{db}", warehouse=warehouse)
        self.table_config = table_config
        self.lock = threading.Lock()
        self.fail_next_commit: str | None = None
        self.stats: dict[str, int] = {}

    # --- namespaces -------------------------------------------------------------------------
    def list_namespaces(self, query: dict) -> dict:
        from pyiceberg.catalog.rest import ListNamespaceResponse

        parent = tuple(query["parent"][0].split("\x1f")) if "parent" in query else ()
        namespaces = [list(ns) for ns in self.sql.list_namespaces(parent)]
        return json.loads(ListNamespaceResponse(namespaces=namespaces).model_dump_json())

    def create_namespace(self, body: dict) -> dict:
        from pyiceberg.catalog.rest import NamespaceResponse

        namespace = tuple(body["namespace"])
        properties = body.get("properties") or {}
        self.sql.create_namespace(namespace, properties)
        props = self.sql.load_namespace_properties(namespace)
        return json.loads(NamespaceResponse(namespace=list(namespace), properties=props).model_dump_json())

    def load_namespace(self, namespace: tuple) -> dict:
        from pyiceberg.catalog.rest import NamespaceResponse

        props = self.sql.load_namespace_properties(namespace)
        return json.loads(NamespaceResponse(namespace=list(namespace), properties=props).model_dump_json())

    def namespace_exists(self, namespace: tuple) -> bool:
        return self.sql.namespace_exists(namespace)

    def drop_namespace(self, namespace: tuple) -> None:
        self.sql.drop_namespace(namespace)

    # --- tables -----------------------------------------------------------------------------
    def list_tables(self, namespace: tuple) -> dict:
        from pyiceberg.catalog.rest import ListTableResponseEntry, ListTablesResponse

        entries = [ListTableResponseEntry(name=t[-1], namespace=list(t[:-1])) for t in self.sql.list_tables(namespace)]
        return json.loads(ListTablesResponse(identifiers=entries).model_dump_json())

    def table_response(self, table) -> dict:
        from pyiceberg.catalog.rest import TableResponse

        response = TableResponse(
            **{"metadata-location": table.metadata_location, "metadata": table.metadata, "config": self.table_config}
        )
        return json.loads(response.model_dump_json())

    def create_table(self, namespace: tuple, body: dict) -> dict:
        from pyiceberg.catalog.rest import CreateTableRequest
        from pyiceberg.partitioning import UNPARTITIONED_PARTITION_SPEC
        from pyiceberg.table.sorting import UNSORTED_SORT_ORDER

        # Optional in the spec; pyiceberg's model wants the keys present.
        for key in ("location", "partition-spec", "write-order"):
            body.setdefault(key, None)
        spec = body.get("partition-spec")
        if spec is not None:
            # An unbound spec (the Rust client's) has no field ids yet: assign them as a catalog does.
            spec.setdefault("spec-id", 0)
            for i, field in enumerate(spec.get("fields", [])):
                field.setdefault("field-id", 1000 + i)
        if body.get("stage-create"):
            raise RestError(400, "BadRequestException", "staged creates are not supported by this test catalog")
        request = CreateTableRequest.model_validate(body)
        table = self.sql.create_table(
            namespace + (request.name,),
            schema=request.table_schema,
            location=request.location,
            partition_spec=request.partition_spec or UNPARTITIONED_PARTITION_SPEC,
            sort_order=request.write_order or UNSORTED_SORT_ORDER,
            properties=request.properties,
        )
        return self.table_response(table)

    def load_table(self, ident: tuple) -> dict:
        return self.table_response(self.sql.load_table(ident))

    def table_exists(self, ident: tuple) -> bool:
        return self.sql.table_exists(ident)

    def commit_table(self, ident: tuple, body: dict) -> dict:
        from pyiceberg.exceptions import CommitFailedException
        from pyiceberg.table import CommitTableRequest

        body.setdefault("identifier", {"namespace": list(ident[:-1]), "name": ident[-1]})
        table = self.sql.load_table(ident)
        # A catalog assigns the id of an added schema (the reference implementation does; clients
        # such as iceberg-rust send 0 and `set-current-schema -1`); SqlCatalog would keep theirs.
        next_schema_id = max(s.schema_id for s in table.metadata.schemas) + 1
        for update in body.get("updates", []):
            if update.get("action") == "add-schema":
                update["schema"]["schema-id"] = next_schema_id
                next_schema_id += 1
        request = CommitTableRequest.model_validate(body)
        mode, self.fail_next_commit = self.fail_next_commit, None
        if mode == "conflict":
            raise CommitFailedException("injected: the table changed (test hook)")
        response = self.sql.commit_table(table, request.requirements, request.updates)
        if mode == "lost-answer":
            raise RestError(500, "ServiceFailureException", "injected: the commit was applied, the answer lost")
        return json.loads(response.model_dump_json())

    def drop_table(self, ident: tuple) -> None:
        self.sql.drop_table(ident)

    def external_replace(self, ident: tuple) -> dict:
        """What another writer's maintenance (R2 Data Catalog's compaction) leaves: a `replace`
        snapshot on top of the current one, with the same rows and none of Walden's summary
        properties. (It reuses the current manifest list: same files, so the same rows.)"""
        import random

        from pyiceberg.table.snapshots import Operation, Snapshot, Summary
        from pyiceberg.table.update import AddSnapshotUpdate, AssertRefSnapshotId, SetSnapshotRefUpdate

        table = self.sql.load_table(ident)
        metadata = table.metadata
        parent = metadata.current_snapshot()
        if parent is None:
            raise RestError(400, "BadRequestException", "no snapshot to replace")
        snapshot_id = random.getrandbits(62) + 1
        snapshot = Snapshot(
            **{
                "snapshot-id": snapshot_id,
                "parent-snapshot-id": parent.snapshot_id,
                "sequence-number": metadata.last_sequence_number + 1,
                "manifest-list": parent.manifest_list,
                "summary": Summary(operation=Operation.REPLACE, **{"external-maintenance": "true"}),
                "schema-id": parent.schema_id,
            }
        )
        requirements = (AssertRefSnapshotId(ref="main", **{"snapshot-id": parent.snapshot_id}),)
        updates = (
            AddSnapshotUpdate(snapshot=snapshot),
            SetSnapshotRefUpdate(**{"ref-name": "main", "type": "branch", "snapshot-id": snapshot_id}),
        )
        self.sql.commit_table(table, requirements, updates)
        return {"snapshot-id": snapshot_id}


def make_handler(catalog: Catalog, tokens: set[str], credential: str | None, prefix: str | None):
    from pyiceberg.exceptions import (
        CommitFailedException,
        NamespaceAlreadyExistsError,
        NamespaceNotEmptyError,
        NoSuchNamespaceError,
        NoSuchTableError,
        TableAlreadyExistsError,
    )

    errors = [
        (NoSuchNamespaceError, 404, "NoSuchNamespaceException"),
        (NoSuchTableError, 404, "NoSuchTableException"),
        (NamespaceAlreadyExistsError, 409, "AlreadyExistsException"),
        (TableAlreadyExistsError, 409, "AlreadyExistsException"),
        (NamespaceNotEmptyError, 409, "NamespaceNotEmptyException"),
        (CommitFailedException, 409, "CommitFailedException"),
    ]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):  # noqa: A002 - the base class's name
            # The request line only (never headers: they carry the token).
            sys.stderr.write("rest_catalog: %s\n" % (format % args))

        def reply(self, code: int, body: bytes | None = None, content_type: str = JSON):
            self.send_response(code)
            if body is None:
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def authorized(self) -> bool:
            if not tokens:
                return True
            auth = self.headers.get("Authorization", "")
            return auth.startswith("Bearer ") and auth[len("Bearer ") :] in tokens

        def handle_any(self):
            try:
                raw = self.body()
                url = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(url.query)
                parts = [urllib.parse.unquote(p) for p in url.path.strip("/").split("/")]
                if not parts or parts[0] != "v1":
                    raise RestError(404, "NotFoundException", f"no route {url.path}")
                parts = parts[1:]
                if parts == ["oauth", "tokens"] and self.command == "POST":
                    return self.token(raw)
                if not self.authorized():
                    raise RestError(401, "NotAuthorizedException", "missing or wrong bearer token")
                if parts == ["config"] and self.command == "GET":
                    overrides = {"prefix": prefix} if prefix else {}
                    return self.reply(200, json.dumps({"defaults": {}, "overrides": overrides}).encode())
                if prefix:
                    if not parts or parts[0] != prefix:
                        raise RestError(404, "NotFoundException", f"no route {url.path} (prefix is {prefix})")
                    parts = parts[1:]
                with catalog.lock:
                    route = "/".join(p if i % 2 == 0 else "{}" for i, p in enumerate(parts))
                    key = f"{self.command} {route}"
                    catalog.stats[key] = catalog.stats.get(key, 0) + 1
                    return self.route(parts, query, json.loads(raw) if raw else {})
            except RestError as e:
                self.reply(e.code, error_body(e.code, e.kind, e.message))
            except Exception as e:  # noqa: BLE001 - every failure becomes a REST error
                for cls, code, kind in errors:
                    if isinstance(e, cls):
                        return self.reply(code, error_body(code, kind, str(e)))
                if type(e).__name__ == "ValidationError" or isinstance(e, (ValueError, KeyError)):
                    return self.reply(400, error_body(400, "BadRequestException", f"{type(e).__name__}: {e}"))
                sys.stderr.write(f"rest_catalog: {self.command} {self.path} failed: {type(e).__name__}: {e}\n")
                self.reply(500, error_body(500, "ServiceFailureException", f"{type(e).__name__}: {e}"))

        def token(self, raw: bytes):
            form = urllib.parse.parse_qs(raw.decode())
            given = form.get("client_secret", [""])[0]
            if "client_id" in form:
                given = form["client_id"][0] + ":" + given
            if credential is None or form.get("grant_type") != ["client_credentials"] or given != credential:
                raise RestError(401, "NotAuthorizedException", "bad client credentials")
            issued = "issued-" + secrets.token_hex(16)
            tokens.add(issued)
            body = {
                "access_token": issued,
                "token_type": "bearer",
                "expires_in": 3600,
                "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
            }
            self.reply(200, json.dumps(body).encode())

        def route(self, parts: list[str], query: dict, body: dict):
            m = self.command
            ok = lambda payload: self.reply(200, json.dumps(payload).encode())  # noqa: E731
            if parts[:1] == ["_test"]:
                if parts == ["_test", "fail-next-commit"] and m == "POST":
                    catalog.fail_next_commit = body["mode"]
                    return self.reply(204)
                if parts == ["_test", "stats"] and m == "GET":
                    return ok(catalog.stats)
                if len(parts) == 4 and parts[1] == "external-replace" and m == "POST":
                    return ok(catalog.external_replace(tuple(parts[2].split("\x1f")) + (parts[3],)))
            elif parts == ["namespaces"]:
                if m == "GET":
                    return ok(catalog.list_namespaces(query))
                if m == "POST":
                    return ok(catalog.create_namespace(body))
            elif len(parts) == 2 and parts[0] == "namespaces":
                ns = tuple(parts[1].split("\x1f"))
                if m == "HEAD":
                    return self.reply(204 if catalog.namespace_exists(ns) else 404)
                if m == "GET":
                    return ok(catalog.load_namespace(ns))
                if m == "DELETE":
                    catalog.drop_namespace(ns)
                    return self.reply(204)
            elif len(parts) == 3 and parts[0] == "namespaces" and parts[2] == "tables":
                ns = tuple(parts[1].split("\x1f"))
                if m == "GET":
                    return ok(catalog.list_tables(ns))
                if m == "POST":
                    return ok(catalog.create_table(ns, body))
            elif len(parts) == 4 and parts[0] == "namespaces" and parts[2] == "tables":
                ident = tuple(parts[1].split("\x1f")) + (parts[3],)
                if m == "HEAD":
                    return self.reply(204 if catalog.table_exists(ident) else 404)
                if m == "GET":
                    return ok(catalog.load_table(ident))
                if m == "POST":
                    return ok(catalog.commit_table(ident, body))
                if m == "DELETE":
                    catalog.drop_table(ident)
                    return self.reply(204)
            raise RestError(404, "NotFoundException", f"no route {m} /{'/'.join(parts)}")

        do_GET = do_POST = do_HEAD = do_DELETE = handle_any

    return Handler


def serve(args) -> None:
    table_config = dict(kv.split("=", 1) for kv in args.table_config)
    catalog = Catalog(args.db, args.warehouse, table_config)
    tokens = {args.token} if args.token else set()
    if args.credential and not tokens:
        tokens.add("unguessable-" + secrets.token_hex(16))  # only issued tokens get in
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(catalog, tokens, args.credential, args.prefix))
    server.daemon_threads = True
    print(f"LISTENING {server.server_address[1]}", flush=True)

    def watch_stdin():
        sys.stdin.read()  # returns when the parent closes the pipe or dies
        os._exit(0)

    threading.Thread(target=watch_stdin, daemon=True).start()
    server.serve_forever()


def check(args) -> None:
    import pyarrow.compute as pc
    from pyiceberg.catalog.rest import RestCatalog

    catalog = RestCatalog("walden", uri=args.uri, token=args.token)
    table = catalog.load_table((args.namespace, args.table))
    data = table.scan().to_arrow()
    lsns = data.column("lsn")
    metadata = table.metadata
    snapshots = []
    for snap in sorted(metadata.snapshots, key=lambda s: s.sequence_number):
        props = snap.summary.additional_properties if snap.summary else {}
        snapshots.append(
            {
                "id": snap.snapshot_id,
                "first_lsn": int(props["walden.first-lsn"]) if "walden.first-lsn" in props else None,
                "last_lsn": int(props["walden.last-lsn"]) if "walden.last-lsn" in props else None,
                "rows_at": table.scan(snapshot_id=snap.snapshot_id).to_arrow().num_rows,
            }
        )
    summary = {
        "rows": data.num_rows,
        "distinct_lsns": len(pc.unique(lsns)),
        "min_lsn": pc.min(lsns).as_py() if data.num_rows else None,
        "max_lsn": pc.max(lsns).as_py() if data.num_rows else None,
        "format_version": metadata.format_version,
        "fields": [f.name for f in table.schema().fields],
        "partition": [f"{f.transform}({table.schema().find_field(f.source_id).name})" for f in table.spec().fields],
        "location": metadata.location,
        "snapshots": snapshots,
    }
    print(json.dumps(summary))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--db", required=True)
    s.add_argument("--warehouse", required=True)
    s.add_argument("--token")
    s.add_argument("--credential")
    s.add_argument("--prefix")
    s.add_argument("--table-config", action="append", default=[])
    c = sub.add_parser("check")
    c.add_argument("--uri", required=True)
    c.add_argument("--token", required=True)
    c.add_argument("--namespace", default="walden")
    c.add_argument("--table", default="events")
    args = parser.parse_args()
    serve(args) if args.command == "serve" else check(args)


if __name__ == "__main__":
    main()
