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

Finding the blocks means reading the SQL between them as psql will read it at restore time.
Whoever owns a database chooses its names, comments, defaults and function bodies, and
pg_dump writes them quoted but otherwise as they are: a table named ``"x<newline>COPY
public.ghost (id) FROM stdin;"`` puts a line that looks like a header into the dump. Taking
every line that starts with ``COPY`` for a header would count a table that does not exist (or
swallow real rows), and the drill would fail for ever. So between the blocks a lexer follows
psql's (``src/fe_utils/psqlscan.l``) through every state in which ``COPY`` is only text:

- ``"..."`` names (``""`` inside); ``'...'`` strings (``''`` inside; pg_dump sets
  ``standard_conforming_strings``, so a backslash is an ordinary byte); ``E'...'`` strings,
  where a backslash escapes the next byte and, as in psql, a quote after whitespace holding a
  newline continues the same E string; ``$tag$ ... $tag$`` quotes, with PostgreSQL's rules
  for the tag and for where one may start (``a$b$``, ``1e5$b$`` and ``$1`` start none);
- ``--`` comments to the end of the line; ``/* */`` comments, which nest;
- psql's own backslash commands (pg_dump writes ``\\restrict``), to the end of the line;
- parentheses, since psql ends a statement only at a ``;`` outside them.

A header is a statement that starts at the start of a line with ``COPY `` and ends at its
``;`` with `` FROM stdin;`` followed by a newline, as pg_dump writes every one. The table name
is kept as pg_dump quoted it (``"My Schema"."T"``), which is also valid SQL to count it with.
psql's tracking of ``BEGIN ATOMIC ... END`` function bodies is left out: their statements are
queries pg_dump deparsed and indented, never a COPY, and their strings are lexed as anywhere.

The counter sees the raw chunks before compression, on its own thread. In a block, rows are
counted with ``bytes.count`` and the end found by jumping between backslashes (``memchr``)
over whole chunks, so the cost stays small next to compression. Between blocks nothing is
read byte by byte in Python either: a quick pass (one regular expression) crosses whatever
can neither change the state nor depend on the token before it (words, blanks, casts,
complete strings and names, parentheses it can pair, and ``;`` when the next statement
plainly is no COPY), and stops at the few bytes that can: ``$``, ``:``, ``-``, ``/``, ``\\``,
a quote after an ``E``. There a second expression with psql's token rules (flex takes the
longest match, so ``1e5$x$`` is one token and ``1e+5$x$`` two) re-reads the last word; quoted
text and comments are crossed with ``find``. Chunk boundaries may fall anywhere: what the next
bytes decide (a last ``'`` that may be doubled, a ``-`` that may start a comment, an
unfinished word or ``$tag``) is read again with the next chunk. Memory does not depend on the
width of a row or of a string: between chunks the counter
keeps the start of an unfinished line in a block (a few bytes), the unfinished token or the
last bytes of a dollar quote outside one, and the COPY statement being read, each at most
``MAX_HEADER``. pg_dump writes no header, token or tag that long (names are cut at 63 bytes,
numbers have at most 147,455 digits, and a tag only outgrows ``$_$`` when the body holds the
shorter ones); should one come anyway, the lexer could no longer follow psql, so counting stops
there and the tables counted until then keep their counts.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable

MAX_HEADER = 1024 * 1024  # a longer COPY statement is no header; a longer token or tag stops the count
_END = b"\\."
_MAX_STILL = 8  # steps in a row that stay put, each changing the state (60,000 random inputs: at most 1)

# Possessive repeats of a group ((?:...)*+) can match wrongly on CPython before 3.11.5 (gh-106052,
# gh-100061: on 3.11.2, Debian 12's python3, the quick pass matched nothing at a newline and the
# lexer never moved on). There they are written as greedy repeats inside atomic groups, which
# mean the same; repeats of one character class ([^']++) were never affected and stay possessive.
_POSSESSIVE_GROUPS = sys.version_info >= (3, 11, 5)


def _many(pattern: str) -> str:
    """``(?:pattern)*+``: as many as match, none given back."""
    return f"(?:{pattern})*+" if _POSSESSIVE_GROUPS else f"(?>(?:{pattern})*)"


def _some(pattern: str) -> str:
    """``(?:pattern)++``."""
    return f"(?:{pattern})++" if _POSSESSIVE_GROUPS else f"(?>(?:{pattern})+)"


# psqlscan.l's classes, for bytes (where \w is [A-Za-z0-9_]): ident_start, dolq_cont, ident_cont.
_S, _C, _R = r"[A-Za-z_\x80-\xff]", r"[\w\x80-\xff]", r"[\w\x80-\xff$]"
# Numbers as flex cuts them, taking the longest match: an identifier right after a number
# belongs to the same ("junk") token, so the $ in 1e5$x$ or 1_0$x$ starts no dollar quote,
# while 1e+5$x$ and 12$x$ end the number before it.
_JUNK = rf"{_S}{_R}*+"
_DEC = r"\d" + _many(r"_?\d")
_UJUNK = r"\d++" + _some(r"_\d++") + rf"\${_R}*+"  # digits with an underscore, then $: junk from the underscore on
_TAIL = rf"(?:[eE][-+](?:{_UJUNK}|{_DEC}(?:{_JUNK})?)?|{_JUNK})"  # an exponent, or junk
_NUMBER = (
    rf"(?>{_UJUNK}|{_DEC}(?:\.(?!\.)(?:{_UJUNK}|(?:{_DEC})?{_TAIL}?)|{_TAIL})?"
    rf"|\.(?:{_UJUNK}|{_DEC}{_TAIL}?))"
)
_QUOTED = _many(r"[^']++|''")  # the inside of a '...' string or, with ", of a "..." name
_QUOTED_NAME = _many(r'[^"]++|""')
# Exact lexing: whole tokens after which lexing goes on in the same state, up to the next
# blank (where the quick pass takes over again). Each ends before the end of the buffer
# ((?!\Z)) where the next bytes could still change it; the stop is then read again.
_TOKENS = re.compile(
    _many(
        "|".join(
            (
                r"[^-/'\"$\\;:()\w\x80-\xff.\s]++",  # operators, commas...
                rf"(?![eE]'){_S}{_R}*+(?!\Z)",  # identifiers and key words; E'...' starts a string
                rf"{_NUMBER}(?!\Z)",
                rf"(?>\$\d++(?:{_JUNK})?)(?!\Z)",  # parameters ($1)
                rf"\$(?=(?:{_S}{_C}*+)?[^\w\x80-\xff$])",  # a $ that starts no quote (its word is lexed anew)
                rf":(?:[:=]|{_C}++(?!\Z)|(?=[^:\w\x80-\xff]))",  # ::, :=, a psql variable (:name) or a lone :
                r"-(?!-)(?!\Z)",
                r"/(?!\*)(?!\Z)",
                r"\.(?!\d)(?!\Z)",
                rf"'{_QUOTED}'(?!\Z)",
                rf'"{_QUOTED_NAME}"(?!\Z)',  # complete strings and names
            )
        )
    ).encode()
)
# The quick pass: bytes that neither change the state nor depend on the token before them
# (no quote, comment, $, : or \ can start among them), casts (::), complete strings and
# names not after an E, and parentheses (nested up to four deep) with only these inside.
# Between statements it also crosses a ; when the next statement starts with nothing that
# needs a look (a COPY, a comment, a \ command).
_QUICK = rf"""(?:[^-/'"$\\;:()]++|::|(?<![eE])'{_QUOTED}'(?!\Z)|"{_QUOTED_NAME}"(?!\Z))"""
_QUICK_PARENS = r"\(" + _many(rf"{_QUICK}|;") + r"\)"
for _ in range(3):
    _QUICK_PARENS = r"\(" + _many(rf"{_QUICK}|;|{_QUICK_PARENS}") + r"\)"
_FAST = re.compile(_many(rf"{_QUICK}|{_QUICK_PARENS}").encode())
_FAST_STATEMENTS = re.compile(_many(rf"{_QUICK}|{_QUICK_PARENS}|;(?=\s*+[^-/\\C\s])").encode())
_BOUNDARY = re.compile(rb"""(?s:.*)[\s'"(),]""")  # the last byte after which a token starts
_BLANKS = re.compile(_many(r"[ \t\n\r\f\v]++|--[^\n\r]*+(?=[\n\r])").encode())  # and whole -- comments
_DOLLAR_QUOTE = re.compile(rf"\$(?:{_S}{_C}*+)?\$".encode())
_UNFINISHED = re.compile(rb"[\w\x80-\xff$.:+-]*+\Z")  # a token running to the end of the buffer
_STRING = re.compile(_QUOTED.encode())
_NAME = re.compile(_QUOTED_NAME.encode())
_E_STRING = re.compile(_many(r"[^\\']++|''|\\.").encode(), re.DOTALL)
_CONTINUATION = re.compile(_many(r"[ \t\n\r\f\v]++|--[^\n\r]*+").encode())  # may join two parts of a string
_COMMENT_MARK = re.compile(rb"/\*|\*/")
_NEWLINE = re.compile(rb"[\n\r]")
_IDENT = r'(?:"' + _many(r'[^"]|""') + r'"|[A-Za-z_\x80-\xff][\w\x80-\xff$]*+)'
_COLUMNS = rf"\({_IDENT}" + _many(f", {_IDENT}") + r"\)"
_COPY_HEADER = re.compile(rf"COPY ({_IDENT}(?:\.{_IDENT})?) (?:{_COLUMNS})? FROM stdin;".encode())


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
        self._sql = _SqlLexer()  # between blocks
        self._in_block = False
        self._table: str | None = None  # the block's table (None: a name we could not read)
        self._line = bytearray()  # in a block: start of the current, incomplete line
        self._long = False  # the current line outgrew what needs keeping

    @property
    def lost(self) -> bool:
        """The lexer met something too long to follow and stopped: later tables are not counted."""
        return self._sql.lost

    def feed(self, chunk: bytes) -> None:
        start = 0
        while start < len(chunk):
            if not self._in_block:
                start = self._sql.scan(chunk, start)
                if start < 0:
                    return
                self._open(self._sql.table)
            elif self._line or self._long:
                start = self._finish_line(chunk, start)
            else:
                start = self._scan_rows(chunk, start)

    def _open(self, table: str | None) -> None:
        self._in_block, self._table = True, table
        if table is not None:
            self.counts.setdefault(table, 0)

    def _finish_line(self, chunk: bytes, start: int) -> int:
        """Complete the line begun in an earlier chunk."""
        end = chunk.find(b"\n", start)
        if end == -1:
            self._keep(chunk[start:])
            return len(chunk)
        self._keep(chunk[start:end])
        if self._line == _END and not self._long:
            self._in_block = False
        else:
            self._add(1)
        self._line.clear()
        self._long = False
        return end + 1

    def _keep(self, data: bytes) -> None:
        room = len(_END) + 1 - len(self._line)
        if len(data) > room:
            self._long = True
        self._line += data[: max(room, 0)]

    def _scan_rows(self, chunk: bytes, start: int) -> int:
        """Inside a block at the start of a line: count rows up to the end marker."""
        if chunk.startswith(_END + b"\n", start):
            self._in_block = False
            return start + len(_END) + 1
        marker = _find_end(chunk, start)
        if marker != -1:
            self._add(chunk.count(b"\n", start, marker + 1))
            self._in_block = False
            return marker + len(_END) + 2
        last = chunk.rfind(b"\n", start)
        if last != -1:
            self._add(chunk.count(b"\n", start, last + 1))
            start = last + 1
        self._keep(chunk[start:])
        return len(chunk)

    def _add(self, rows: int) -> None:
        if self._table is not None:
            self.counts[self._table] += rows


def _skip(pattern: re.Pattern[bytes], buf: bytes, pos: int) -> int:
    """Where ``pattern`` (one that may match nothing) stops matching from ``pos``."""
    match = pattern.match(buf, pos)
    return match.end() if match else pos


class _SqlLexer:
    """psql's reading of the SQL between COPY blocks, fed in chunks: where the next block starts."""

    def __init__(self) -> None:
        self.table: str | None = None  # the table of the block found last (None: unreadable name)
        self.lost = False  # something too long (or a step that stays put) came: the lexer has stopped
        self._step: Callable[[bytes, int], int] = self._initial  # the state, as the method reading it
        self._statement = True  # nothing but blanks and comments since the last statement ended
        self._line_start = True  # the byte before the buffer ends a line
        self._parens = 0
        self._depth = 0  # /* */ comments open inside the outermost one
        self._tag = b""  # the $tag$ that ends the current dollar quote
        self._newline = False  # after an E string: a newline came (a quote now continues it)
        self._comment = False  # after an E string: inside a -- comment
        self._header: bytearray | None = None  # the COPY statement being read
        self._too_long = False  # ... outgrew MAX_HEADER
        self._held = b""  # the end of the last buffer, to read again with the next chunk
        self._hold = self._mark = self._found = -1  # in a buffer: held from; header from; block at

    def scan(self, chunk: bytes, start: int) -> int:
        """Read ``chunk`` from ``start``: where in it the next block's rows begin, or -1."""
        if self.lost:
            return -1
        held = self._held
        buf = b"".join((held, memoryview(chunk)[start:])) if held else chunk
        pos = 0 if held else start
        self._held, self._hold, self._mark, self._found = b"", -1, pos, -1
        still = 0  # steps in a row that did not move: a few change the state; more never end
        while pos < len(buf) and self._found < 0:
            moved = self._step(buf, pos)
            still = 0 if moved != pos else still + 1
            if still > _MAX_STILL:
                self.lost, self._held = True, b""  # stop counting rather than spin for ever
                return -1
            pos = moved
        if self._found >= 0:
            return self._found - len(held) + (start if held else 0)
        self._keep(buf)
        return -1

    def _keep(self, buf: bytes) -> None:
        """At the end of a buffer: add to the header, keep what the next chunk decides."""
        end = len(buf) if self._hold < 0 else self._hold
        if self._header is not None:
            self._collect(buf[self._mark : end])
        if end:
            self._line_start = buf[end - 1] == 0x0A
        self.lost = len(buf) - end > MAX_HEADER
        self._held = b"" if self.lost else buf[end:]

    def _collect(self, piece: bytes) -> None:
        assert self._header is not None
        if len(self._header) + len(piece) > MAX_HEADER:
            self._too_long = True
        if not self._too_long:
            self._header += piece

    def _hold_at(self, buf: bytes, at: int) -> int:
        """Stop: the bytes after ``at`` decide what it is, so read it again with the next chunk."""
        self._hold = at
        return len(buf)

    def _enter(self, step: Callable[[bytes, int], int], pos: int) -> int:
        self._step = step
        return pos

    def _initial(self, buf: bytes, pos: int) -> int:
        """Outside quotes and comments: the quick pass, then exact lexing where it stopped."""
        if self._statement:
            return self._statement_start(buf, pos)
        stop = _skip(_FAST if self._header is not None else _FAST_STATEMENTS, buf, pos)
        if stop < len(buf) and (
            buf[stop] in b';()\\"' or (buf[stop] == 0x27 and (stop == pos or buf[stop - 1] not in b"eE"))
        ):
            return self._special(buf, stop)  # these mean the same after any token
        boundary = _BOUNDARY.match(buf, pos, stop)
        stop = _skip(_TOKENS, buf, boundary.end() if boundary else pos)
        if stop == len(buf) or buf[stop] in b" \t\n\r\f\v":
            return stop
        return self._special(buf, stop)

    def _statement_start(self, buf: bytes, pos: int) -> int:
        """Between statements: blanks, comments and backslash commands keep it so; ``COPY `` at
        the start of a line begins what may be a header."""
        pos = _skip(_BLANKS, buf, pos)
        head = buf[pos : pos + 5]
        if head == b"COPY " and (buf[pos - 1] == 0x0A if pos else self._line_start):
            self._header, self._too_long, self._mark = bytearray(), False, pos
        elif len(head) < 5 and (b"COPY ".startswith(head) or head in (b"-", b"/", b"\\")):
            return pos if pos == len(buf) else self._hold_at(buf, pos)
        elif head[:2] in (b"--", b"/*") or (head[:1] == b"\\" and head[:2] not in (b"\\;", b"\\:")):
            return self._opener(buf, pos)
        self._statement = False
        return pos

    def _special(self, buf: bytes, at: int) -> int:
        """Where the state may change: a quote, a parenthesis, ``;`` or an opener."""
        byte = buf[at]
        if byte == 0x27:  # '
            return self._enter(self._string, at + 1)
        if byte == 0x22:  # "
            return self._enter(self._name, at + 1)
        if byte == 0x3B:  # ;
            return self._semicolon(buf, at)
        if byte in b"()":
            self._parens = self._parens + 1 if byte == 0x28 else max(self._parens - 1, 0)
            return at + 1
        return self._opener(buf, at)

    def _opener(self, buf: bytes, at: int) -> int:
        """``--``, ``/*``, ``E'``, a backslash command, a dollar quote; or a token to finish."""
        two = buf[at : at + 2]
        if len(two) < 2:
            return self._hold_at(buf, at)
        if two == b"--":
            return self._enter(self._line_comment, at + 2)
        if two == b"/*":
            self._depth = 0
            return self._enter(self._block_comment, at + 2)
        if two in (b"E'", b"e'"):
            self._newline = self._comment = False
            return self._enter(self._e_string, at + 2)
        if two in (b"\\;", b"\\:"):  # psql puts the ; or : into the statement
            return at + 2
        if two[0] == 0x5C:  # \
            return self._enter(self._backslash_command, at + 1)
        return self._dollar(buf, at)

    def _dollar(self, buf: bytes, at: int) -> int:
        quote = _DOLLAR_QUOTE.match(buf, at)
        if quote:
            self._tag = quote.group()
            return self._enter(self._dollar_quoted, quote.end())
        if _UNFINISHED.match(buf, at):
            return self._hold_at(buf, at)
        return at + 1  # not reached: _TOKENS takes every finished token

    def _semicolon(self, buf: bytes, at: int) -> int:
        """A ``;`` outside parentheses ends the statement; ``COPY ... FROM stdin;`` opens a block."""
        if self._parens:
            return at + 1
        if self._header is not None:
            if at + 1 == len(buf):
                return self._hold_at(buf, at)
            self._collect(buf[self._mark : at + 1])
            header = None if self._too_long else bytes(self._header)
            self._header = None
            if header is not None and header.endswith(b" FROM stdin;") and buf[at + 1] == 0x0A:
                return self._open(header, at + 2)
        self._statement = True
        return at + 1

    def _open(self, header: bytes, at: int) -> int:
        match = _COPY_HEADER.fullmatch(header)
        self.table = match.group(1).decode("utf-8", "replace") if match else None
        self._found, self._statement, self._line_start = at, True, True
        return at

    def _quoted(self, buf: bytes, pos: int, body: re.Pattern[bytes], after: Callable[[bytes, int], int]) -> int:
        stop = _skip(body, buf, pos)
        if stop + 1 >= len(buf):  # the end; or a last quote or backslash the next byte pairs
            return stop if stop == len(buf) else self._hold_at(buf, stop)
        return self._enter(after, stop + 1)

    def _string(self, buf: bytes, pos: int) -> int:
        return self._quoted(buf, pos, _STRING, self._initial)

    def _name(self, buf: bytes, pos: int) -> int:
        return self._quoted(buf, pos, _NAME, self._initial)

    def _e_string(self, buf: bytes, pos: int) -> int:
        return self._quoted(buf, pos, _E_STRING, self._continuation)

    def _continuation(self, buf: bytes, pos: int) -> int:
        """After an E string: whitespace and comments holding a newline, then a quote, continue
        it (psql's xqs state), still with backslash escapes."""
        if self._comment:
            newline = _NEWLINE.search(buf, pos)
            if newline is None:
                return len(buf)
            self._comment, pos = False, newline.start()
        stop = _skip(_CONTINUATION, buf, pos)
        self._newline = self._newline or _NEWLINE.search(buf, pos, stop) is not None
        if stop == len(buf):
            line = max(buf.rfind(b"\n", pos, stop), buf.rfind(b"\r", pos, stop)) + 1
            self._comment = buf.find(b"--", max(line, pos), stop) >= 0
            return stop
        if buf[stop] == 0x2D and stop + 1 == len(buf):  # a - that may start a comment
            return self._hold_at(buf, stop)
        if buf[stop] == 0x27 and self._newline:
            self._newline = False
            return self._enter(self._e_string, stop + 1)
        return self._enter(self._initial, stop)

    def _line_comment(self, buf: bytes, pos: int) -> int:
        newline = _NEWLINE.search(buf, pos)
        return len(buf) if newline is None else self._enter(self._initial, newline.start())

    def _backslash_command(self, buf: bytes, pos: int) -> int:
        """psql reads the rest of the line as the command's arguments."""
        newline = buf.find(b"\n", pos)
        return len(buf) if newline < 0 else self._enter(self._initial, newline)

    def _block_comment(self, buf: bytes, pos: int) -> int:
        mark = _COMMENT_MARK.search(buf, pos)
        if mark is None:  # a last / or * may begin a mark with the next chunk
            return self._hold_at(buf, len(buf) - 1) if buf[-1] in b"/*" else len(buf)
        if mark.group() == b"/*":
            self._depth += 1
        elif self._depth:
            self._depth -= 1
        else:
            self._step = self._initial
        return mark.end()

    def _dollar_quoted(self, buf: bytes, pos: int) -> int:
        end = buf.find(self._tag, pos)
        if end < 0:  # the tag may begin in the last bytes
            return self._hold_at(buf, max(pos, len(buf) - len(self._tag) + 1))
        self._step = self._initial
        return end + len(self._tag)
