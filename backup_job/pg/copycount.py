"""Rows per table, counted in the dump stream as it passes by.

A plain pg_dump writes each table's data as one COPY block::

    COPY shop.orders (id, placed, amount) FROM stdin;
    1	2026-01-02 03:04:05+00	12.34
    ...
    \\.

Inside a block every row is exactly one line (newlines and backslashes in values are
escaped), and the block ends with the line ``\\.``. Counting the lines between the two gives
the rows pg_dump wrote, inside pg_dump's own snapshot; a separate ``count(*)`` would race
with concurrent writes. ``verify`` compares these counts with the restored tables.

The counter sees the raw chunks before compression, on its own thread. Rows are counted
with ``bytes.count`` and the end of a block found by jumping between backslashes
(``memchr``) over whole chunks, so the cost stays small next to compression. Only the start of a possibly incomplete line is kept between chunks (a few
bytes inside a block; at most ``MAX_HEADER`` outside one), so memory does not depend on the
width of a row. The table name is kept as pg_dump quoted it (``"My Schema"."T"``), which is
also valid SQL to count it with.
"""

from __future__ import annotations

import re

MAX_HEADER = 1024 * 1024  # a longer line outside a COPY block is not a COPY header
_COPY_HEADER = re.compile(
    rb'COPY ((?:"(?:[^"]|"")*"|[^" .(]+)(?:\.(?:"(?:[^"]|"")*"|[^" .(]+))?)(?: \(.*\))? FROM stdin;'
)
_END = b"\\."


def _find_end(chunk: bytes, start: int) -> int:
    """Where a newline, the end marker and a newline are in ``chunk`` after ``start``, or -1.

    Found by jumping from backslash to backslash (``memchr``): COPY data escapes every
    backslash it holds, so they are rare and this runs at memory speed, where searching for
    the four bytes themselves crawls over data full of newlines."""
    at = chunk.find(b"\\", start + 1)
    while at != -1:
        if chunk[at - 1] == 0x0A and chunk.startswith(b".\n", at + 1):
            return at - 1
        at = chunk.find(b"\\", at + 1)
    return -1


class CopyRowCounter:
    """Feed it the dump's bytes in order; ``counts`` maps each table to its rows."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self._table: str | None = None  # inside a COPY block of this table
        self._line = bytearray()  # start of the current, incomplete line
        self._long = False  # the current line outgrew what needs keeping

    def feed(self, chunk: bytes) -> None:
        start = 0
        while start < len(chunk):
            if self._line or self._long:
                start = self._finish_line(chunk, start)
            elif self._table is not None:
                start = self._scan_rows(chunk, start)
            else:
                start = self._scan_sql(chunk, start)

    def _finish_line(self, chunk: bytes, start: int) -> int:
        """Complete the line begun in an earlier chunk."""
        end = chunk.find(b"\n", start)
        if end == -1:
            self._keep(chunk[start:])
            return len(chunk)
        self._keep(chunk[start:end])
        line, long = bytes(self._line), self._long
        self._line.clear()
        self._long = False
        self._complete(line, long)
        return end + 1

    def _keep(self, data: bytes) -> None:
        limit = len(_END) + 1 if self._table is not None else MAX_HEADER
        room = limit - len(self._line)
        if len(data) > room:
            self._long = True
        self._line += data[: max(room, 0)]

    def _complete(self, line: bytes, long: bool) -> None:
        if self._table is not None:
            if line == _END and not long:
                self._table = None
            else:
                self._add(1)
        elif not long:
            self._header(line)

    def _scan_rows(self, chunk: bytes, start: int) -> int:
        """Inside a block at the start of a line: count rows up to the end marker."""
        if chunk.startswith(_END + b"\n", start):
            self._table = None
            return start + len(_END) + 1
        marker = _find_end(chunk, start)
        if marker != -1:
            self._add(chunk.count(b"\n", start, marker + 1))
            self._table = None
            return marker + len(_END) + 2
        last = chunk.rfind(b"\n", start)
        if last != -1:
            self._add(chunk.count(b"\n", start, last + 1))
            start = last + 1
        self._keep(chunk[start:])
        return len(chunk)

    def _scan_sql(self, chunk: bytes, start: int) -> int:
        """Outside a block at the start of a line: look at one line."""
        end = chunk.find(b"\n", start)
        if end == -1:
            self._keep(chunk[start:])
            return len(chunk)
        if chunk.startswith(b"COPY ", start):
            self._header(chunk[start:end])
        return end + 1

    def _header(self, line: bytes) -> None:
        match = _COPY_HEADER.fullmatch(line)
        if match:
            self._table = match.group(1).decode("utf-8", "replace")
            self.counts.setdefault(self._table, 0)

    def _add(self, rows: int) -> None:
        assert self._table is not None
        self.counts[self._table] += rows
