#!/usr/bin/env python3
"""Rewrites the tables of BENCHMARKS.md from the benchmarks' own summary files.

    scripts/bench_doc.py [--doc FILE] [--date DATE] [--commit REV] [--command CMD] [--allow-smoke]
                         SUITE=SUMMARY [SUITE=SUMMARY ...]

Each SUITE (wal, engine, cdc, archive, peers) names one block of the doc, the lines between
`<!-- bench:SUITE -->` and `<!-- /bench:SUITE -->`. Its content becomes:

    **Run:** `CMD`, DATE, commit REV.
    <the summary's conditions: scale, machine, bench dir, load average, joined on one line>

    <the summary from its table on: the table; for peers also its notes and targets>

The summaries are the files `scripts/bench.sh` and `scripts/bench_peers.sh` write
(`$CARGO_TARGET_DIR/walden-bench/summary-*.md`, `$CARGO_TARGET_DIR/walden-peers/summary.md`).
Nothing outside the markers changes, and the same inputs give the same file, so running it twice
is harmless. A smoke summary (tiny sizes, no measurement) is refused unless --allow-smoke is given.
Those scripts call it with `--record`; it can be run by hand on summaries kept from a run.
"""

import argparse
import datetime
import os
import re
import stat
import subprocess
import sys
import tempfile

SUITE_NAME = re.compile(r"^[a-z]+$")
# Both summary writers print this line for every run that is not the full one
# (benches/src/lib.rs `suite_summary`, benches/peers/src/lib.rs `summary`).
SMOKE_LINE = "smoke run:"


class DocError(Exception):
    """A problem with the inputs; reported without a traceback."""


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Replace the marked benchmark blocks of BENCHMARKS.md with summary files."
    )
    parser.add_argument("--doc", default="BENCHMARKS.md", help="the document to rewrite (default: BENCHMARKS.md)")
    parser.add_argument("--date", help="when the run happened (default: now, UTC)")
    parser.add_argument("--commit", help="the commit that ran (default: git rev-parse --short HEAD)")
    parser.add_argument("--command", default="scripts/bench.sh", help="the command that ran")
    parser.add_argument("--allow-smoke", action="store_true", help="accept smoke summaries (to test this script)")
    parser.add_argument("blocks", nargs="+", metavar="SUITE=SUMMARY", help="block name and its summary file")
    return parser.parse_args(argv)


def readable_date(date):
    """`2026-12-02T16:13:05Z` (what the bench scripts print) -> `2026-12-02 16:13 UTC`; others as given."""
    match = re.fullmatch(r"(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})(:\d{2})?Z", date)
    return f"{match.group(1)} {match.group(2)} UTC" if match else date


def default_commit():
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def split_summary(text, path):
    """The summary's header lines (before the table) and everything from the table on."""
    lines = text.rstrip("\n").split("\n")
    first_row = next((i for i, line in enumerate(lines) if line.startswith("|")), None)
    if first_row is None:
        raise DocError(f"{path}: no table in the summary")
    return lines[:first_row], lines[first_row:]


def conditions(header):
    """The header's facts on one line; the peers' list of contenders is left out (its modes are
    described in docs/bench-log/reference.md)."""
    facts = []
    in_contenders = False
    for line in header:
        if not line.strip():
            in_contenders = False
            continue
        if line.startswith("contenders"):
            in_contenders = True
            continue
        if in_contenders and line.startswith("- "):
            continue
        facts.append(line.strip())
    return " · ".join(facts)


def render_block(summary_text, path, run_line):
    header, rest = split_summary(summary_text, path)
    return [run_line, conditions(header), ""] + rest


def replace_block(doc_lines, name, block):
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    starts = [i for i, line in enumerate(doc_lines) if line.strip() == start]
    ends = [i for i, line in enumerate(doc_lines) if line.strip() == end]
    if len(starts) != 1 or len(ends) != 1 or ends[0] < starts[0]:
        raise DocError(f"the doc needs exactly one `{start}` followed by one `{end}`")
    return doc_lines[: starts[0] + 1] + block + doc_lines[ends[0] :]


def write_atomically(path, text):
    """Replaces `path` by rename, so an interrupted run never leaves half a document."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".bench_doc.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main(argv):
    args = parse_args(argv)
    date = readable_date(args.date) if args.date else datetime.datetime.now(datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M UTC"
    )
    commit = args.commit or default_commit()
    run_line = f"**Run:** `{args.command}`, {date}, commit {commit}."
    with open(args.doc, encoding="utf-8") as f:
        doc_lines = f.read().split("\n")
    for item in args.blocks:
        name, sep, path = item.partition("=")
        if not sep or not SUITE_NAME.match(name) or not path:
            raise DocError(f"{item!r}: expected SUITE=SUMMARY, e.g. wal=target/walden-bench/summary-full.md")
        with open(path, encoding="utf-8") as f:
            summary = f.read()
        if not args.allow_smoke and any(line.startswith(SMOKE_LINE) for line in summary.split("\n")):
            raise DocError(f"{path} is a smoke run (its figures are not measurements); not recorded")
        doc_lines = replace_block(doc_lines, name, render_block(summary, path, run_line))
        print(f"bench_doc: {args.doc}: block {name} <- {path}", file=sys.stderr)
    write_atomically(args.doc, "\n".join(doc_lines))


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except (DocError, OSError) as e:
        print(f"bench_doc: {e}", file=sys.stderr)
        sys.exit(1)
