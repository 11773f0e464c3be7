"""The freshness rule and the metrics built from it, as pure functions (the operator's use of
them on a real control plane is tests/k8s/test_operator_alerting.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pgbackup_operator import freshness, metrics
from pgbackup_operator.spec import PgBackupSpec, parse_pgbackup

MONDAY = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def body(**spec: object) -> dict[str, object]:
    return {
        "metadata": {"namespace": "db", "name": "shop", "creationTimestamp": "2026-11-01T00:00:00Z"},
        "spec": {
            "schedule": "30 2 * * *",
            "postgres": {"host": "pg", "passwordSecretRef": {"name": "pg"}},
            "destination": {"s3": {"bucket": "backups"}},
            **spec,
        },
    }


def spec_of(**spec: object) -> PgBackupSpec:
    return parse_pgbackup(body(**spec))


def test_the_default_max_age_is_twice_the_longest_gap_plus_the_deadline() -> None:
    assert freshness.schedule_gap("30 2 * * *", "Etc/UTC", MONDAY) == 86400
    assert freshness.schedule_gap("0 * * * 1-5", "Etc/UTC", MONDAY) == 49 * 3600  # Friday 23:00 -> Monday 00:00
    assert freshness.schedule_gap("0 2 1 * *", "Etc/UTC", MONDAY) == 31 * 86400  # Dec 1 -> Jan 1
    assert freshness.schedule_gap("0 0 31 2 *", "Etc/UTC", MONDAY) is None  # never
    assert freshness.schedule_gap("not cron", "Etc/UTC", MONDAY) is None
    assert freshness.max_age(spec_of(), MONDAY)[0] == 2 * 86400 + 3600
    deadline = spec_of(job={"activeDeadlineSeconds": 600})
    assert freshness.max_age(deadline, MONDAY)[0] == 2 * 86400 + 600
    given = spec_of(alerting={"maxAge": "26h"})
    assert freshness.max_age(given, MONDAY) == (26 * 3600, "spec.alerting.maxAge 26h")


def test_the_gap_is_measured_in_the_schedule_s_time_zone() -> None:
    # Europe/Berlin leaves summer time on 2026-10-25: from 01:30 that day to 01:30 the next is 25 hours.
    gap = freshness.schedule_gap("30 1 * * *", "Europe/Berlin", datetime(2026, 10, 20, tzinfo=UTC))
    assert gap == 25 * 3600


def test_stale_is_measured_from_the_last_success_or_creation() -> None:
    created = freshness.observe(body(alerting={"maxAge": "1h"}), MONDAY)
    assert created.age(created.created + 600) == 600 and not created.stale(created.created + 600)  # type: ignore[operator]
    assert created.stale(created.created + 3601)  # type: ignore[operator]
    assert "since it was created" in freshness.stale_message(created, created.created + 7200)  # type: ignore[operator]
    succeeded = freshness.observe(
        {
            **body(alerting={"maxAge": "1h"}),
            "status": {"lastSuccessfulTime": "2026-11-30T11:30:00Z", "lastFailedTime": "2026-11-30T11:45:00Z"},
        },
        MONDAY,
    )
    assert not succeeded.stale(MONDAY.timestamp()) and succeeded.last_run_ok() is False
    assert freshness.stale_message(succeeded, MONDAY.timestamp() + 5400).startswith("no successful backup for 2h0m")


def test_metrics_are_built_from_status_and_follow_the_store() -> None:
    store = metrics.Store()
    status = {
        "lastSuccessfulTime": "2026-11-30T02:31:00Z",
        "lastFailedTime": "2026-11-29T02:31:00Z",
        "nextScheduleTime": "2026-12-01T02:30:00Z",
        "lastRun": {
            "result": "Succeeded",
            "completionTime": "2026-11-30T02:31:00Z",
            "durationSeconds": 61.0,
            "bytes": 1234,
            "databases": {"ok": 3, "failed": 0},
        },
        "lastVerify": {"result": "Failed", "time": "2026-11-29T05:00:00Z"},
    }
    store.put(freshness.observe({**body(), "status": status}, MONDAY))
    store.put(freshness.observe({**body(suspend=True), "metadata": {"namespace": "db", "name": "other"}}, MONDAY))
    text = generate_latest(metrics.registry(store)).decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    shop = (("name", "shop"), ("namespace", "db"))
    assert samples[("pgbackup_last_run_success", shop)] == 1.0
    assert samples[("pgbackup_last_run_bytes", shop)] == 1234.0
    assert samples[("pgbackup_last_run_databases", (*shop[:1], ("namespace", "db"), ("result", "failed")))] == 0.0
    assert samples[("pgbackup_last_verify_success", shop)] == 0.0
    assert (
        samples[("pgbackup_last_success_timestamp_seconds", shop)]
        == datetime(2026, 11, 30, 2, 31, tzinfo=UTC).timestamp()
    )
    assert samples[("pgbackup_suspended", (("name", "other"), ("namespace", "db")))] == 1.0
    assert ("pgbackup_last_run_success", (("name", "other"), ("namespace", "db"))) not in samples  # nothing ran
    assert samples[("pgbackup_operator_pgbackups", ())] == 2.0
    store.keep_only([("db", "shop")])
    text = generate_latest(metrics.registry(store)).decode()
    assert 'name="other"' not in text and 'name="shop"' in text


def test_a_lost_fresh_condition_is_written_again_but_warned_about_once(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import asyncio
    import logging

    from pgbackup_operator import alerting

    writes: list[tuple[str, bool, bool]] = []
    monkeypatch.setattr(
        alerting, "_write_fresh", lambda item, fresh, reason, message, warn: writes.append((item.name, fresh, warn))
    )
    stale = freshness.observe(body(alerting={"maxAge": "1h"}), MONDAY)  # created a month ago, never succeeded
    index = {stale.key: stale}
    memory = alerting.Memory()
    log = logging.getLogger("test")

    asyncio.run(alerting.check_once(index, memory, log, patience=0.0))
    assert writes == [("shop", False, True)]
    asyncio.run(alerting.check_once(index, memory, log, patience=3600.0))
    assert len(writes) == 1  # written a moment ago: waiting for the watch to show it
    asyncio.run(alerting.check_once(index, memory, log, patience=0.0))
    assert writes[-1] == ("shop", False, False)  # still not shown: written again, no second Event
    shown = freshness.observe(
        {**body(alerting={"maxAge": "1h"}), "status": {"conditions": [{"type": "Fresh", "status": "False"}]}}, MONDAY
    )
    asyncio.run(alerting.check_once({shown.key: shown}, memory, log, patience=0.0))
    assert len(writes) == 2 and stale.key not in memory.written


def test_the_fresh_write_is_conditional_and_keeps_a_condition_written_meanwhile(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from kubernetes.client import ApiException

    from pgbackup_operator import alerting, kube

    versions = iter(
        [
            {"metadata": {"name": "shop", "namespace": "db", "resourceVersion": "1"}, "status": {"conditions": []}},
            {
                "metadata": {"name": "shop", "namespace": "db", "resourceVersion": "2"},
                "status": {"conditions": [{"type": "LastVerifySucceeded", "status": "True"}]},
            },
        ]
    )
    patches: list[tuple[str | None, list[str]]] = []

    def patch(namespace: str, name: str, status: dict, resource_version: str | None = None) -> None:  # type: ignore[type-arg]
        patches.append((resource_version, [c["type"] for c in status["conditions"]]))
        if resource_version == "1":
            raise ApiException(status=409, reason="Conflict")  # a drill was recorded meanwhile

    monkeypatch.setattr(kube, "get_pgbackup", lambda namespace, name: next(versions))
    monkeypatch.setattr(kube, "patch_pgbackup_status", patch)
    monkeypatch.setattr(kube, "post_event", lambda *args: None)
    stale = freshness.observe(body(alerting={"maxAge": "1h"}), MONDAY)
    alerting._write_fresh(stale, False, "NoRecentBackup", "old", warn=True)
    assert patches == [("1", ["Fresh"]), ("2", ["Fresh", "LastVerifySucceeded"])]


def test_every_event_of_a_pgbackup_is_observed_and_a_deletion_forgets_it(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from pgbackup_operator import alerting

    monkeypatch.setattr(alerting, "OBSERVED", {})
    store = metrics.Store()
    monkeypatch.setattr(metrics, "STORE", store)
    shop = body(alerting={"maxAge": "1h"})
    for type_ in (None, "ADDED", "MODIFIED"):  # the first listing, then the watch
        alerting.observe(event={"type": type_, "object": shop}, body=shop)  # type: ignore[arg-type]
    assert list(alerting.OBSERVED) == [("db", "shop")] and alerting.OBSERVED[("db", "shop")].max_age == 3600
    assert [item.key for item in store.snapshot()] == [("db", "shop")]
    alerting.observe(event={"type": "DELETED", "object": shop}, body=shop)  # type: ignore[arg-type]
    assert alerting.OBSERVED == {} and store.snapshot() == []


def test_the_operator_holds_no_kopf_index() -> None:
    """kopf runs no handler of any object until every watched namespace's first listing is
    indexed, and a namespace deleted as its watch starts never finishes it: with one index
    the operator could stall for good on namespace churn (tests/k8s/test_operator_churn.py)."""
    import kopf

    import pgbackup_operator.handlers  # noqa: F401  (registers every handler)
    from pgbackup_operator import alerting

    registry = kopf.get_default_registry()
    assert registry._indexing.get_all_handlers() == []
    assert any(handler.fn is alerting.observe for handler in registry._watching.get_all_handlers())


def test_observing_runs_off_the_event_loop_where_a_costly_schedule_stalls_nothing() -> None:
    """kopf runs a plain function in its thread pool and awaits a coroutine on its loop. An
    every-minute schedule in a time zone costs hundreds of milliseconds to observe the first
    time in an hour (``*/1 * * * *`` in Pacific/Chatham: 505 ms on the 2-core development
    machine): on the loop, a CR author's PgBackups with such schedules would stall every
    handler and the liveness probe."""
    import inspect

    from pgbackup_operator import alerting

    assert not inspect.iscoroutinefunction(alerting.observe)
