#!/usr/bin/env python3
"""WAL frames and bytes written per commit: the outbox's insert of a 4 KB
feedback (the schema of src/schema.rs, the insert of src/outbox.rs, with
its indexes) against the bare insert that the submit benchmark compares
with. Both commit one report per transaction, WAL, synchronous=FULL,
automatic checkpoints off, so the WAL file's growth is what each commit
writes (and fsyncs).

    python3 tests/bench/wal_frames.py [reports]

Uses Python's own SQLite (same file format and B-tree code; its version is
printed), not the library, so it counts pages, not time.
"""
import json
import os
import re
import sqlite3
import sys
import tempfile
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMA = os.path.join(HERE, "..", "..", "src", "schema.rs")


def migrations():
    src = open(SCHEMA).read()
    names = re.search(r"MIGRATIONS: &\[&str\] = &\[([^\]]*)\]", src).group(1)
    for name in (n.strip() for n in names.split(",") if n.strip()):
        yield re.search(r'const %s: &str = "(.*?)";' % name, src, re.S).group(1)


def measure(path, ours, n):
    c = sqlite3.connect(path, isolation_level=None)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("PRAGMA synchronous=FULL")
    c.execute("PRAGMA wal_autocheckpoint=0")
    if ours:
        for sql in migrations():
            c.executescript(sql)
    else:
        c.execute("CREATE TABLE bare (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)")
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    payload = json.dumps({"summary": "Lighting preset should be more robust", "description": "d" * 4000})
    context = json.dumps({"library_version": "0.1.0", "os": "linux", "arch": "x86_64", "report_kind": "feedback"})
    for i in range(1, n + 1):
        c.execute("BEGIN IMMEDIATE")
        if ours:
            c.execute(
                "INSERT INTO reports (id, client_id, seq, kind, state, summary, payload, context, submitted_at, bytes)"
                " VALUES (?, ?, ?, 'feedback', 'queued', 'Lighting', ?, ?, ?, ?)",
                (i, str(uuid.uuid4()), i, payload, context, 1_700_000_000_000 + i, len(payload)),
            )
        else:
            c.execute("INSERT INTO bare (payload) VALUES (?)", (payload,))
        c.execute("COMMIT")
    page = c.execute("PRAGMA page_size").fetchone()[0]
    wal = os.path.getsize(path + "-wal") - 32
    c.close()
    return wal / (page + 24) / n, wal / n


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    with tempfile.TemporaryDirectory() as d:
        bare = measure(os.path.join(d, "bare.sqlite"), False, n)
        ours = measure(os.path.join(d, "ours.sqlite"), True, n)
    print(f"SQLite {sqlite3.sqlite_version}, {n} commits each")
    print(f"bare insert:  {bare[0]:.2f} frames, {bare[1]:.0f} bytes per commit")
    print(f"outbox:       {ours[0]:.2f} frames, {ours[1]:.0f} bytes per commit ({ours[1] / bare[1]:.2f}x)")


if __name__ == "__main__":
    main()
