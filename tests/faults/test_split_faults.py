"""A split backup under faults: a reading session killed, a lost answer, the process killed.

Real PostgreSQL 18, real S3 (moto's, and SeaweedFS where the store's behaviour matters) behind
the fault proxy, the real ``pgbackup`` command. Whatever happens, a split backup is whole or has
no manifest: no manifest means ``list`` says incomplete, and ``prune`` removes the leftovers a
day later, and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devenv.faultproxy import Fault, FaultProxy
from devenv.postgres import Cluster
from devenv.s3 import S3Server
from devenv.wait import wait_for

from ..kit.helpers import Bucket, comparable_dump, make_sample, manifest, run_pgbackup, wait_for_next_second
from ..kit.splitrun import Watched, copying, held_answer, object_start


@pytest.fixture
def moto_proxy(s3server: S3Server) -> Iterator[FaultProxy]:
    """The fault proxy in front of moto's server, for faults that are the database's, not the store's."""
    with FaultProxy(s3server.endpoint) as running:
        yield running


def _env(bucket: Bucket, pg: Cluster, bindir: Path, proxy: FaultProxy, database: str, **extra: str) -> dict[str, str]:
    # Streams of 1 MiB unless said otherwise: every table of a page or more is an object of its own
    settings = {"BACKUP_FORMAT": "split", "BACKUP_SPLIT_TABLE_MB": "1", **extra}
    return bucket.proxied_env(pg, bindir, "sf", proxy, database, **settings)


def _manifests(bucket: Bucket, database: str) -> list[str]:
    return [k for k in bucket.keys(f"sf/{database}/") if k.endswith(".manifest.json")]


def _members(bucket: Bucket, database: str) -> list[str]:
    return [k for k in bucket.keys(f"sf/{database}/") if ".split/" in k]


def _states(env: dict[str, str], database: str) -> list[str]:
    """``pgbackup list``'s state column, one entry per backup, oldest first."""
    listed = run_pgbackup(env, "list", "--database", database)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    rows = [line for line in listed.stdout.splitlines()[1:] if line.startswith(database)]
    return sorted(rows)


def test_a_reader_session_killed_mid_copy_fails_the_database_without_a_manifest(
    pg18: Cluster, bindir18: Path, bucket: Bucket, moto_proxy: FaultProxy, dbname: str
) -> None:
    # ``big`` (40 MB of COPY text) is more than its stream and the sockets between buffer, so
    # its COPY stays active on the server while the answer to its object's start is held.
    pg18.sql(f"CREATE DATABASE {dbname}")
    pg18.sql(
        "CREATE TABLE big AS SELECT g AS id, repeat(md5(g::text), 4) AS v FROM generate_series(1, 300000) g", dbname
    )
    pg18.sql("CREATE TABLE small AS SELECT g AS id FROM generate_series(1, 10) g", dbname)
    # big in one stream (under 2 x 64 MiB), so one session reads all of it while its object is held
    env = _env(bucket, pg18, bindir18, moto_proxy, dbname, BACKUP_DUMP_JOBS="2", BACKUP_SPLIT_TABLE_MB="64")

    with held_answer(moto_proxy, "POST", object_start("data-000001")) as release:
        run = Watched(env)
        found: list[int] = []

        def reading() -> bool:
            found[:] = copying(pg18, dbname, "big")
            return bool(found) or run.proc.poll() is not None

        wait_for(reading, what="a reader's COPY of big")
        assert found, "".join(run.lines)
        [(killed,)] = pg18.sql("SELECT pg_terminate_backend(%s)", params=(found[0],))
        release.set()
        code, out = run.finish()

    assert killed is True
    assert code != 0, out
    [failed] = [line for line in out.splitlines() if f"backup of '{dbname}' FAILED" in line]
    assert f"table public.big of '{dbname}' failed" in failed, failed  # the table, or a range of its pages
    assert "the server ended the session" in failed and "PGRES" not in failed, failed
    assert "Traceback" not in out
    assert _manifests(bucket, dbname) == []
    assert "objects the failed split backup of" in out  # its own objects, confirmed, nothing points at them
    assert bucket.keys(f"sf/{dbname}/") == [], "nothing of the failed backup is left"
    assert _states(env, dbname) == []


# --- the store's faults: every S3 implementation ------------------------------------------------


@pytest.fixture
def store_bucket(any_bucket: Bucket) -> Bucket:
    """Against every S3 implementation: moto's, and SeaweedFS."""
    return any_bucket


DATA_COMPLETION = r"\.split/data-000001\.copy\.gz\?uploadId="  # one object: the readers run at once


def test_a_data_object_whose_completion_answer_was_lost_is_settled_and_the_backup_restores(
    pg18: Cluster, bindir18: Path, store_bucket: Bucket, proxy: FaultProxy, dbname: str
) -> None:
    """The first completion of a data object is applied by the store and its answer lost; the
    retry is refused as a store that enforces If-None-Match refuses it. The run settles the
    write by its run id and the backup is whole."""
    bucket = store_bucket
    make_sample(pg18, dbname, rows=500)
    original = comparable_dump(pg18, bindir18, dbname)
    lost = proxy.add(Fault("POST", DATA_COMPLETION, "applied-reset"))
    proxy.add(Fault("POST", DATA_COMPLETION, "answer", status=412, code="PreconditionFailed"))
    env = _env(bucket, pg18, bindir18, proxy, dbname, BACKUP_DUMP_JOBS="2")

    result = run_pgbackup(env)

    assert lost.hits, "the fault was injected"
    assert result.returncode == 0, result.stdout + result.stderr
    [key] = _manifests(bucket, dbname)
    facts = manifest(bucket.get(key))
    assert {o["key"] for o in facts["objects"]} == set(_members(bucket, dbname))
    assert "complete" in _states(env, dbname)[0]
    copy = f"{dbname}_copy"
    restored = run_pgbackup(env, "restore", "--database", dbname, "--target", copy, "--create")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert comparable_dump(pg18, bindir18, copy) == [line.replace(dbname, copy) for line in original]


def test_a_split_backup_killed_mid_upload_leaves_an_incomplete_leftover_that_prune_removes_a_day_later(
    pg18: Cluster,
    bindir18: Path,
    store_bucket: Bucket,
    proxy: FaultProxy,
    dbname: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from backup_job.commands.destination import open_catalog, open_destination
    from backup_job.commands.prune import prune
    from backup_job.core.retention import RetentionPolicy
    from backup_job.core.settings import load_settings

    bucket = store_bucket
    make_sample(pg18, dbname, rows=500)
    env = _env(bucket, pg18, bindir18, proxy, dbname, BACKUP_DUMP_JOBS="2")

    # The largest table's object never starts (its answer is held): the schema and the small
    # tables are stored meanwhile, and the run is killed with its manifest far off.
    with held_answer(proxy, "POST", object_start("data-000001")):
        run = Watched(env)
        stored = [".split/pre-data.", ".split/post-data.", ".split/sequences."]
        wait_for(
            lambda: all(any(s in k for k in _members(bucket, dbname)) for s in stored) or run.proc.poll() is not None,
            what="the schema objects stored",
        )
        assert run.proc.poll() is None, "".join(run.lines)
        run.kill()
    leftovers = _members(bucket, dbname)
    assert leftovers and _manifests(bucket, dbname) == []
    [state] = _states(env, dbname)
    assert f"incomplete: {len(leftovers)} objects of a split backup without a manifest" in state, state

    wait_for_next_second()
    second = run_pgbackup(env)
    assert second.returncode == 0, second.stdout + second.stderr
    [kept_manifest] = _manifests(bucket, dbname)
    kept = sorted([kept_manifest, *(o["key"] for o in manifest(bucket.get(kept_manifest))["objects"])])
    states = _states(env, dbname)
    assert len(states) == 2 and "incomplete" in states[0] and "complete" in states[1], states

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(dotenv_path=tmp_path / "none")
    today = prune(open_catalog(settings, open_destination(settings)), RetentionPolicy(last=5), datetime.now(UTC))
    assert today.deleted == [] and not today.trouble(), "a leftover younger than a day may be a running backup"

    a_day_later = datetime.now(UTC) + timedelta(days=1, hours=1)
    later = prune(open_catalog(settings, open_destination(settings)), RetentionPolicy(last=5), a_day_later)

    assert not later.trouble(), later.trouble()
    assert sorted(later.deleted) == leftovers
    assert bucket.keys(f"sf/{dbname}/") == kept, "the complete backup is untouched"
