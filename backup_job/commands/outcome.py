"""What one run did: a result per database (and the globals), then the run's summary.

``run`` fills a ``RunResult``; ``cli`` turns it into the exit code, the termination message
(``core.termination``), the metrics' figures and the notifications' warnings. A sharded run's
result is that pod's part only (``shard``), and ``ping_success`` says whether this pod may
send the healthcheck's success ping for the whole run (``shards.announce_whole_run``).

A run stopped by a signal has a result too (``stopped``): what was stored before the stop
and what was not, in one line, whatever stage the stop came at.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core import logs
from ..core.layout import display_name
from ..core.shard import Shard
from ..core.termination import TerminationMessage
from ..pipeline.stream import StreamStats
from ..report.metrics import DatabaseFigure
from .prune import PruneResult


@dataclass
class DatabaseResult:
    """The outcome for one database."""

    database: str
    ok: bool
    key: str = ""
    error: str = ""
    stats: StreamStats | None = None
    shrunk: str = ""  # the shrink alarm's warning for this backup


@dataclass
class RunResult:
    """The outcome of a whole run (of this shard's part of it)."""

    timestamp: str
    results: list[DatabaseResult] = field(default_factory=list)
    seconds: float = 0.0
    retention: PruneResult | None = None
    retention_error: str = ""
    shard: Shard = Shard()
    ping_success: bool = True  # False: a shard that cannot tell that the whole run is stored
    suspect: int | None = None  # backups in the destination dated in the future; None: not listed
    planned: list[str] | None = None  # the databases (and the globals) this run stores; None: not known yet
    finishing: set[str] = field(default_factory=set)  # at a stop: whose manifest was on its way

    @property
    def ok(self) -> bool:
        return not self.failed and not self.retention_error

    @property
    def failed(self) -> list[DatabaseResult]:
        return [r for r in self.results if not r.ok]

    @property
    def succeeded(self) -> list[DatabaseResult]:
        return [r for r in self.results if r.ok]

    @property
    def stored_bytes(self) -> int:
        return sum(r.stats.compressed_bytes for r in self.succeeded if r.stats)

    @property
    def label(self) -> str:
        """``20261130T020000Z``, or ``20261130T020000Z shard 1/3`` for a sharded run's pod."""
        return f"{self.timestamp} shard {self.shard}" if self.shard.sharded else self.timestamp

    def failure_summary(self) -> str:
        """One line naming every failed database and its cause."""
        if not self.failed:
            return f"every backup succeeded, but retention failed: {self.retention_error}"
        causes = "; ".join(f"{display_name(r.database)!r}: {r.error}" for r in self.failed)
        return f"{len(self.failed)} of {len(self.results)} backups failed: {causes}"

    def summary(self) -> str:
        if not self.ok:
            return self.failure_summary()
        return (
            f"{len(self.results)} backups succeeded: {logs.human_bytes(self.stored_bytes)} "
            f"stored in {self.seconds:.1f} s"
        )

    def figures(self) -> list[DatabaseFigure]:
        """Per database, for the run's metrics."""
        return [
            DatabaseFigure(display_name(r.database), r.ok, r.stats.compressed_bytes if r.stats else 0)
            for r in self.results
        ]

    def warnings(self) -> list[str]:
        """What deserves a notification even in a successful run: shrink alarms, suspect backups."""
        suspect = [f"{self.suspect} backups in the destination are dated in the future (SUSPECT): see `pgbackup list`"]
        return [r.shrunk for r in self.results if r.shrunk] + (suspect if self.suspect else [])

    def stopped(self, signal: str) -> TerminationMessage:
        """The outcome of the run stopped by ``signal``: which databases were stored before the
        stop and which not (``finishing``: those whose manifest was on its way, which may have landed)."""
        stored = [r.database for r in self.succeeded]
        planned = self.planned if self.planned is not None else [r.database for r in self.results]
        missing = [name for name in planned if name not in stored]
        if self.planned is None and not self.results:
            summary = f"run {self.label} stopped by {signal} before any backup started: nothing was stored"
        else:

            def named(name: str) -> str:
                return (
                    f"{display_name(name)!r} (its manifest was on its way: `pgbackup list` shows whether it landed)"
                    if name in self.finishing
                    else repr(display_name(name))
                )

            summary = (
                f"run {self.label} stopped by {signal}: {len(missing)} of {len(planned)} not stored"
                f"{' (' + ', '.join(named(n) for n in missing) + ')' if missing else ''}; stored before the "
                f"stop: {', '.join(repr(display_name(n)) for n in stored) if stored else 'none'}"
            )
        return TerminationMessage(
            summary,
            command="run",
            ok=False,
            timestamp=self.timestamp,
            seconds=self.seconds or None,
            stored_bytes=self.stored_bytes,
            databases_ok=len(stored),
            databases_failed=len(missing),
            failed=tuple(display_name(name) for name in missing),
            shard=str(self.shard) if self.shard.sharded else "",
            suspect=self.suspect,
        )

    def termination(self) -> TerminationMessage:
        """The outcome for the operator (``core.termination``)."""
        return TerminationMessage(
            self.summary(),
            command="run",
            ok=self.ok,
            timestamp=self.timestamp,
            seconds=self.seconds,
            stored_bytes=self.stored_bytes,
            databases_ok=len(self.succeeded),
            databases_failed=len(self.failed),
            failed=tuple(display_name(r.database) for r in self.failed),
            shard=str(self.shard) if self.shard.sharded else "",
            suspect=self.suspect,
        )
