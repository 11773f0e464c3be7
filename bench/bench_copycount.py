"""Benchmark: the COPY row counter's throughput over the kinds of text a plain dump holds.

``pg.copycount`` runs on a sidecar thread beside the byte path and must keep up with pg_dump.
This feeds it, in 1 MiB chunks as the pipeline does, synthetic streams of each kind:

- ``copy``: COPY blocks of short rows (the bulk of a dump: it must stay at memory speed);
- ``schema``: pg_dump-like DDL, comments on objects and dollar-quoted function bodies, where
  the lexer does most of its work;
- ``inserts``: a ``--inserts`` dump, one statement per row with strings and parentheses;
- ``strings``: long string constants full of doubled quotes (one statement in many chunks).

and prints MB/s per kind. ``--baseline REV`` also runs the counter as it was at a git revision
(read with ``git show``), to compare the same streams.

Usage: .venv/bin/python -m bench.bench_copycount [--megabytes 64] [--baseline HEAD~1]
Not part of the test suite; numbers go into the issue notes.
"""

from __future__ import annotations

import argparse
import subprocess
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path

from backup_job.pg.copycount import CopyRowCounter

CHUNK = 1024 * 1024
ROOT = Path(__file__).resolve().parent.parent


def copy_stream(size: int) -> bytes:
    rows = b"".join(b"%d\t2026-01-02 03:04:05+00\tcustomer %d\t12.34\t\\N\n" % (i, i % 977) for i in range(20_000))
    block = b"COPY shop.orders (id, placed, customer, amount, note) FROM stdin;\n" + rows + b"\\.\n\n"
    return block * (size // len(block) + 1)


def schema_stream(size: int) -> bytes:
    unit = (
        b"--\n-- Name: orders_%d; Type: TABLE; Schema: shop; Owner: app\n--\n\n"
        b"CREATE TABLE shop.orders_%d (\n    id bigint NOT NULL,\n    placed timestamp with time zone DEFAULT now(),\n"
        b"    amount numeric(12,2) CHECK ((amount >= (0)::numeric)),\n    note text DEFAULT 'it''s new'::text\n);\n\n"
        b"COMMENT ON TABLE shop.orders_%d IS 'Orders, with a \"quote\" and a ; inside';\n\n"
        b"CREATE FUNCTION shop.total_%d(p_id bigint) RETURNS numeric\n    LANGUAGE plpgsql\n    AS $_$\n"
        b"BEGIN\n    -- sum the lines; 'quotes' and $1 inside the body\n"
        b"    RETURN (SELECT sum(amount) FROM shop.lines WHERE order_id = $1);\nEND\n$_$;\n\n"
    )
    return _repeat(lambda i: unit % (i, i, i, i), size)


def inserts_stream(size: int) -> bytes:
    return _repeat(
        lambda i: (
            b"INSERT INTO shop.orders VALUES (%d, '2026-01-02 03:04:05+00', 'customer %d', 12.34, NULL);\n"
            % (i, i % 977)
        ),
        size,
    )


def strings_stream(size: int) -> bytes:
    return b"COMMENT ON TABLE shop.orders IS '" + b"it''s a long note, " * (size // 20) + b"';\n"


def _repeat(unit: Callable[[int], bytes], size: int) -> bytes:
    parts: list[bytes] = []
    total, i = 0, 0
    while total < size:
        parts.append(unit(i))
        total += len(parts[-1])
        i += 1
    return b"".join(parts)


def chunks(data: bytes) -> Iterator[bytes]:
    for start in range(0, len(data), CHUNK):
        yield data[start : start + CHUNK]


def rate(counter_class: Callable[[], object], data: bytes) -> float:
    """MB/s of one pass; the best of three."""
    best = float("inf")
    pieces = list(chunks(data))
    for _ in range(3):
        counter = counter_class()
        started = time.perf_counter()
        for piece in pieces:
            counter.feed(piece)  # type: ignore[attr-defined]
        best = min(best, time.perf_counter() - started)
    return len(data) / best / 1e6


def baseline(revision: str) -> Callable[[], object]:
    source = subprocess.run(
        ["git", "show", f"{revision}:backup_job/pg/copycount.py"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    module = types.ModuleType("copycount_baseline")
    exec(compile(source, f"{revision}:copycount.py", "exec"), module.__dict__)
    return module.CopyRowCounter  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=64)
    parser.add_argument("--baseline", help="also run the counter of this git revision")
    args = parser.parse_args()
    size = args.megabytes * 1024 * 1024
    old = baseline(args.baseline) if args.baseline else None
    for name, make in (
        ("copy", copy_stream),
        ("schema", schema_stream),
        ("inserts", inserts_stream),
        ("strings", strings_stream),
    ):
        data = make(size)
        line = f"{name:8} {len(data) / 1e6:7.1f} MB  now {rate(CopyRowCounter, data):8.1f} MB/s"
        if old is not None:
            line += f"  {args.baseline} {rate(old, data):8.1f} MB/s"
        print(line, flush=True)


if __name__ == "__main__":
    main()
