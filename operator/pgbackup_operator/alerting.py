"""The operator's watch on silence, and its metrics endpoint.

- ``observe`` is a kopf event handler: every PgBackup event turns the object into a
  ``freshness.Observed`` (schedule parsed, maximum age computed, times read), kept in
  ``OBSERVED`` and handed to the metrics ``Store`` as well. Deleting a PgBackup drops it.
- ``start`` (operator startup) serves the metrics and starts one asyncio task,
  ``check_freshness``, that every ``PGBACKUP_FRESHNESS_INTERVAL`` walks ``OBSERVED``: no API
  call and no parsing per PgBackup, only a comparison of two times, so hundreds of
  PgBackups cost microseconds. Only when a PgBackup turns stale or fresh again does it read
  the object, set the ``Fresh`` condition (``False``/``NoRecentBackup`` with the age, or
  ``True``/``RecentBackup``) and, on turning stale, post one Warning Event. A success
  recorded by ``handlers`` sets ``Fresh=True`` at once. The other handlers write the
  conditions list whole from the object they saw, so a Fresh condition can be lost to one
  of them; the next pass puts it back (never a second Event for the same silence).

This is deliberately not a kopf timer or daemon per PgBackup: those would add a finalizer
to every object and a task per object. ``stop`` (operator cleanup) cancels the task.

Nor is it a kopf index: kopf holds every handler of every object until each watched
namespace's first listing has been indexed, and a namespace deleted as its watch starts never
finishes that listing, so the operator would serve nothing until restarted while its liveness
endpoint still answered. An event handler feeding a dict has no such gate.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import kopf
from kubernetes.client import ApiException

from . import api, freshness, kube, metrics, status
from .api import Body

STALE_REASON, FRESH_REASON = "NoRecentBackup", "RecentBackup"


Observations = dict[tuple[str, str], freshness.Observed]  # (namespace, name) -> what was observed

OBSERVED: Observations = {}  # every PgBackup the operator's watches have shown, and not deleted


@kopf.on.event(api.GROUP, api.VERSION, api.PLURAL)
def observe(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
    """Keep ``OBSERVED`` and the metrics up to date with one PgBackup's event.

    A plain function, so kopf runs it in its thread pool, off the event loop: a schedule's
    maximum age is worked out from its run times (an every-minute schedule in a time zone
    takes about half a second the first time in an hour), and a CR author with many such
    schedules must not stall every other handler and the liveness endpoint. Each put or
    pop is one dict operation, and the freshness check copies the values in one call, both
    atomic under the GIL."""
    meta = body.get("metadata", {})
    if event.get("type") == "DELETED":
        OBSERVED.pop((meta.get("namespace", ""), meta.get("name", "")), None)
        metrics.STORE.keep_only(OBSERVED)
        return
    observed = freshness.observe(dict(body))
    metrics.STORE.put(observed)
    OBSERVED[observed.key] = observed


def fresh_condition(observed: freshness.Observed, now: float) -> tuple[bool, str, str]:
    """The ``Fresh`` condition ``observed`` should have: status, reason, message."""
    if observed.stale(now):
        return False, STALE_REASON, freshness.stale_message(observed, now)
    age = observed.age(now) or 0.0
    what = "last success" if observed.last_success is not None else "created"
    return (
        True,
        FRESH_REASON,
        (
            f"{what} {freshness.human(age)} ago; the limit is "
            f"{freshness.human(observed.max_age or 0)} ({observed.max_age_source})"
        ),
    )


def _write_fresh(observed: freshness.Observed, fresh: bool, reason: str, message: str, warn: bool) -> None:
    """Set the condition on the object as it is now; post the Warning Event when ``warn``.

    The conditions list is written whole, so the write is conditional on the version read:
    a handler recording a run meanwhile makes it fail with 409 and it is computed again,
    instead of erasing that handler's condition."""
    for _attempt in range(5):
        body = kube.get_pgbackup(observed.namespace, observed.name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return
        current = (body.get("status") or {}).get("conditions") or []
        shown = next((c.get("status") for c in current if c.get("type") == freshness.FRESH), None)
        if shown != ("True" if fresh else "False"):
            conditions = status.set_condition(current, freshness.FRESH, fresh, reason, message)
            try:
                kube.patch_pgbackup_status(
                    observed.namespace,
                    observed.name,
                    {"conditions": conditions},
                    resource_version=body["metadata"].get("resourceVersion"),
                )
            except ApiException as exc:
                if exc.status == 409:
                    continue  # changed since it was read: read it again
                raise
        if warn:
            kube.post_event(body, "Warning", reason, message)
        return
    raise RuntimeError("the PgBackup kept changing while its Fresh condition was written")


@dataclass
class Memory:
    """What one freshness watch remembers between passes."""

    written: dict[tuple[str, str], tuple[bool, float]] = field(default_factory=dict)  # value, when
    warned: set[tuple[str, str]] = field(default_factory=set)  # stale PgBackups whose Event is posted


async def check_once(observations: Observations, memory: Memory, logger: Any, patience: float = 30.0) -> None:
    """One pass over every PgBackup. A write the watch has not brought back within
    ``patience`` seconds (another handler's status patch can replace the conditions it was
    computed without) is written again; the Warning Event is posted once per silence."""
    now, clock = time.time(), time.perf_counter()
    items = list(observations.values())
    metrics.STORE.keep_only(item.key for item in items)
    present = {item.key for item in items}
    memory.warned &= present
    for key in [k for k in memory.written if k not in present]:
        del memory.written[key]
    for item in items:
        if item.max_age is None:
            continue  # a schedule that never runs: the Ready condition already says so
        fresh, reason, message = fresh_condition(item, now)
        if fresh:
            memory.warned.discard(item.key)
        shown = None if item.fresh is None else item.fresh == "True"
        if shown == fresh:
            memory.written.pop(item.key, None)
            continue
        earlier = memory.written.get(item.key)
        if earlier is not None and earlier[0] == fresh and now - earlier[1] < patience:
            continue  # written; the watch has not brought it back yet
        warn = not fresh and item.key not in memory.warned
        try:
            await asyncio.to_thread(_write_fresh, item, fresh, reason, message, warn)
        except Exception as exc:  # the API may be briefly away: the next pass tries again
            logger.warning(f"cannot set the Fresh condition of {item.namespace}/{item.name}: {exc}")
            continue
        memory.written[item.key] = (fresh, now)
        if warn:
            memory.warned.add(item.key)
            logger.warning(f"PgBackup {item.namespace}/{item.name} is stale: {message}")
    metrics.STORE.checked(time.perf_counter() - clock)


async def check_freshness(observations: Observations, interval: float, logger: Any) -> None:
    memory = Memory()
    while True:
        await asyncio.sleep(interval)
        try:
            await check_once(observations, memory, logger, patience=max(30.0, 3 * interval))
        except Exception as exc:  # never let one bad pass end the watch
            logger.error(f"freshness check failed: {exc}")


@kopf.on.startup()
async def start(memo: kopf.Memo, logger: Any, **_: Any) -> None:
    port = int(memo.get("metrics_port", 0))
    if port:
        metrics.serve(port)
        logger.info(f"metrics on :{port}/metrics")
    interval = float(memo.get("freshness_interval", 60))
    memo["freshness_task"] = asyncio.create_task(check_freshness(OBSERVED, interval, logger))


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    task = memo.get("freshness_task")
    if task is not None:
        task.cancel()


def fresh_after_success(conditions: list[Body], job_name: str) -> list[Body]:
    """``Fresh=True`` as a successful run is recorded, so a stale PgBackup clears at once."""
    return status.set_condition(conditions, freshness.FRESH, True, FRESH_REASON, f"Job {job_name} succeeded")
