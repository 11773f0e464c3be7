"""Text from outside, shown safely: control and format characters escaped, Python style.

Some names and values pgbackup prints come from people it does not trust: database names
from a bucket's keys, settings pasted from anywhere. A newline in one forges a line of a
listing or a log; a carriage return or an escape sequence (``\\x1b[2J``) rewrites the
terminal; a bidi override (U+202E) shows the text reversed. ``escape`` writes every character
that Python does not count as printable (Unicode categories Cc, Cf, Cs, Co, Cn, Zl and Zp,
and every space but the ASCII one) as its escape, ``\\n``, ``\\x1b`` or ``\\u202e``, and a
backslash as ``\\\\``: the result is one line, shows every character, and stands for exactly
one original. ``control_character`` finds the first such character, for settings that
refuse them.
"""

from __future__ import annotations

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def _escaped(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def escape(text: str) -> str:
    """``text`` with every unprintable character and every backslash escaped."""
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(char if char.isprintable() and char != "\\" else _escaped(char) for char in text)


def control_character(text: str) -> str | None:
    """The first unprintable character of ``text``, escaped (``\\n``); None if there is none."""
    return next((_escaped(char) for char in text if not char.isprintable()), None)
