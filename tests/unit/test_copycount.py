"""Unit tests of the COPY row counter: every way a chunk boundary can cut the stream, and every
way a database's names, strings, comments and function bodies could hide or fake a header."""

from __future__ import annotations

import importlib.util
import random
import re
import sys
import types

import pytest

from backup_job.pg import copycount
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
        pieces = [DUMP[a:b] for a, b in zip([0, *cuts], [*cuts, len(DUMP)], strict=False)]
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


# A fake block: header, one row, end marker. A database owner can get it into the dump inside
# a name, a string, a comment or a function body; read as a header it invents public.ghost.
GHOST = b"\nCOPY public.ghost (id) FROM stdin;\n1\n\\.\n"
X = b'public."x' + GHOST + b'"'  # a table whose name holds the fake block
HOSTILE = b"".join(
    (
        b"\\restrict key'with\"quotes\n\n",  # psql's backslash command: to the end of the line
        b"-- a comment: it's not a string\n",
        b"CREATE TABLE " + X + b" (id integer);\n",
        b"COMMENT ON TABLE public.t IS 'it''s" + GHOST + b"';\n",  # '' inside a string
        b"SELECT 'C:\\';\n",  # standard_conforming_strings: a backslash is a byte and ' ends the string
        b"SELECT E'it\\'s" + GHOST + b"';\n",  # in an E string \' is a quote
        b"SELECT E'a'\n  -- between the parts\n  '\\'" + GHOST + b"';\n",  # continued: still an E string
        b"SELECT E'a' '\\';\n",  # no newline between: a new, standard string
        b"SELECT :e'\\';\n",  # psql's variable :e, then a standard string
        b"CREATE FUNCTION public.f() RETURNS text LANGUAGE sql AS $_$ SELECT $q$ $b$" + GHOST + b"$q$ $_$;\n",
        b"SELECT $$" + GHOST + b"$$, $\xc3\xa9$" + GHOST + b"$\xc3\xa9$;\n",
        b"SELECT a$b$, 1e5$b$, 1_0$b$;\n",  # an identifier, and numbers with "junk": no quote starts
        b"SELECT $1$b$" + GHOST + b"$b$, 12$b$" + GHOST + b"$b$, 1e+5$b$" + GHOST + b"$b$;\n",  # quotes start
        b"/* outer /* nested */" + GHOST + b"*/\n",
        b"CREATE RULE r AS ON INSERT TO public.t DO INSTEAD (NOTIFY a;" + GHOST + b");\n",  # ; inside ( )
        b"SELECT 1 AS\nCOPY public.ghost (id) FROM stdin;\n",  # COPY inside a statement
        b"COPY " + X + b' ("c""' + GHOST + b'") FROM stdin;\n1\n2\n\\.\n',
        b"COPY public.nocols  FROM stdin;\n\n\n\\.\n",  # a table without columns: pg_dump's two spaces
        b'COPY "public"."t" ("a") FROM stdin;\n3\n\\.\n',  # --quote-all-identifiers
        b'COPY not a name FROM stdin;\nit\'s "odd"\n\\.\n',  # a block all the same: its rows are no SQL
        b"COPY public.t (a) TO stdout;\n",
        b"COPY public.t (a) FROM stdin;\n3\n\\.\n",
    )
)
HOSTILE_EXPECTED = {X.decode(): 2, "public.nocols": 2, '"public"."t"': 1, "public.t": 1}


def test_names_strings_comments_and_quotes_hide_no_header_and_make_none() -> None:
    assert _count([HOSTILE]) == HOSTILE_EXPECTED


def test_hostile_stream_cut_anywhere() -> None:
    for cut in range(1, len(HOSTILE)):
        assert _count([HOSTILE[:cut], HOSTILE[cut:]]) == HOSTILE_EXPECTED, f"cut at {cut}: {HOSTILE[:cut][-12:]!r}"
    assert _count([HOSTILE[i : i + 1] for i in range(len(HOSTILE))]) == HOSTILE_EXPECTED
    rng = random.Random(11)
    for _ in range(300):
        cuts = sorted(rng.sample(range(1, len(HOSTILE)), 8))
        pieces = [HOSTILE[a:b] for a, b in zip([0, *cuts], [*cuts, len(HOSTILE)], strict=False)]
        assert _count(pieces) == HOSTILE_EXPECTED


@pytest.mark.parametrize(
    ("sql", "counted"),
    [
        (b"SELECT E'\\\\';\n", True),  # \\ is one backslash, then the quote ends the string
        (b"SELECT e'\\'';\n", True),  # \' and then the closing quote
        (b"SELECT 'a''';\n", True),
        (b'SELECT "a""";\n', True),
        (b"SELECT 'a' -- the string ended\n;\n", True),
        (b"SELECT x$$;\n", True),  # $ inside an identifier
        (b"SELECT 0x1F$a$;\n", True),
        (b"SELECT 1.5e5$a$;\n", True),
        (b"SELECT 1..2$a$;\n", False),  # 1, .., 2 and then a quote
        (b"SELECT 1e--5;\n", True),  # 1e- is one (failed) number: no comment
        (b"SELECT 1 --5;\n", False),
        (b"SELECT 1 /* a */ ;\n", True),
        (b"SELECT 1 /* /* a */ ;\n", False),  # the outer comment is still open
        (b"SELECT 1 +/* ;\n", False),  # an operator stops where a comment starts
        (b"SELECT ((1);\n", False),
        (b"SELECT (1));\n", True),
        (b"SELECT \\; 1;\n", True),  # psql's \; is a ; that ends nothing
    ],
)
def test_where_a_statement_ends(sql: bytes, counted: bool) -> None:
    """Each statement is followed by a real block, counted only when the statement has ended."""
    expected = {"public.t": 1} if counted else {}
    data = sql + b"COPY public.t (a) FROM stdin;\n1\n\\.\n"
    assert _count([data]) == expected
    assert _count([data[i : i + 1] for i in range(len(data))]) == expected


def test_long_strings_and_bodies_do_not_grow_memory() -> None:
    counter = CopyRowCounter()
    counter.feed(b"COMMENT ON TABLE public.t IS 'it'")
    for _ in range(64):  # a 4 MiB string in pieces, each cut inside a doubled quote
        counter.feed(b"'s " + b"x" * 65533 + b"'")
        assert len(counter._sql._held) <= 1
    counter.feed(b"'';\nCREATE FUNCTION f() RETURNS int LANGUAGE sql AS $body$\n")
    for _ in range(64):  # a 4 MiB body in pieces, each ending on a tag's first bytes
        counter.feed(b"SELECT 1; -- " + b"x" * 65518 + b"$body")
        assert len(counter._sql._held) <= len(b"$body$") - 1
    counter.feed(b"$;\nCOPY public.t (a) FROM stdin;\n1\n\\.\n")
    assert counter.counts == {"public.t": 1}


def test_a_statement_longer_than_max_header_is_no_header(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(copycount, "MAX_HEADER", 100)
    long = b"COPY public.t (" + b", ".join(b"c%d" % i for i in range(40)) + b") FROM stdin;\n1\n\\.\n"
    assert _count([long[i : i + 7] for i in range(0, len(long), 7)]) == {}


def test_a_token_too_long_to_follow_stops_the_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(copycount, "MAX_HEADER", 100)
    counter = CopyRowCounter()
    counter.feed(b"COPY public.a (v) FROM stdin;\n1\n\\.\nSELECT $" + b"t" * 50)
    for _ in range(10):
        counter.feed(b"t" * 50)  # a dollar tag that never ends
        assert len(counter._sql._held) <= 100
    counter.feed(b"$ x $" + b"t" * 550 + b"$;\nCOPY public.b (v) FROM stdin;\n1\n\\.\n")
    assert counter.counts == {"public.a": 1}


def _counter_as_on_an_interpreter_before_3_11_5(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """The module loaded afresh as CPython 3.11.0-3.11.4 would build it: no possessive repeat of
    a group anywhere (those can match wrongly there), atomic groups instead."""
    monkeypatch.setattr(sys, "version_info", (3, 11, 2, "final", 0))
    spec = importlib.util.spec_from_file_location("copycount_before_3_11_5", copycount.__file__)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_spelling_for_interpreters_before_3_11_5_counts_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """On Debian 12's python3 (3.11.2) the possessive quick pass matched nothing at the newline
    before ``);`` and a backup of any table hung for ever. The other spelling has no possessive
    group at all, and counts what this interpreter's possessive patterns count."""
    assert any(
        re.search(rb"\)[*+?]\+", value.pattern) for value in vars(copycount).values() if isinstance(value, re.Pattern)
    ) == (sys.version_info >= (3, 11, 5))
    old = _counter_as_on_an_interpreter_before_3_11_5(monkeypatch)
    patterns = [value.pattern for value in vars(old).values() if isinstance(value, re.Pattern)]
    assert patterns and not [p for p in patterns if re.search(rb"\)[*+?]\+", p)]
    rng = random.Random(5)
    pieces = [
        b"COPY ",
        b"public.t",
        b' "x',
        b'"',
        b"'",
        b"E'",
        b"\\",
        b"\\.\n",
        b"\n",
        b";",
        b" FROM stdin;\n",
        b"$",
        b"$a$",
        b"1e5",
        b"1_0$",
        b"--",
        b"/*",
        b"*/",
        b"(",
        b")",
        b"::",
        b":x",
        b" ",
        b"''",
        b"COPY public.t (n) FROM stdin;\n",
        b"1\t2\n",
        b"\\restrict x\n",
        b"-",
        b"/",
        b".",
        b"+",
    ]
    streams = [DUMP, HOSTILE] + [b"".join(rng.choice(pieces) for _ in range(rng.randrange(1, 80))) for _ in range(2000)]
    for data in streams:
        for size in (len(data), 3, 1):
            chunks = [data[i : i + size] for i in range(0, len(data), size)]
            counter = old.CopyRowCounter()
            for chunk in chunks:
                counter.feed(chunk)
            assert counter.counts == _count(chunks), data


def test_a_step_that_never_moves_on_stops_the_count_instead_of_spinning(monkeypatch: pytest.MonkeyPatch) -> None:
    """Should a pattern ever match nothing where it must match something (as the possessive
    ones did on 3.11.2), the lexer would read the same byte for ever and the backup would hang
    with it: the counter gives up instead, and the dump goes on."""
    monkeypatch.setattr(copycount, "_FAST_STATEMENTS", re.compile(b""))
    monkeypatch.setattr(copycount, "_TOKENS", re.compile(b""))
    counter = CopyRowCounter()
    counter.feed(b"CREATE TABLE public.t (\n    n integer\n);\n")
    counter.feed(b"COPY public.t (n) FROM stdin;\n1\n\\.\n")
    assert counter._sql.lost and counter.counts == {}
