"""Compression: the format of stored dumps, its level and its threads.

What the user asked for; ``pipeline.compress`` maps it onto a library. The level is checked
against its own format's range (gzip 1-9, zstd 1-19), and unset it is that format's default.
"""

from __future__ import annotations

from ..schema import Invalid, Variable, choice, format_optional, integer, optional_integer
from .group import Group

LEVELS = {"gzip": (1, 9), "zstd": (1, 19)}  # the level range of each format, in its own words
DEFAULT_LEVEL = {"gzip": 6, "zstd": 3}


def _level(value: str) -> int:
    """1-19, checked against the format's own range once both are known; unset: 0 (the
    format's default, filled in by ``Compression.settle``)."""
    return integer(1, 19)(value) if value.strip() else 0


def _format_level(value: int) -> str:
    return str(value) if value else ""


class Compression(Group):
    """The format, its level in the format's own scale, and the threads of one database's stream."""

    format = Variable(
        "BACKUP_COMPRESSION",
        choice("gzip", "zstd"),
        "`gzip` (one standard gzip stream, `.sql.gz`) or `zstd` (`.sql.zst`, about 10% smaller; "
        "restore it by hand with `zstd -dc`). See [Performance](performance.md).",
        default="gzip",
        example="zstd",
        note="gzip (.sql.gz) or zstd (.sql.zst).",
    )
    level = Variable(
        "BACKUP_COMPRESSION_LEVEL",
        _level,
        "gzip: 1-9, zstd: 1-19. What each level means in speed and size: see "
        "[Performance](performance.md#compression-levels).",
        example="1, 9",
        note="Unset: 6 for gzip, 3 for zstd.",
        shown_default="6 (gzip), 3 (zstd)",
        format=_format_level,
    )
    threads = Variable(
        "BACKUP_COMPRESSION_THREADS",
        optional_integer(1, 64),
        "Compression threads of one database's stream (1-64).",
        example="2",
        note="Unset: the CPUs this container may use, shared among the databases running at once.",
        shown_default="the CPUs this process may use (affinity, cgroup CPU limit), "
        "divided among the databases running at once",
        format=format_optional,
    )

    def settle(self) -> None:
        """An unset level is the format's default; a set one must be in the format's range."""
        low, high = LEVELS[self.format]
        if not self.level:
            object.__setattr__(self, "level", DEFAULT_LEVEL[self.format])
        elif not low <= self.level <= high:
            raise Compression.level.problem(
                str(self.level),
                Invalid(
                    f"is out of range for {self.format}: it must be from {low} to {high}",
                    str(DEFAULT_LEVEL[self.format]),
                ),
            )
