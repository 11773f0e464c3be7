"""Unit tests of the COPY row counter: every way a chunk boundary can cut the stream."""

from __future__ import annotations

import random

from backup_job.pg.copycount import CopyRowCounter

DUMP = (
    b"--\n-- PostgreSQL database dump\n--\n\n"
    b"CREATE TABLE public.t (a int);\n"
    b"COPY public.t (a) FROM stdin;\n1\n2\n3\n\\.\n\n"
    b'COPY "My Schema"."Odd ""T""" (v, w) FROM stdin;\n'
    b"a\\nb\tx\n\\\\.\t\\.\n\\N\t\n\\.\n"
    b"COPY public.empty (a) FROM stdin;\n\\.\n"
    b"CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$\nCOPY x FROM stdin\n$$;\n"
    b"COPY public.t (a) FROM stdin;\n4\n\\.\n"
    b"-- the end\n"
)
EXPECTED = {"public.t": 4, '"My Schema"."Odd ""T"""': 3, "public.empty": 0}


def _count(chunks: list[bytes]) -> dict[str, int]:
    counter = CopyRowCounter()
    for chunk in chunks:
        counter.feed(chunk)
    return counter.counts


def test_whole_stream() -> None:
    assert _count([DUMP]) == EXPECTED


def test_every_single_cut() -> None:
    for cut in range(1, len(DUMP)):
        assert _count([DUMP[:cut], DUMP[cut:]]) == EXPECTED, f"cut at {cut}: {DUMP[:cut][-12:]!r}"


def test_byte_by_byte_and_random_chunks() -> None:
    assert _count([DUMP[i : i + 1] for i in range(len(DUMP))]) == EXPECTED
    rng = random.Random(7)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(DUMP)), 6))
        pieces = [DUMP[a:b] for a, b in zip([0, *cuts], [*cuts, len(DUMP)])]
        assert _count(pieces) == EXPECTED


def test_long_rows_do_not_grow_memory() -> None:
    counter = CopyRowCounter()
    counter.feed(b"COPY public.wide (v) FROM stdin;\n")
    for _ in range(64):
        counter.feed(b"x" * 65536)  # one 4 MiB row arriving in pieces
    counter.feed(b"\n\\.\n")
    assert counter.counts == {"public.wide": 1}
    assert len(counter._line) <= 3


def test_a_line_that_only_looks_like_copy_is_not_a_block() -> None:
    assert _count([b"COPY public.t (a) TO stdout;\n1\n\\.\n"]) == {}
