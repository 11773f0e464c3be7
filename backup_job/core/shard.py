"""Sharding: one server's databases spread over N pods (``BACKUP_SHARD=i/N``), each its own run.

Every shard discovers every database and applies the same include and exclude lists, then
keeps the databases whose ``shard_hash`` modulo N is its own index. The hash depends on the
name alone (not on the order or the number of databases, not on Python's per-process string
hashing), so every shard computes every other shard's set, the same set on every run, and a
database created or dropped moves no other database between shards.

What a shard does beyond its own databases is decided by ``Shard`` too: the globals
(``pg_dumpall --globals-only``) belong to shard 0 only, and an explicitly included name that
does not exist is reported by the shard that owns that name, so each failure is reported
exactly once across the run.

``Shard(0, 1)`` is the unsharded run: it owns everything, and nothing about it says "shard".
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from .schema import Invalid

EXAMPLE = "0/3"
_FORM = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")
MAX_COUNT = 1000  # more pods than this for one server is a typo


def shard_hash(name: str) -> int:
    """The stable hash a database is sharded by: the first 8 bytes of the SHA-256 of the name's
    UTF-8 bytes, read as a big-endian unsigned integer (so ``printf %s NAME | sha256sum`` and
    its first 16 hex digits give the same number in any language)."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big")


@dataclass(frozen=True)
class Shard:
    """This pod's part of the run: shard ``index`` of ``count``."""

    index: int = 0
    count: int = 1

    @property
    def sharded(self) -> bool:
        return self.count > 1

    def owns(self, name: str) -> bool:
        """Whether this shard backs up (or reports the absence of) database ``name``."""
        return self.owner(name) == self.index

    def owner(self, name: str) -> int:
        """The index of the shard that owns ``name``."""
        return shard_hash(name) % self.count

    @property
    def stores_globals(self) -> bool:
        return self.index == 0

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(value: str) -> Shard:
    """``i/N`` with N >= 1 and 0 <= i < N; empty is the unsharded ``0/1``."""
    if not value.strip():
        return Shard()
    match = _FORM.fullmatch(value)
    if not match:
        raise Invalid("is not of the form i/N (this pod's index i of N pods, 0 <= i < N)", EXAMPLE)
    index, count = int(match.group(1)), int(match.group(2))
    if not 1 <= count <= MAX_COUNT:
        raise Invalid(f"must have N from 1 to {MAX_COUNT} in i/N (0 <= i < N)", EXAMPLE)
    if index >= count:
        raise Invalid(f"must have i from 0 to {count - 1} in i/N (0 <= i < N)", f"{count - 1}/{count}")
    return Shard(index, count)
