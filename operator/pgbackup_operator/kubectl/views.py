"""What ``kubectl pgbackup status`` shows: pure functions from PgBackup objects and the clock
to rows, and rows to a table like ``kubectl get`` prints (upper-case headers, columns three
spaces apart, ages as ``5m``, ``3h``, ``2d``), or to JSON and YAML for scripts.

Every figure is read from the status the operator writes (``status``, ``runs``,
``alerting``): ``lastRun``, ``lastSuccessfulTime``, the ``Fresh`` condition, ``lastVerify``
and ``nextScheduleTime``; nothing is computed here but ages. A PgBackup's names and messages
come from people who may create one, so every cell is escaped (``core.printable``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import yaml

from backup_job.core.printable import escape

Body = dict[str, Any]
COLUMNS = ("NAME", "LAST RUN", "LAST SUCCESS", "FRESH", "LAST DRILL", "NEXT RUN")


def parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def age(seconds: float) -> str:
    """``45s``, ``12m``, ``5h``, ``3d``: the largest unit, as ``kubectl get`` shows an age."""
    whole = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole >= size * (2 if unit != "m" else 1):
            return f"{whole // size}{unit}"
    return f"{whole}s"


def _since(value: Any, now: datetime) -> str | None:
    moment = parse_time(value)
    return None if moment is None else age((now - moment).total_seconds())


def _condition(body: Body, type_: str) -> Body:
    conditions = (body.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == type_), {})


def freshness(body: Body) -> str:
    """``fresh``, ``STALE`` (shouted, like an alert) or ``-`` before the operator looked."""
    value = _condition(body, "Fresh").get("status")
    return {"True": "fresh", "False": "STALE"}.get(str(value), "-")


def record(body: Body, now: datetime) -> Body:
    """One PgBackup's figures for ``-o json|yaml``: times as the status holds them, and ages."""
    status = body.get("status") or {}
    run = status.get("lastRun") or {}
    drill = status.get("lastVerify") or {}
    spec = body.get("spec") or {}
    return {
        "namespace": body["metadata"].get("namespace"),
        "name": body["metadata"]["name"],
        "lastRun": {
            "result": run.get("result"),
            "job": run.get("jobName"),
            "time": run.get("completionTime") or run.get("startTime"),
            "message": run.get("message"),
        }
        if run
        else None,
        "lastSuccessfulTime": status.get("lastSuccessfulTime"),
        "lastSuccessAge": _since(status.get("lastSuccessfulTime"), now),
        "freshness": freshness(body),
        "lastDrill": {"result": drill.get("result"), "time": drill.get("time"), "job": drill.get("job")}
        if drill
        else None,
        "nextScheduleTime": status.get("nextScheduleTime"),
        "suspended": bool(spec.get("suspend")),
    }


def row(body: Body, now: datetime) -> tuple[str, ...]:
    """The table's cells for one PgBackup (``COLUMNS``)."""
    found = record(body, now)
    run, drill = found["lastRun"], found["lastDrill"]
    last_run = f"{run['result']} {_since(run['time'], now) or '-'} ago" if run and run["result"] else "-"
    last_drill = f"{drill['result']} {_since(drill['time'], now) or '-'} ago" if drill and drill["result"] else "-"
    success = f"{found['lastSuccessAge']} ago" if found["lastSuccessAge"] else "never"
    upcoming = parse_time(found["nextScheduleTime"])
    if found["suspended"]:
        next_run = "suspended"
    elif upcoming is None:
        next_run = "-"
    else:
        next_run = f"in {age((upcoming - now).total_seconds())}"
    return tuple(escape(cell) for cell in (found["name"], last_run, success, found["freshness"], last_drill, next_run))


def table(items: list[Body], now: datetime, all_namespaces: bool) -> str:
    """The rows of ``items`` under ``COLUMNS`` (with NAMESPACE first for ``-A``)."""
    header: tuple[str, ...] = (("NAMESPACE",) if all_namespaces else ()) + COLUMNS
    rows = [header]
    for body in sorted(items, key=lambda b: (b["metadata"].get("namespace", ""), b["metadata"]["name"])):
        cells = row(body, now)
        rows.append(((escape(body["metadata"].get("namespace", "")),) if all_namespaces else ()) + cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "".join("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n" for r in rows)


def document(items: list[Body], now: datetime, output: str) -> str:
    """``-o json`` or ``-o yaml``: a list of ``record``s."""
    records = [record(b, now) for b in items]
    if output == "json":
        return json.dumps(records, indent=2) + "\n"
    return str(yaml.safe_dump(records, sort_keys=False))


def utcnow() -> datetime:
    return datetime.now(UTC)
