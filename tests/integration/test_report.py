"""Notifications, healthcheck pings and metrics from the job itself, against a local HTTP
receiver on loopback: the exact requests for a failure and a success, a receiver that is
down or stalls (the run still ends on time with its own exit code), and no secret in any
request or log line.

The tests that run pgbackup or real services; the offline ones are in tests/unit/test_report.py."""

from __future__ import annotations

import json
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from devenv.postgres import Cluster, free_port
from devenv.receiver import Receiver

from ..kit.helpers import Bucket, run_pgbackup

TOKEN = "tok-3f9a7c2e-notify-secret"
PING = "uuid-5d1e-healthcheck-secret"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_a_failed_run_notifies_pings_fail_and_leaks_nothing(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str, tmp_path: Path
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    with Receiver() as receiver:
        env = bucket.job_env(
            pg18,
            bindir18,
            "alerts",
            BACKUP_DATABASES=f"{dbname},missing_{dbname}",
            BACKUP_GLOBALS="false",
            BACKUP_NOTIFY_URLS=f"json://127.0.0.1:{receiver.port}/notify/{TOKEN}",
            BACKUP_HEALTHCHECK_URL=f"{receiver.url}/ping/{PING}",
        )
        result = run_pgbackup(env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert receiver.paths() == [f"POST /ping/{PING}/start", f"POST /ping/{PING}/fail", f"POST /notify/{TOKEN}"]
    _start, fail, notification = receiver.requests
    assert f"missing_{dbname}" in fail.text and "1 of 2 backups failed" in fail.text
    sent = json.loads(notification.body)
    assert sent["type"] == "failure" and "FAILED" in sent["title"] and "backup run" in sent["title"]
    assert f"'missing_{dbname}': no such database" in sent["message"] and f"Failed: missing_{dbname}" in sent["message"]
    secrets = [TOKEN, PING, env["PGPASSWORD"], env["AWS_SECRET_ACCESS_KEY"]]
    for text in [r.text for r in receiver.requests] + [result.stdout, result.stderr]:
        assert not [s for s in secrets if s in text.replace(f"/notify/{TOKEN}", "").replace(f"/ping/{PING}", "")]
    assert TOKEN not in result.stdout + result.stderr and PING not in result.stdout + result.stderr


def test_a_success_with_on_always_notifies_and_the_textfile_keeps_the_last_success(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str, tmp_path: Path
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    pg18.sql("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g", dbname)
    textfile = tmp_path / "pgbackup.prom"
    with Receiver() as receiver:
        env = bucket.job_env(
            pg18,
            bindir18,
            "alerts-ok",
            BACKUP_DATABASES=dbname,
            BACKUP_GLOBALS="false",
            BACKUP_NOTIFY_URLS=f"json://127.0.0.1:{receiver.port}/notify/{TOKEN}",
            BACKUP_NOTIFY_ON="always",
            BACKUP_HEALTHCHECK_URL=f"{receiver.url}/ping/{PING}",
            BACKUP_METRICS_TEXTFILE=str(textfile),
            BACKUP_METRICS_PUSHGATEWAY_URL=f"{receiver.url}/gateway",
        )
        ok = run_pgbackup(env)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert [p.split(" ")[1].split("/")[1] for p in receiver.paths()] == ["ping", "ping", "gateway", "notify"]
        assert receiver.paths()[1] == f"POST /ping/{PING}"  # success: the bare URL
        push = receiver.requests[2]
        assert push.method == "PUT" and push.path.startswith("/gateway/metrics/job/pgbackup/destination@base64/")
        sent = json.loads(receiver.requests[3].body)
        assert sent["type"] == "success" and "1 backups succeeded" in sent["message"]

        destination = (("destination", env["BACKUP_DESTINATION"]),)
        first = samples(textfile.read_text())
        assert first[("pgbackup_last_run_success", destination)] == 1.0
        assert first[("pgbackup_last_run_databases", (*destination, ("result", "ok")))] == 1.0
        assert first[("pgbackup_last_run_bytes", destination)] > 0
        assert first[("pgbackup_database_last_run_success", (("database", dbname), *destination))] == 1.0
        succeeded_at = first[("pgbackup_last_success_timestamp_seconds", destination)]
        assert samples(push.text)[("pgbackup_last_run_success", destination)] == 1.0

        env["BACKUP_DATABASES"] = f"{dbname},missing_{dbname}"
        failed = run_pgbackup(env)
    assert failed.returncode == 1
    second = samples(textfile.read_text())
    assert second[("pgbackup_last_run_success", destination)] == 0.0
    assert second[("pgbackup_last_success_timestamp_seconds", destination)] == succeeded_at  # carried over
    assert receiver.requests[-2].method == "POST"  # a failure's push keeps the group's last success
    assert not list(tmp_path.glob(".pgbackup.prom.*"))  # the temporary file was renamed away


def test_a_receiver_that_is_down_or_stalls_costs_at_most_the_timeout(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str, tmp_path: Path
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    down = free_port()
    env = bucket.job_env(
        pg18,
        bindir18,
        "alerts-down",
        BACKUP_DATABASES=dbname,
        BACKUP_GLOBALS="false",
        BACKUP_NOTIFY_URLS=f"json://127.0.0.1:{down}/notify/{TOKEN}",
        BACKUP_NOTIFY_ON="always",
        BACKUP_HEALTHCHECK_URL=f"http://127.0.0.1:{down}/ping/{PING}",
        BACKUP_NOTIFY_TIMEOUT="1s",
    )
    result = run_pgbackup(env)
    assert result.returncode == 0, result.stdout + result.stderr
    warnings = [line for line in result.stdout.splitlines() if "WARNING" in line]
    assert any("healthcheck start ping failed: cannot reach the monitor" in line for line in warnings)
    assert any("notification to URL 1 of 1 (json://) failed" in line for line in warnings)
    assert TOKEN not in result.stdout and PING not in result.stdout

    with Receiver("stall") as stalled:
        env.update(
            # a prefix of its own: the first run may end within the second this one starts in
            BACKUP_DESTINATION=bucket.url("alerts-stalled"),
            BACKUP_NOTIFY_URLS=f"json://127.0.0.1:{stalled.port}/notify/{TOKEN}",
            BACKUP_HEALTHCHECK_URL=f"{stalled.url}/ping/{PING}",
        )
        started = time.monotonic()
        result = run_pgbackup(env, timeout=120)  # unbounded sends would wait for the receiver's 60 s, three times
        elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert elapsed < 45, f"the run took {elapsed:.0f} s with a stalled receiver"
    assert "healthcheck start ping gave no answer within 1 s" in result.stdout
    assert "notification gave no answer within 1 s" in result.stdout
    assert [r.path for r in stalled.requests][:1] == [f"/ping/{PING}/start"]


def test_a_failed_verify_drill_notifies(pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str) -> None:
    with Receiver() as receiver:
        env = bucket.job_env(
            pg18,
            bindir18,
            "alerts-empty",
            BACKUP_DATABASES=dbname,
            BACKUP_NOTIFY_URLS=f"json://127.0.0.1:{receiver.port}/notify/{TOKEN}",
            BACKUP_HEALTHCHECK_URL=f"{receiver.url}/ping/{PING}",
        )
        result = run_pgbackup(env, "verify", "--database", dbname)
    assert result.returncode == 1, result.stdout + result.stderr
    assert receiver.paths() == [f"POST /notify/{TOKEN}"]  # no healthcheck pings for drills
    sent = json.loads(receiver.requests[0].body)
    assert sent["type"] == "failure" and "verify drill" in sent["title"]


def test_a_shrink_alarm_notifies_even_when_only_failures_do(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str
) -> None:
    from ..kit.helpers import wait_for_next_second

    pg18.sql(f"CREATE DATABASE {dbname}")
    pg18.sql(
        "CREATE TABLE events AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS body"
        " FROM generate_series(1, 50000) g",
        dbname,
    )
    with Receiver() as receiver:
        env = bucket.job_env(
            pg18,
            bindir18,
            "alerts-shrink",
            BACKUP_DATABASES=dbname,
            BACKUP_GLOBALS="false",
            BACKUP_NOTIFY_URLS=f"json://127.0.0.1:{receiver.port}/notify/{TOKEN}",
        )
        assert run_pgbackup(env).returncode == 0
        assert receiver.requests == []  # a plain success is not news with BACKUP_NOTIFY_ON=failure
        pg18.sql("DELETE FROM events WHERE id > 2000", dbname)
        wait_for_next_second()
        second = run_pgbackup(env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert len(receiver.requests) == 1
    sent = json.loads(receiver.requests[0].body)
    assert sent["type"] == "warning" and "succeeded with warnings" in sent["title"]
    assert f"backup of '{dbname}' SHRANK" in sent["message"] and "below 50% of the previous backup" in sent["message"]
