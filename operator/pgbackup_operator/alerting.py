"""The operator's watch on silence, and its metrics endpoint.

- ``pgbackup_index`` is a kopf index: every PgBackup event turns the object into a
  ``freshness.Observed`` (schedule parsed, maximum age computed, times read) and hands it to
  the metrics ``Store`` as well. Deleting a PgBackup drops it from the index.
- ``start`` (operator startup) serves the metrics and starts one asyncio task,
  ``check_freshness``, that every ``PGBACKUP_FRESHNESS_INTERVAL`` walks the index: no API
  call and no parsing per PgBackup, only a comparison of two times, so hundreds of
  PgBackups cost microseconds. Only when a PgBackup turns stale or fresh again does it read
  the object, set the ``Fresh`` condition (``False``/``NoRecentBackup`` with the age, or
  ``True``/``RecentBackup``) and, on turning stale, post one Warning Event. A success
  recorded by ``handlers`` sets ``Fresh=True`` at once.

This is deliberately not a kopf timer or daemon per PgBackup: those would add a finalizer
to every object and a task per object. ``stop`` (operator cleanup) cancels the task.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import kopf

from . import api, freshness, kube, metrics, status
from .api import Body

STALE_REASON, FRESH_REASON = "NoRecentBackup", "RecentBackup"


@kopf.index(api.GROUP, api.VERSION, api.PLURAL)
def pgbackup_index(body: kopf.Body, **_: Any) -> dict[tuple[str, str], freshness.Observed]:
    observed = freshness.observe(dict(body))
    metrics.STORE.put(observed)
    return {observed.key: observed}


def _observed(index: kopf.Index[tuple[str, str], freshness.Observed]) -> list[freshness.Observed]:
    return [value for store in index.values() for value in store]


def fresh_condition(observed: freshness.Observed, now: float) -> tuple[bool, str, str]:
    """The ``Fresh`` condition ``observed`` should have: status, reason, message."""
    if observed.stale(now):
        return False, STALE_REASON, freshness.stale_message(observed, now)
    age = observed.age(now) or 0.0
    what = "last success" if observed.last_success is not None else "created"
    return True, FRESH_REASON, (f"{what} {freshness.human(age)} ago; the limit is "
                                f"{freshness.human(observed.max_age or 0)} ({observed.max_age_source})")


def _write_fresh(observed: freshness.Observed, fresh: bool, reason: str, message: str) -> None:
    """Set the condition on the object as it is now (another handler may have written since)."""
    body = kube.get_pgbackup(observed.namespace, observed.name)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return
    conditions = status.set_condition((body.get("status") or {}).get("conditions") or [],
                                      freshness.FRESH, fresh, reason, message)
    kube.patch_pgbackup_status(observed.namespace, observed.name, {"conditions": conditions})
    if not fresh:
        kube.post_event(body, "Warning", reason, message)


async def check_once(index: kopf.Index[tuple[str, str], freshness.Observed], written: dict[tuple[str, str], bool],
                     logger: Any) -> None:
    """One pass over every PgBackup; ``written`` remembers flips the index has not seen yet."""
    now = time.time()
    items = _observed(index)
    metrics.STORE.keep_only(item.key for item in items)
    for item in items:
        if item.max_age is None:
            continue  # a schedule that never runs: the Ready condition already says so
        fresh, reason, message = fresh_condition(item, now)
        shown = None if item.fresh is None else item.fresh == "True"
        if shown == fresh:
            written.pop(item.key, None)
            continue
        if written.get(item.key) == fresh:
            continue  # written; the watch has not brought it back yet
        try:
            await asyncio.to_thread(_write_fresh, item, fresh, reason, message)
        except Exception as exc:  # the API may be briefly away: the next pass tries again
            logger.warning(f"cannot set the Fresh condition of {item.namespace}/{item.name}: {exc}")
            continue
        written[item.key] = fresh
        if not fresh:
            logger.warning(f"PgBackup {item.namespace}/{item.name} is stale: {message}")
    metrics.STORE.checked()


async def check_freshness(index: kopf.Index[tuple[str, str], freshness.Observed], interval: float, logger: Any) -> None:
    written: dict[tuple[str, str], bool] = {}
    while True:
        await asyncio.sleep(interval)
        try:
            await check_once(index, written, logger)
        except Exception as exc:  # never let one bad pass end the watch
            logger.error(f"freshness check failed: {exc}")


@kopf.on.startup()
async def start(memo: kopf.Memo, logger: Any, **kwargs: Any) -> None:
    index: kopf.Index[tuple[str, str], freshness.Observed] = kwargs["pgbackup_index"]  # kopf passes indices by name
    port = int(memo.get("metrics_port", 0))
    if port:
        metrics.serve(port)
        logger.info(f"metrics on :{port}/metrics")
    interval = float(memo.get("freshness_interval", 60))
    memo["freshness_task"] = asyncio.create_task(check_freshness(index, interval, logger))


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    task = memo.get("freshness_task")
    if task is not None:
        task.cancel()


def fresh_after_success(conditions: list[Body], job_name: str) -> list[Body]:
    """``Fresh=True`` as a successful run is recorded, so a stale PgBackup clears at once."""
    return status.set_condition(conditions, freshness.FRESH, True, FRESH_REASON, f"Job {job_name} succeeded")
