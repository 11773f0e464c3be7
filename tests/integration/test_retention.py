"""Retention and the shrink alarm against real PostgreSQL 18 and a real S3 server.

Months of backups are made without waiting months: one real backup is taken, then its dump
object is copied (server-side) to earlier run timestamps with a manifest rewritten to match,
so every backup retention sees is a real, restorable object with a key of our layout.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backup_job.core.layout import format_timestamp
from devenv.postgres import Cluster

from ..kit.helpers import Bucket, manifest, run_pgbackup, signed, wait_for_next_second


@pytest.fixture
def bucket(any_bucket: Bucket) -> Bucket:
    """Retention against every S3 implementation: moto's, and SeaweedFS."""
    return any_bucket


FOREIGN = (
    "prod/README.txt",
    "prod/{db}/20260101T000000Z.sql.gz.bak",
    "prod/{db}/notes/20260101T000000Z.sql.gz",
    "prod/{db}/2026-01-01.sql.gz",
    "prod/{db}/20260101T000000Z.SQL.GZ",
    "prod/_other/20260101T000000Z.sql.gz",
    "prod/{db}%zz/20260101T000000Z.sql.gz",
    "elsewhere/{db}/20260101T000000Z.sql.gz",
)


def _seed(bucket: Bucket, database: str, stamps: list[str]) -> None:
    """Copies of the newest real backup of ``database`` (and of the globals) at ``stamps``, a few
    requests at a time (hundreds of them, one after another, cost seconds)."""
    client = bucket.server.client()

    def copy(segment: str, dump: str, facts: dict[str, object], stamp: str) -> None:
        key = f"prod/{segment}/{stamp}.sql.gz"
        client.copy_object(Bucket=bucket.name, Key=key, CopySource={"Bucket": bucket.name, "Key": dump})
        bucket.put(key.replace(".sql.gz", ".manifest.json"), signed({**facts, "key": key, "run_timestamp": stamp}))

    with ThreadPoolExecutor(max_workers=8) as pool:
        for segment in (database, "_globals"):
            dump = max(k for k in bucket.keys(f"prod/{segment}/") if k.endswith(".sql.gz"))
            facts = manifest(bucket.get(dump.replace(".sql.gz", ".manifest.json")))
            list(pool.map(functools.partial(copy, segment, dump, facts), stamps))


def _expected(stamps: list[str], last: int, daily: int, weekly: int, monthly: int) -> set[str]:
    """The policy written out plainly: per rule, the newest backup of each of the newest N buckets."""
    times = sorted((datetime.strptime(s, "%Y%m%dT%H%M%SZ") for s in stamps), reverse=True)
    keep = set(times[:last])
    for count, bucket_of in (
        (daily, lambda t: t.date()),
        (weekly, lambda t: t.isocalendar()[:2]),
        (monthly, lambda t: (t.year, t.month)),
    ):
        newest: dict[object, datetime] = {}
        for moment in times:
            newest.setdefault(bucket_of(moment), moment)
        keep |= set(sorted(newest.values(), reverse=True)[:count])
    return {t.strftime("%Y%m%dT%H%M%SZ") for t in keep}


def test_retention_over_months_keeps_exactly_the_policy(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    env = bucket.job_env(pg18, bindir18, "prod", BACKUP_DATABASES=dbname)
    assert run_pgbackup(env).returncode == 0
    real = {k for k in bucket.keys("prod/") if k.split("/")[1] in (dbname, "_globals")}
    first = datetime(2026, 5, 1, 2, 0, tzinfo=UTC)
    stamps = [format_timestamp(first + timedelta(days=n)) for n in range(205)]  # up to 2026-11-21
    stamps += [format_timestamp(first + timedelta(days=n, hours=12)) for n in range(200, 205)]  # two a day
    _seed(bucket, dbname, stamps)
    foreign = {key.format(db=dbname) for key in FOREIGN}
    for key in foreign:
        bucket.put(key, b"someone else's file")
    before = set(bucket.keys())
    policy = "last=3,daily=7,weekly=5,monthly=4"
    now_stamp = next(k for k in real if k.startswith(f"prod/{dbname}/")).split("/")[-1].split(".")[0]
    kept = _expected([*stamps, now_stamp], 3, 7, 5, 4) - {now_stamp}  # the real backup is the newest
    expected_seeded = {
        f"prod/{seg}/{s}.{ext}" for seg in (dbname, "_globals") for s in kept for ext in ("sql.gz", "manifest.json")
    }
    assert len(kept) < 30 < len(stamps), "the case must delete most backups"

    dry = run_pgbackup({**env, "BACKUP_RETENTION": policy}, "prune", "--dry-run")

    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert set(bucket.keys()) == before
    would = [line for line in dry.stdout.splitlines() if "retention would delete" in line]
    assert len(would) == len(before) - len(foreign) - len(real) - len(expected_seeded)

    pruned = run_pgbackup({**env, "BACKUP_RETENTION": policy}, "prune")

    assert pruned.returncode == 0, pruned.stdout + pruned.stderr
    assert set(bucket.keys()) == real | foreign | expected_seeded
    deleted = [line for line in pruned.stdout.splitlines() if "retention deleted" in line]
    assert len(deleted) == len(would)
    assert all("outside the retention policy" in line for line in deleted)


def test_a_failed_run_prunes_nothing_and_a_good_run_prunes(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    env = bucket.job_env(pg18, bindir18, "prod", BACKUP_RETENTION="last=1")
    assert run_pgbackup({**env, "BACKUP_DATABASES": dbname, "BACKUP_RETENTION": ""}).returncode == 0
    _seed(bucket, dbname, ["20260101T020000Z", "20260201T020000Z"])
    before = set(bucket.keys())
    wait_for_next_second()

    failed = run_pgbackup({**env, "BACKUP_DATABASES": f"{dbname},{dbname}_missing"})

    assert failed.returncode == 1
    assert "retention skipped: the run had failures" in failed.stdout
    after_failure = set(bucket.keys())
    assert before < after_failure, "nothing deleted; the failed run's good backup was added"
    wait_for_next_second()

    good = run_pgbackup({**env, "BACKUP_DATABASES": dbname})

    assert good.returncode == 0, good.stdout + good.stderr
    remaining = bucket.keys()
    assert len([k for k in remaining if k.startswith(f"prod/{dbname}/")]) == 2
    assert len([k for k in remaining if k.startswith("prod/_globals/")]) == 2
    newest = max(k for k in remaining if k.startswith(f"prod/{dbname}/"))
    assert (
        newest[len(f"prod/{dbname}/") :]
        > max(k for k in after_failure if k.startswith(f"prod/{dbname}/"))[len(f"prod/{dbname}/") :]
    )


def test_incomplete_leftovers_go_after_a_day(pg18: Cluster, bindir18: Path, tmp_path: Path, dbname: str) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    env = {
        **pg18.env(),
        "BACKUP_DESTINATION": f"file://{tmp_path}",
        "BACKUP_PG_BINDIR": str(bindir18),
        "BACKUP_DATABASES": dbname,
        "BACKUP_GLOBALS": "false",
    }
    assert run_pgbackup(env).returncode == 0
    folder = tmp_path / dbname
    now = datetime.now(UTC)

    def stamp(hours: float) -> str:
        return format_timestamp(now - timedelta(hours=hours))

    # Leftovers go once both their key's time and their object's time are over a day old:
    # each side of the threshold is tried on its own. (An object older than its key's time is
    # suspect, never deleted, so the key side is tried with the object written at that time.)
    leftovers = {  # name: (object age in hours, goes)
        f"{stamp(72)}.sql.gz": (72, True),  # a dump whose manifest never came
        f"{stamp(71)}.manifest.json": (71, False),  # an unreadable manifest without its dump: damaged, kept
        f"{stamp(70)}.sql.gz": (25, True),  # object just over a day old
        f"{stamp(69)}.sql.gz": (23, False),  # object just under a day old
        f"{stamp(68)}.sql.gz": (0, False),  # key is old but the object was written just now
        f"{stamp(25)}.sql.gz": (25, True),  # key just over a day old
        f"{stamp(23)}.sql.gz": (23, False),  # key just under a day old (a run that may still be going)
        f"{stamp(30)}.sql.gz": (72, False),  # dated after the store received it: suspect, kept
    }
    for name, (hours, _) in leftovers.items():
        (folder / name).write_bytes(b"partial")
        moment = (now - timedelta(hours=hours)).timestamp()
        os.utime(folder / name, (moment, moment))

    result = run_pgbackup({**env, "BACKUP_RETENTION": "last=5"}, "prune")

    assert result.returncode == 0, result.stdout + result.stderr
    names = {p.name for p in folder.iterdir()}
    assert {name for name, (_, goes) in leftovers.items() if goes} & names == set()
    assert {name for name, (_, goes) in leftovers.items() if not goes} <= names
    assert len([n for n in names if n.endswith(".manifest.json")]) == 2, "the complete backup and the damaged stay"
    assert "leftover, incomplete: dump object without a manifest" in result.stdout
    assert "WARNING retention keeps" in result.stdout and "DAMAGED: manifest invalid" in result.stdout


def test_shrink_alarm_flags_a_backup_after_most_rows_are_deleted(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    pg18.sql(
        "CREATE TABLE events AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS body"
        " FROM generate_series(1, 50000) g",
        dbname,
    )
    env = bucket.job_env(pg18, bindir18, "prod", BACKUP_DATABASES=dbname)
    first = run_pgbackup(env)
    assert first.returncode == 0 and "SHRANK" not in first.stdout
    pg18.sql("DELETE FROM events WHERE id > 2000", dbname)
    wait_for_next_second()

    second = run_pgbackup(env)

    assert second.returncode == 0, second.stdout + second.stderr
    alarm = [line for line in second.stdout.splitlines() if "SHRANK" in line]
    assert len(alarm) == 1 and "WARNING" in alarm[0] and "below 50% of the previous backup" in alarm[0]
    newest = max(k for k in bucket.keys(f"prod/{dbname}/") if k.endswith(".json"))
    facts = manifest(bucket.get(newest))
    assert facts["shrink_alarm"]["fraction"] == 0.5
    assert facts["shrink_alarm"]["previous_compressed_bytes"] > 2 * facts["compressed_bytes"]
    listing = run_pgbackup(env, "list", "--database", dbname).stdout.splitlines()
    assert "SHRUNK below 50%" in listing[1] and "SHRUNK" not in listing[2]
