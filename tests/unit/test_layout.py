"""Unit tests of the object layout: every database name maps to one safe key and back."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from backup_job.core.layout import (
    GLOBALS,
    backup_keys,
    decode_database,
    encode_database,
    format_timestamp,
    parse_key,
    parse_timestamp,
)

ODD_NAMES = [
    "plain",
    "with space",
    "a/b",
    "back\\slash",
    "quote'",
    'double"',
    "ünïcødé",
    "日本語",
    "_leading",
    "mid_underscore",
    ".",
    "..",
    ".hidden",
    "%41",
    "emoji 🐘",
    "tab\tname",
    "-dash",
    "UPPER.lower",
]


@pytest.mark.parametrize("name", ODD_NAMES)
def test_encoding_is_safe_and_reversible(name: str) -> None:
    segment = encode_database(name)
    assert re.fullmatch(r"[A-Za-z0-9._%-]+", segment)
    assert not segment.startswith("_") and segment not in (".", "..")
    assert decode_database(segment) == name


def test_encoding_is_injective_over_the_odd_names() -> None:
    assert len({encode_database(n) for n in ODD_NAMES}) == len(ODD_NAMES)


def test_known_encodings() -> None:
    assert encode_database("with space") == "with%20space"
    assert encode_database("_globals") == "%5Fglobals"
    assert encode_database("a_b") == "a_b"
    assert encode_database("é") == "%C3%A9"


@pytest.mark.parametrize("segment", ["_globals", "a%2fb", "a%2", "a b", "%41", "a%", ""])
def test_non_canonical_segments_are_not_ours(segment: str) -> None:
    with pytest.raises(ValueError):
        decode_database(segment)


def test_keys_with_and_without_prefix() -> None:
    keys = backup_keys("nightly/pg", "my db", "20260102T030405Z")
    assert keys.dump == "nightly/pg/my%20db/20260102T030405Z.sql.gz"
    assert keys.manifest == "nightly/pg/my%20db/20260102T030405Z.manifest.json"
    bare = backup_keys("", "app", "20260102T030405Z")
    assert bare.dump == "app/20260102T030405Z.sql.gz"


def test_parse_key_recognises_only_our_layout() -> None:
    assert parse_key("p", "p/my%20db/20260102T030405Z.sql.gz") == ("my db", "20260102T030405Z", ".sql.gz")
    assert parse_key("", "app/20260102T030405Z.manifest.json") == ("app", "20260102T030405Z", ".manifest.json")
    assert parse_key("p", "p/_globals/20260102T030405Z.sql.gz") == (GLOBALS, "20260102T030405Z", ".sql.gz")
    assert parse_key("p", "p/%5Fglobals/20260102T030405Z.sql.gz") == ("_globals", "20260102T030405Z", ".sql.gz")
    # dumps in formats a newer pgbackup writes are still ours (listed as unknown, never deleted)
    assert parse_key("p", "p/app/20260102T030405Z.sql.zst") == ("app", "20260102T030405Z", ".sql.zst")
    assert parse_key("p", "p/app/20260102T030405Z.sql.gz.age") == ("app", "20260102T030405Z", ".sql.gz.age")
    for foreign in (
        "p/app/latest.sql.gz",
        "p/app/20260102T030405Z.sql",
        "other/app/20260102T030405Z.sql.gz",
        "p/_other/20260102T030405Z.sql.gz",
        "p/a/b/20260102T030405Z.sql.gz",
        "p/app/2026-01-02.sql.gz",
        "p/_globals/x/20260102T030405Z.sql.gz",
        "p/app/20260102T030405Z.txt",
        "p/app/20260102T030405Z.sql.a.b.c",
    ):
        assert parse_key("p", foreign) is None, foreign


def test_timestamps_are_utc_and_round_trip() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert format_timestamp(moment) == "20260102T030405Z"
    assert parse_timestamp("20260102T030405Z") == moment
    with pytest.raises(ValueError):
        parse_timestamp("2026-01-02")
