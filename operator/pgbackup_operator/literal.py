"""Keeping a custom resource's strings out of the kubelet's ``$(VAR)`` expansion.

The kubelet expands ``$(NAME)`` in a container's env ``value``s, ``command`` and ``args`` with
the value of any variable defined before it, and turns ``$$`` into ``$``. A PgRestore whose
``target.database`` is ``$(AWS_SECRET_ACCESS_KEY)`` would otherwise put the bucket's secret
key into the restore's command line and into a database name, from where error messages and
the PgRestore's status show it to whoever wrote the resource; any other CR string (a host, a
prefix, a ``spec.pod.env`` value) would do the same.

So every such string leaves the operator literal: each ``$`` doubled (``literal``), once,
where the container is assembled (``pod._pod_spec``), over every env ``value`` and every word
of the command. The one expansion the operator means, ``BACKUP_SHARD=$(PGBACKUP_SHARD_INDEX)/N``
(the shard's index from the downward API), is built as an ``Expansion`` and passes as it is;
no CR string ever becomes one.
"""

from __future__ import annotations

from .api import Body


class Expansion(str):
    """A value the operator means the kubelet to expand: its own ``$(VAR)`` reference, never CR text."""

    __slots__ = ()


def literal(text: str) -> str:
    """``text`` as the kubelet must pass it on: every ``$`` doubled, unless it is an ``Expansion``."""
    return text if isinstance(text, Expansion) else text.replace("$", "$$")


def literal_env(env: list[Body]) -> list[Body]:
    """The env entries with their ``value``s literal (``valueFrom`` entries are not expanded)."""
    return [
        {**entry, "value": literal(entry["value"])} if isinstance(entry.get("value"), str) else entry for entry in env
    ]


def literal_words(words: list[str]) -> list[str]:
    """A command or its args, each word literal."""
    return [literal(word) for word in words]
