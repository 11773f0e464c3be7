"""pg_dump's command line, read the way pg_dump itself reads it (glibc ``getopt_long``).

A refusal list that compares strings is bypassable: pg_dump accepts any unambiguous prefix
of a long option (``--form=custom`` is ``--format=custom``), bundles short options
(``-vFc`` is ``-v -F c``), and takes an option's value either attached (``--jobs=4``,
``-j4``) or as the next word (``--jobs 4``). ``parse`` resolves every word of
``BACKUP_PG_DUMP_OPTIONS`` to the option pg_dump would see, so the refusals in ``settings``
apply to what pg_dump does, not to how the user spelled it.

The option table is pg_dump 18's (``LONG_OPTIONS``, ``SHORT_OPTIONS``), read from the
program itself, ``--restrict-key`` included (new in 18 and in the August 2025 minor releases
of older majors); ``tests/integration/test_dump_options.py`` checks it against the pg_dump the tests run.
Connection options (``-h``, ``-p``, ``-U``) are read like any other, so ``settings`` can refuse
them by meaning too.
Anything pg_dump would reject (an unknown or ambiguous option, a missing or unexpected
value) and any word that is not an option (pg_dump would take it as the database name) is an
error here too, so nothing reaches pg_dump that this module did not understand.
"""

from __future__ import annotations

from dataclasses import dataclass

# Short options; a trailing ':' means the option takes a value. '-X' is in pg_dump's
# optstring but only prints a hint and fails.
SHORT_OPTIONS = "abBcCd:e:E:f:F:h:j:n:N:Op:RsS:t:T:U:vVwWxXZ:?"

# Long options: name -> takes a value. Aliases share one meaning (``ALIASES``).
LONG_OPTIONS = {
    "attribute-inserts": False,
    "binary-upgrade": False,
    "blobs": False,
    "clean": False,
    "column-inserts": False,
    "compress": True,
    "create": False,
    "data-only": False,
    "dbname": True,
    "disable-dollar-quoting": False,
    "disable-triggers": False,
    "enable-row-security": False,
    "encoding": True,
    "exclude-extension": True,
    "exclude-schema": True,
    "exclude-table": True,
    "exclude-table-and-children": True,
    "exclude-table-data": True,
    "exclude-table-data-and-children": True,
    "extension": True,
    "extra-float-digits": True,
    "file": True,
    "filter": True,
    "format": True,
    "help": False,
    "host": True,
    "if-exists": False,
    "include-foreign-data": True,
    "inserts": False,
    "jobs": True,
    "large-objects": False,
    "load-via-partition-root": False,
    "lock-wait-timeout": True,
    "no-acl": False,
    "no-blobs": False,
    "no-comments": False,
    "no-data": False,
    "no-large-objects": False,
    "no-owner": False,
    "no-password": False,
    "no-policies": False,
    "no-privileges": False,
    "no-publications": False,
    "no-reconnect": False,
    "no-schema": False,
    "no-security-labels": False,
    "no-statistics": False,
    "no-subscriptions": False,
    "no-sync": False,
    "no-table-access-method": False,
    "no-tablespaces": False,
    "no-toast-compression": False,
    "no-unlogged-table-data": False,
    "on-conflict-do-nothing": False,
    "password": False,
    "port": True,
    "quote-all-identifiers": False,
    "restrict-key": True,
    "role": True,
    "rows-per-insert": True,
    "schema": True,
    "schema-only": False,
    "section": True,
    "sequence-data": False,
    "serializable-deferrable": False,
    "snapshot": True,
    "statistics": False,
    "statistics-only": False,
    "strict-names": False,
    "superuser": True,
    "sync-method": True,
    "table": True,
    "table-and-children": True,
    "use-set-session-authorization": False,
    "username": True,
    "verbose": False,
    "version": False,
}
ALIASES = {
    "blobs": "large-objects",
    "no-blobs": "no-large-objects",
    "attribute-inserts": "column-inserts",
    "no-acl": "no-privileges",
}
# The short option each long one is spelled as too, for one name per meaning.
SHORT_FOR = {
    "data-only": "a",
    "large-objects": "b",
    "no-large-objects": "B",
    "clean": "c",
    "create": "C",
    "dbname": "d",
    "extension": "e",
    "encoding": "E",
    "file": "f",
    "format": "F",
    "host": "h",
    "jobs": "j",
    "schema": "n",
    "exclude-schema": "N",
    "no-owner": "O",
    "port": "p",
    "schema-only": "s",
    "superuser": "S",
    "table": "t",
    "exclude-table": "T",
    "username": "U",
    "verbose": "v",
    "version": "V",
    "no-password": "w",
    "password": "W",
    "no-privileges": "x",
    "compress": "Z",
    "help": "?",
}
LONG_FOR = {short: long for long, short in SHORT_FOR.items()}


class OptionError(ValueError):
    """pg_dump would reject these words; the message says which and why."""


@dataclass(frozen=True)
class Option:
    """One option as pg_dump sees it."""

    meaning: str  # one name per meaning: the long name (aliases folded), else the letter
    shown: str  # as the user wrote it, spelled out: ``--format`` for ``--form``, ``-F`` for ``-vFc``
    written: str  # the word(s) it came from
    value: str | None = None


def _resolve_long(word: str) -> tuple[str, bool]:
    """The long option ``word`` (without ``--`` and ``=value``) stands for, and whether it
    takes a value; exact names first, then unambiguous prefixes, as getopt_long does."""
    if word in LONG_OPTIONS:
        return word, LONG_OPTIONS[word]
    matches = [name for name in LONG_OPTIONS if name.startswith(word)]
    meanings = {ALIASES.get(name, name) for name in matches}
    if not matches:
        raise OptionError(f"--{word} is not a pg_dump option")
    if len(meanings) > 1:
        raise OptionError(f"--{word} is ambiguous (it could be {', '.join('--' + m for m in matches)})")
    return matches[0], LONG_OPTIONS[matches[0]]


def parse(words: list[str]) -> list[Option]:
    """Every option in ``words``, as pg_dump would read them; ``OptionError`` otherwise."""
    options: list[Option] = []
    index = 0
    while index < len(words):
        word = words[index]
        index += 1
        if word == "--":
            raise OptionError("'--' would end pg_dump's options; what follows would be the database name")
        if not word.startswith("-") or word == "-":
            raise OptionError(f"{word!r} is not an option (pg_dump would take it as the database name)")
        if word.startswith("--"):
            body, has_value, value = word[2:].partition("=")
            name, takes_value = _resolve_long(body)
            if has_value and not takes_value:
                raise OptionError(f"--{name} takes no value (written {word!r})")
            if takes_value and not has_value:
                if index == len(words):
                    raise OptionError(f"--{name} needs a value")
                value, index = words[index], index + 1
                word = f"{word} {value}"
            options.append(Option(ALIASES.get(name, name), f"--{name}", word, value if takes_value else None))
            continue
        position = 1
        while position < len(word):
            letter = word[position]
            spec = SHORT_OPTIONS.find(letter)
            if spec < 0 or letter in ":X":
                raise OptionError(f"-{letter} is not a pg_dump option pgbackup can pass (in {word!r})")
            position += 1
            if spec + 1 < len(SHORT_OPTIONS) and SHORT_OPTIONS[spec + 1] == ":":
                value = word[position:]
                written = word
                if not value:
                    if index == len(words):
                        raise OptionError(f"-{letter} needs a value")
                    value, index = words[index], index + 1
                    written = f"{word} {value}"
                options.append(Option(LONG_FOR.get(letter, letter), f"-{letter}", written, value))
                break
            options.append(Option(LONG_FOR.get(letter, letter), f"-{letter}", word))
    return options
