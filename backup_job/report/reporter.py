"""The one object ``cli`` tells about a command's start and end; it decides what goes where.

- ``run``: a healthcheck ``start`` ping when it starts; at the end a ``success`` or ``fail``
  ping with the summary, the metrics (textfile, Pushgateway), and a notification when the
  run failed, when a backup set off the shrink alarm, or for every run with
  ``BACKUP_NOTIFY_ON=always``;
- ``verify``: a notification when a drill failed (or always);
- ``prune``: a notification when deletions failed (or always).

Each step is bounded by ``BACKUP_NOTIFY_TIMEOUT`` as a whole (``bounded.within``), and no
outcome of a send reaches the caller: the command's exit code is its own.

A sharded run (``BACKUP_SHARD=i/N``, N > 1) is N pods, each reporting its own part, so one
shard's success never hides another's failure: every notification names the shard and the
run's timestamp, and each shard's metrics are their own Pushgateway group. Every shard sends
the ``start`` ping and a failing shard the ``fail`` ping, but the ``success`` ping means the
whole run, so ``cli`` asks for it only from the shard that saw every shard's backups stored
(``success_ping``; ``commands.shards``).
"""

from __future__ import annotations

import time

from ..core import datavalues, logs
from ..core.settings import ReportSettings
from ..core.termination import TerminationMessage
from . import healthcheck, metrics, notify
from .bounded import within
from .metrics import DatabaseFigure

TITLES = {"run": "backup run", "verify": "verify drill", "prune": "retention"}


class Reporter:
    def __init__(self, settings: ReportSettings, destination: str, command: str, shard: str = "") -> None:
        self.settings = settings
        self.destination = destination
        self.command = command
        self.shard = shard  # "i/N" of a sharded run, for the start ping

    def started(self) -> None:
        url = self.settings.healthcheck_url
        if self.command == "run" and url is not None:
            within(
                self.settings.timeout,
                "healthcheck start ping",
                lambda: healthcheck.ping(
                    url,
                    "start",
                    f"pgbackup run{' shard ' + self.shard if self.shard else ''} started -> {self.destination}",
                    self.settings.timeout,
                ),
            )

    def finished(
        self,
        outcome: TerminationMessage,
        databases: list[DatabaseFigure] | None = None,
        warnings: list[str] | None = None,
        success_ping: bool = True,
        budget: float | None = None,
    ) -> None:
        """Send the outcome everywhere configured; ``budget`` (a stopped run's: what is left of its
        bound) caps the seconds all channels together may take."""
        warnings = warnings or []
        by = time.monotonic() + budget if budget is not None else None

        def left() -> float:
            return self.settings.timeout if by is None else max(0.0, min(self.settings.timeout, by - time.monotonic()))

        summary = datavalues.scrub(logs.redact(outcome.summary))  # pings and notifications: no row values
        if self.command == "run":
            url = self.settings.healthcheck_url
            if url is not None and (success_ping or not outcome.ok):
                event = "success" if outcome.ok else "fail"
                within(left(), f"healthcheck {event} ping", lambda: healthcheck.ping(url, event, summary, left()))
            textfile = self.settings.metrics_textfile
            if textfile is not None:
                within(
                    left(),
                    "metrics textfile",
                    lambda: metrics.write_textfile(textfile, self.destination, outcome, databases or []),
                )
            gateway = self.settings.pushgateway_url
            if gateway is not None:
                within(
                    left(),
                    "metrics push",
                    lambda: metrics.push(
                        gateway, self.destination, outcome, databases or [], left(), shard=outcome.shard
                    ),
                )
        if not self.settings.notify_urls:
            return
        if outcome.ok is False or warnings or self.settings.notify_always:
            message = self.notification(outcome, summary, warnings)
            within(left(), "notification", lambda: notify.send(self.settings.notify_urls, message))

    def notification(self, outcome: TerminationMessage, summary: str, warnings: list[str]) -> notify.Notification:
        what = TITLES.get(outcome.command or self.command, self.command)
        when = f" {outcome.timestamp}" if outcome.timestamp else ""
        when += f" shard {outcome.shard}" if outcome.shard else ""
        if outcome.ok is False:
            kind, verdict = "failure", "FAILED"
        elif warnings:
            kind, verdict = "warning", "succeeded with warnings"
        else:
            kind, verdict = "success", "succeeded"
        lines = [summary]
        if outcome.failed:
            lines.append("Failed: " + ", ".join(outcome.failed) + (" and more" if outcome.failed_truncated else ""))
        lines += [logs.redact(w) for w in warnings]
        if outcome.shard:
            lines.append(f"Shard: {outcome.shard} (this pod's databases only; every shard of the run reports its own)")
        lines.append(f"Destination: {self.destination}")
        return notify.Notification(title=f"pgbackup {what}{when} {verdict}", body="\n".join(lines), kind=kind)
