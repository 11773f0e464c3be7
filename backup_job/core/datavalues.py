"""Data values out of summaries: what PostgreSQL quotes from a row never leaves in one.

A failed load's error can quote the data it stopped at: ``invalid input syntax for type
integer: "123-45-6789"``, ``value "99999999999" is out of range for type integer``,
``invalid byte sequence for encoding "UTF8": 0xe9 0x20``; with more verbosity (psycopg2's
``str(error)``, a psql without ``VERBOSITY=terse``) also ``DETAIL:  Key (ssn)=(123-45-6789)
already exists``, ``Failing row contains (...)``, ``CONTEXT:  COPY people, line 1, column
ssn: "..."`` and the statement itself (``LINE 1: ...``, ``QUERY:``).

The job's log keeps every word: it is read by whoever runs the job, who holds the
credentials that read the data anyway. A summary goes further: into a PgBackup's or
PgRestore's status and Events (readable by whoever may read the custom resource, who may
not read the database), notifications and healthcheck pings. So ``scrub`` runs where a
summary leaves the job (``termination.TerminationMessage.encode``, ``report.reporter``) and
again where the operator reads one (``TerminationMessage.decode``, for jobs of older
versions). It cuts the text at the first place PostgreSQL puts a value, and drops the rest,
because a value may contain anything, quotes and what looks like the next database's cause
included:

- a colon followed by a double-quoted value or a ``0x`` byte (PostgreSQL's form for a value;
  pgbackup's own messages quote names with single quotes), the message's words before it
  kept;
- ``value "..."`` and ``byte sequence 0x..`` anywhere;
- the fields that carry rows or statements: ``DETAIL:``, ``CONTEXT:``, ``QUERY:``,
  ``LINE n:``, ``Failing row contains``, ``Key (``.

Identifiers stay (``relation "orders"``, ``role "app" does not exist``): they say what
failed. The failed databases' names travel in their own field, so a cut summary still names
every one of them. What a database's own code raises (``RAISE EXCEPTION 'ssn %', ...``) is
that code's words, and cannot be told from any other message.
"""

from __future__ import annotations

import re

NOT_SHOWN = "(data value not shown; the job's log has the whole error)"
# Quotation marks PostgreSQL's messages use around values, its translations' included.
_QUOTES = '"\u201c\u201e\u00ab\u00bb\u300c'
_VALUE = re.compile(
    rf":\s*(?=[{_QUOTES}]|0x[0-9A-Fa-f])|\bvalue\s+(?=[{_QUOTES}])|\bbyte sequence\s+(?=0x)|"
    r"\b(?:DETAIL|CONTEXT|QUERY):\s*|\bLINE \d+:\s*|\bFailing row contains\b|\bKey(?= \()"
)


def scrub(text: str) -> str:
    """``text`` cut where its first data value starts, marked ``NOT_SHOWN``; unchanged if it
    holds none. Scrubbing twice changes nothing more."""
    found = _VALUE.search(text)
    if found is None:
        return text
    return f"{text[: found.end()].rstrip()} {NOT_SHOWN}"
