"""One server's databases spread over several pods (BACKUP_SHARD), run by hand as the
operator's Indexed Job runs them: real PostgreSQL 18, real S3 (moto's server, and SeaweedFS
where conditional writes decide), the real ``pgbackup`` command, a loopback receiver for the
healthcheck pings, notifications and Pushgateway."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from backup_job.core.shard import Shard
from devenv.faultproxy import Fault, FaultProxy
from devenv.postgres import Cluster
from devenv.receiver import Receiver

from ..kit.helpers import Bucket, manifest, run_pgbackup, table_locked
from .test_parallel_databases import events

STAMP = "20261130T020000Z"
RUN = "0b5a3c1e-6f1d-4c1b-9d4e-2f7b8a9c0d1e"


def make_databases(cluster: Cluster, names: list[str]) -> None:
    for name in names:
        cluster.sql(f"CREATE DATABASE {name}")
        cluster.sql("CREATE TABLE t AS SELECT g FROM generate_series(1, 500) g", name)


def owned(names: list[str], index: int, count: int = 3) -> list[str]:
    return [n for n in names if Shard(index, count).owns(n)]


def balanced(stem: str, count: int, shards: int = 3) -> list[str]:
    """``count`` names starting with ``stem``, as many in each shard (random names could leave
    a shard empty), in the order discovery lists them."""
    names: list[str] = []
    for n in range(1000):
        name = f"{stem}_{n:03}"
        owner = Shard(0, shards).owner(name)
        if sum(Shard(0, shards).owner(other) == owner for other in names) < count // shards:
            names.append(name)
        if len(names) == count:
            return names
    raise AssertionError("no balanced names")


def objects(bucket: Bucket, prefix: str) -> dict[str, tuple[str, Any]]:
    """key -> (ETag, LastModified): what a run that writes nothing must leave exactly as it was."""
    pages = bucket.server.client().get_paginator("list_objects_v2").paginate(Bucket=bucket.name, Prefix=prefix)
    return {o["Key"]: (o["ETag"], o["LastModified"]) for page in pages for o in page.get("Contents", [])}


def started(output: str) -> dict[str, Any]:
    [event] = [e for e in events(output) if e.get("event") == "run.started"]
    return event


def test_three_shards_store_every_database_once_and_a_retried_shard_writes_nothing(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str, tmp_path: Path
) -> None:
    names = balanced(dbname, 12)
    make_databases(pg18, names)

    def shard(index: int, **extra: str) -> Any:
        settings = {
            "BACKUP_DATABASES": f"{dbname}_*",
            "BACKUP_SHARD": f"{index}/3",
            "BACKUP_RUN_TIMESTAMP": STAMP,
            "BACKUP_RUN_ID": RUN,
            "LOG_FORMAT": "json",
            "BACKUP_TERMINATION_LOG": str(tmp_path / f"term-{index}"),
        }
        env = bucket.job_env(pg18, bindir18, "sh", **{**settings, **extra})
        return run_pgbackup(env)

    for index in range(3):
        result = shard(index)
        assert result.returncode == 0, result.stdout + result.stderr
        event = started(result.stdout)
        assert event["shard"] == f"{index}/3" and event["timestamp"] == STAMP
        assert event["databases"] == owned(names, index)
        message = json.loads((tmp_path / f"term-{index}").read_text())
        assert message["shard"] == f"{index}/3" and message["timestamp"] == STAMP
        assert message["databases"] == {"ok": len(owned(names, index)) + (index == 0), "failed": 0}

    keys = bucket.keys("sh/")
    dumps = [k for k in keys if k.endswith(".sql.gz")]
    assert sorted(k.split("/")[1] for k in dumps) == sorted([*names, "_globals"]), "each once, globals once"
    assert {k.rsplit("/", 1)[1][:16] for k in keys} == {STAMP}, "one run, one timestamp"
    assert len(keys) == 2 * len(dumps), "every dump has its manifest"
    assert {manifest(bucket.get(k))["run_id"] for k in keys if k.endswith(".manifest.json")} == {RUN}
    first_bytes = json.loads((tmp_path / "term-1").read_text())["bytes"]

    before = objects(bucket, "sh/")
    retried = shard(1)
    assert retried.returncode == 0, retried.stdout + retried.stderr
    already = [e for e in events(retried.stdout) if e.get("event") == "backup.already_stored"]
    assert sorted(e["database"] for e in already) == owned(names, 1)
    assert not [e for e in events(retried.stdout) if e.get("event") == "backup.started"]
    assert objects(bucket, "sh/") == before, "a retried shard writes nothing"
    assert json.loads((tmp_path / "term-1").read_text())["bytes"] == first_bytes

    other = shard(1, BACKUP_RUN_ID="another-run")
    assert other.returncode == 1
    failed = [e for e in events(other.stdout) if e.get("event") == "backup.failed"]
    assert sorted(e["database"] for e in failed) == owned(names, 1)
    assert all("exists already; pgbackup never overwrites a backup" in e["error"] for e in failed)

    lost = owned(names, 2)[0]  # an attempt died between the dump and its manifest
    bucket.server.client().delete_object(Bucket=bucket.name, Key=f"sh/{lost}/{STAMP}.manifest.json")
    again = shard(2)
    assert again.returncode == 1
    [failed_line] = [e for e in events(again.stdout) if e.get("event") == "backup.failed"]
    assert failed_line["database"] == lost
    assert "exists without its manifest" in failed_line["error"] and "never overwrites" in failed_line["error"]
    assert (
        len([e for e in events(again.stdout) if e.get("event") == "backup.already_stored"]) == len(owned(names, 2)) - 1
    )
    assert objects(bucket, "sh/") == {
        k: v for k, v in before.items() if not k.endswith(f"{lost}/{STAMP}.manifest.json")
    }


def test_an_empty_shard_succeeds_a_missing_name_fails_its_owner_and_nothing_at_all_still_fails(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    missing = f"{dbname}_gone"
    base = {"BACKUP_GLOBALS": "false", "BACKUP_RUN_TIMESTAMP": STAMP}
    results = [
        run_pgbackup(
            bucket.job_env(pg18, bindir18, "few", BACKUP_DATABASES=f"{dbname},{missing}", BACKUP_SHARD=f"{i}/3", **base)
        )
        for i in range(3)
    ]
    for index, result in enumerate(results):
        owns = Shard(index, 3).owns
        assert result.returncode == (1 if owns(missing) else 0), result.stdout + result.stderr
        assert (f"backup of '{missing}' FAILED: no such database" in result.stdout) == owns(missing)
        assert (f"backup of '{dbname}' finished" in result.stdout) == owns(dbname)
    empty = [i for i in range(3) if not Shard(i, 3).owns(dbname) and not Shard(i, 3).owns(missing)]
    assert empty, "with two names, some shard of three owns neither"
    assert f"run {STAMP} shard {empty[0]}/3 finished: 0 ok, 0 failed" in results[empty[0]].stdout
    assert [k.split("/")[1] for k in bucket.keys("few/")] == [dbname, dbname]

    nothing = run_pgbackup(
        bucket.job_env(
            pg18,
            bindir18,
            "none",
            BACKUP_DATABASES=f"{dbname}",
            BACKUP_EXCLUDE_DATABASES=dbname,
            BACKUP_SHARD=f"{empty[0]}/3",
            **base,
        )
    )
    assert nothing.returncode == 1 and "no databases to back up" in nothing.stdout


def test_the_cronjobs_scheduled_minute_in_the_job_name_is_the_timestamp(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    result = run_pgbackup(
        bucket.job_env(
            pg18,
            bindir18,
            "cron",
            BACKUP_DATABASES=dbname,
            BACKUP_GLOBALS="false",
            BACKUP_JOB_NAME="pgbackup-x-29400000",
        )
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert bucket.keys("cron/") == [
        f"cron/{dbname}/20251124T160000Z.manifest.json",
        f"cron/{dbname}/20251124T160000Z.sql.gz",
    ]  # minute 29400000 = 1764000000 s


@pytest.mark.parametrize("value", ["3/3", "1/0", "one/3", "1:3"])
def test_a_bad_shard_exits_2_with_one_line(value: str, tmp_path: Path) -> None:
    result = run_pgbackup({"BACKUP_DESTINATION": f"file://{tmp_path}", "BACKUP_SHARD": value})
    assert result.returncode == 2 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(f"pgbackup: configuration error: BACKUP_SHARD='{value}'") and "i/N" in line


def test_retention_with_shards_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    with Receiver() as receiver:
        result = run_pgbackup(
            {
                "BACKUP_DESTINATION": f"file://{tmp_path}",
                "BACKUP_SHARD": "0/2",
                "BACKUP_RETENTION": "last=3",
                "BACKUP_HEALTHCHECK_URL": f"{receiver.url}/ping",
            }
        )
    assert result.returncode == 2 and receiver.requests == []
    [line] = result.stderr.splitlines()
    assert "BACKUP_RETENTION is refused with BACKUP_SHARD=0/2" in line and "pgbackup prune" in line


def test_only_the_last_shard_to_finish_pings_success_and_a_failing_shard_pings_fail(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str
) -> None:
    names = balanced(dbname, 6)
    make_databases(pg18, names)
    with Receiver() as receiver:

        def shard(index: int, stamp: str, **extra: str) -> tuple[Any, list[str]]:
            seen = len(receiver.requests)
            env = bucket.job_env(
                pg18,
                bindir18,
                "hc",
                BACKUP_DATABASES=f"{dbname}_*",
                BACKUP_SHARD=f"{index}/3",
                BACKUP_RUN_TIMESTAMP=stamp,
                BACKUP_RUN_ID=f"run-{stamp}",
                BACKUP_HEALTHCHECK_URL=f"{receiver.url}/ping",
                BACKUP_NOTIFY_ON="always",
                BACKUP_NOTIFY_URLS=f"json://127.0.0.1:{receiver.port}/notify",
                BACKUP_METRICS_PUSHGATEWAY_URL=f"{receiver.url}/gw",
                **extra,
            )
            result = run_pgbackup(env)
            return result, [r.method + " " + r.path for r in receiver.requests[seen:]]

        for index in (2, 0):
            early, sent = shard(index, STAMP)
            assert early.returncode == 0, early.stdout + early.stderr
            assert [p for p in sent if "/ping" in p] == ["POST /ping/start"], "no success ping before the last"
            assert f"no success ping from shard {index}/3: run {STAMP} is not completely stored yet" in early.stdout
            [push] = [p for p in sent if "/gw/" in p]
            assert "/shard@base64/" in push
            [note] = [json.loads(r.body) for r in receiver.requests if r.path == "/notify"][-1:]
            assert note["title"] == f"pgbackup backup run {STAMP} shard {index}/3 succeeded"
        last, sent = shard(1, STAMP)
        assert last.returncode == 0, last.stdout + last.stderr
        assert [p for p in sent if "/ping" in p] == ["POST /ping/start", "POST /ping"]
        assert f"every shard of run {STAMP} has stored its backups (7): shard 1/3 sends the success ping" in last.stdout

        second = "20261201T020000Z"
        victim = names[0]
        owner = next(i for i in range(3) if Shard(i, 3).owns(victim))
        with table_locked(pg18, victim, "t"):
            failing, sent = shard(owner, second, BACKUP_LOCK_WAIT_TIMEOUT="1")
        assert failing.returncode == 1
        assert [p for p in sent if "/ping" in p] == ["POST /ping/start", "POST /ping/fail"]
        note = json.loads([r for r in receiver.requests if r.path == "/notify"][-1].body)
        assert note["type"] == "failure" and f"shard {owner}/3 FAILED" in note["title"] and victim in note["message"]
        for index in (i for i in range(3) if i != owner):
            other, sent = shard(index, second)
            assert other.returncode == 0
            assert [p for p in sent if "/ping" in p] == ["POST /ping/start"], "a failed shard's run never succeeds"
        assert f"the backup of '{victim}' is" in other.stdout or f"'{victim}' first" in other.stdout


@pytest.mark.parametrize("attempt", ["an-earlier-attempt", None])
def test_an_earlier_attempts_dump_of_the_same_size_is_never_taken_for_this_attempts_write(
    attempt: str | None, pg18: Cluster, bindir18: Path, any_bucket: Bucket, proxy: FaultProxy, dbname: str
) -> None:
    """Between this attempt's check and its completion, an earlier attempt of the same run (same
    run id) completes the same key with as many bytes: the store refuses our completion, and
    the size and run id match. The attempt in the object metadata tells them apart, so the
    database fails and no manifest vouches for bytes this attempt never sent. Without an
    attempt in the metadata (``None``: what the run id alone would say) the object matched."""
    bucket = any_bucket  # moto's and SeaweedFS, whose conditional completion is atomic
    pg18.sql(f"CREATE DATABASE {dbname}")
    pg18.sql("CREATE TABLE t AS SELECT g, md5(g::text) AS f FROM generate_series(1, 20000) g", dbname)
    client = bucket.server.client()

    class EarlierAttemptFirst(Fault):
        def matches(self, method: str, path: str) -> bool:
            if not super().matches(method, path):
                return False
            key, upload = path.split(f"/{bucket.name}/", 1)[1].split("?uploadId=", 1)
            parts = client.list_parts(Bucket=bucket.name, Key=key, UploadId=upload.split("&", 1)[0])["Parts"]
            size = sum(p["Size"] for p in parts)
            metadata = {"pgbackup-run-id": RUN, **({"pgbackup-attempt": attempt} if attempt else {})}
            client.put_object(Bucket=bucket.name, Key=key, Body=b"\0" * size, Metadata=metadata)
            return True

    race = proxy.add(EarlierAttemptFirst("POST", rf"/att/{dbname}/.*\.sql\.gz\?uploadId=", "forward"))
    env = bucket.proxied_env(pg18, bindir18, "att", proxy, dbname, BACKUP_RUN_ID=RUN, BACKUP_RUN_TIMESTAMP=STAMP)

    result = run_pgbackup(env)

    assert race.hits and result.returncode == 1, result.stdout + result.stderr
    [failed] = [line for line in result.stdout.splitlines() if "FAILED" in line and f"'{dbname}'" in line]
    assert "written by another run meanwhile" in failed, failed
    assert bucket.keys(f"att/{dbname}/") == [f"att/{dbname}/{STAMP}.sql.gz"], "no manifest claims those bytes"
    head = client.head_object(Bucket=bucket.name, Key=f"att/{dbname}/{STAMP}.sql.gz")
    assert head["Metadata"].get("pgbackup-attempt") == attempt, "the earlier attempt's object is untouched"
    assert bucket.open_uploads() == []


def test_split_backups_across_shards_ping_once_and_a_retried_shard_writes_nothing(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str
) -> None:
    names = balanced(dbname, 4, shards=2)
    make_databases(pg18, names)
    with Receiver() as receiver:

        def shard(index: int) -> tuple[Any, list[str]]:
            seen = len(receiver.requests)
            env = bucket.job_env(
                pg18,
                bindir18,
                "ss",
                BACKUP_DATABASES=f"{dbname}_*",
                BACKUP_SHARD=f"{index}/2",
                BACKUP_RUN_TIMESTAMP=STAMP,
                BACKUP_RUN_ID=RUN,
                BACKUP_FORMAT="split",
                BACKUP_HEALTHCHECK_URL=f"{receiver.url}/ping",
                LOG_FORMAT="json",
            )
            result = run_pgbackup(env)
            return result, [r.method + " " + r.path for r in receiver.requests[seen:]]

        first, sent = shard(0)
        assert first.returncode == 0, first.stdout + first.stderr
        assert [p for p in sent if "/ping" in p] == ["POST /ping/start"]
        last, sent = shard(1)
        assert last.returncode == 0, last.stdout + last.stderr
        assert [p for p in sent if "/ping" in p] == ["POST /ping/start", "POST /ping"], last.stdout
        before = objects(bucket, "ss/")
        assert [k for k in before if ".split/" in k], "split backups"
        retried, _ = shard(0)
        assert retried.returncode == 0, retried.stdout + retried.stderr
        already = [e for e in events(retried.stdout) if e.get("event") == "backup.already_stored"]
        assert sorted(e["database"] for e in already) == sorted(["", *started(first.stdout)["databases"]])
        assert objects(bucket, "ss/") == before, "a retried shard writes nothing"
