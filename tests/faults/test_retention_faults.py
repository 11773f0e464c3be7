"""Retention under faults that hide damage from a listing: it keeps what restores.

- A bit flipped at rest in the newest dump keeps its size, so the catalog calls the backup
  complete; prune must prove the newest backup it keeps (read it whole, checked against the
  manifest) before deleting older ones, and keep them when the proof fails.
- A listing that leaves a manifest key out, or carries it with a bit flipped, makes a good
  dump look like a leftover without a manifest; prune must look the manifest up directly
  before deleting it. The listing is really damaged, by the fault proxy in front of the store.

Both run against moto's S3 server and SeaweedFS.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backup_job.core.logs import human_bytes
from devenv.faultproxy import Fault, FaultProxy
from devenv.postgres import Cluster

from ..kit.helpers import Bucket, run_pgbackup, wait_for_next_second


@pytest.fixture
def bucket(any_bucket: Bucket) -> Bucket:
    """These tests run against every S3 implementation: moto's, and SeaweedFS."""
    return any_bucket


def _two_backups(pg: Cluster, env: dict[str, str], dbname: str) -> None:
    pg.sql(f"CREATE DATABASE {dbname}")
    pg.sql("CREATE TABLE t AS SELECT g, md5(g::text) AS f FROM generate_series(1, 20000) g", dbname)
    assert run_pgbackup(env).returncode == 0
    wait_for_next_second()
    pg.sql("INSERT INTO t VALUES (0, 'second')", dbname)
    assert run_pgbackup(env).returncode == 0


def _flip_one_bit_at_rest(bucket: Bucket, key: str) -> None:
    """Replace the stored object with the same bytes but one bit (the same size, so every
    listing and manifest size still agrees)."""
    data = bytearray(bucket.get(key))
    data[len(data) // 2] ^= 0x01
    bucket.put(key, bytes(data))


def test_prune_keeps_the_older_backup_when_the_newest_is_damaged_at_rest(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str
) -> None:
    env = bucket.job_env(pg18, bindir18, "rest", BACKUP_DATABASES=dbname, BACKUP_GLOBALS="false")
    _two_backups(pg18, env, dbname)
    older, newer = sorted(k for k in bucket.keys(f"rest/{dbname}/") if k.endswith(".sql.gz"))
    _flip_one_bit_at_rest(bucket, newer)
    before = bucket.keys(f"rest/{dbname}/")
    listing = run_pgbackup(env, "list", "--database", dbname)
    assert listing.stdout.count("complete") >= 2, listing.stdout  # sizes alone cannot tell

    pruned = run_pgbackup({**env, "BACKUP_RETENTION": "last=1"}, "prune")

    assert pruned.returncode == 1, pruned.stdout + pruned.stderr
    assert bucket.keys(f"rest/{dbname}/") == before, "nothing deleted: the older backup is the only good one"
    stamp = newer.rsplit("/", 1)[-1][:16]
    [error] = [line for line in pruned.stdout.splitlines() if "could not prove" in line]
    assert stamp in error and "checksum mismatch" in error and f"pgbackup verify --database {dbname}" in error
    assert "DAMAGED" in pruned.stdout and "its stored bytes do not match its manifest" in pruned.stdout
    restored = run_pgbackup(
        env,
        "restore",
        "--database",
        dbname,
        "--at",
        older.rsplit("/", 1)[-1][:16],
        "--target",
        f"{dbname}_r",
        "--create",
    )
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert pg18.sql("SELECT count(*) FROM t", f"{dbname}_r") == [(20000,)]


def test_prune_walks_past_every_damaged_backup_and_deletes_nothing_unproven(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str
) -> None:
    """Three backups, the two newest damaged at rest: each is marked damaged in turn and the
    plan made again, until the oldest is all it keeps; with last=1 nothing is deleted."""
    env = bucket.job_env(pg18, bindir18, "rest", BACKUP_DATABASES=dbname, BACKUP_GLOBALS="false")
    _two_backups(pg18, env, dbname)
    wait_for_next_second()
    assert run_pgbackup(env).returncode == 0
    oldest, middle, newest = sorted(k for k in bucket.keys(f"rest/{dbname}/") if k.endswith(".sql.gz"))
    _flip_one_bit_at_rest(bucket, middle)
    _flip_one_bit_at_rest(bucket, newest)
    before = bucket.keys(f"rest/{dbname}/")

    pruned = run_pgbackup({**env, "BACKUP_RETENTION": "last=1"}, "prune")

    assert pruned.returncode == 1, pruned.stdout + pruned.stderr
    assert bucket.keys(f"rest/{dbname}/") == before
    stamps = [k.rsplit("/", 1)[-1][:16] for k in (oldest, middle, newest)]
    unproven = [line for line in pruned.stdout.splitlines() if "could not prove" in line]
    assert [s for s in stamps if any(s in line for line in unproven)] == stamps[1:]
    assert "retention proved" not in pruned.stdout, "the oldest is all the plan keeps: nothing to delete, no read"


def test_prune_proves_the_newest_backup_before_deleting_older_ones(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str
) -> None:
    env = bucket.job_env(pg18, bindir18, "rest", BACKUP_DATABASES=dbname, BACKUP_GLOBALS="false")
    _two_backups(pg18, env, dbname)
    _, newer = sorted(k for k in bucket.keys(f"rest/{dbname}/") if k.endswith(".sql.gz"))
    size = len(bucket.get(newer))

    pruned = run_pgbackup({**env, "BACKUP_RETENTION": "last=1"}, "prune")

    assert pruned.returncode == 0, pruned.stdout + pruned.stderr
    assert [k for k in bucket.keys(f"rest/{dbname}/") if k.endswith(".sql.gz")] == [newer]
    [proved] = [line for line in pruned.stdout.splitlines() if "retention proved" in line]
    assert newer.rsplit("/", 1)[-1][:16] in proved
    assert f"1 proven ({human_bytes(size)} read)" in pruned.stdout


def test_prune_deletes_nothing_of_a_database_whose_newest_backup_cannot_be_read(
    pg18: Cluster, bindir18: Path, bucket: Bucket, proxy: FaultProxy, dbname: str
) -> None:
    """Unsure is not damaged: a read refused while proving marks nothing and deletes nothing."""
    env = bucket.proxied_env(pg18, bindir18, "rest", proxy, dbname)
    _two_backups(pg18, env, dbname)
    _, newer = sorted(k for k in bucket.keys(f"rest/{dbname}/") if k.endswith(".sql.gz"))
    before = bucket.keys(f"rest/{dbname}/")
    denied = proxy.add(Fault("GET", re.escape(newer.rsplit("/", 1)[-1]), "deny", times=None))

    pruned = run_pgbackup({**env, "BACKUP_RETENTION": "last=1"}, "prune")

    assert denied.hits and pruned.returncode == 1, pruned.stdout + pruned.stderr
    assert bucket.keys(f"rest/{dbname}/") == before
    assert "could not read" in pruned.stdout and f"nothing of '{dbname}' is deleted this time" in pruned.stdout
    assert "DAMAGED" not in pruned.stdout


def _flip_manifest_key(stamp: str) -> Callable[[bytes], bytes]:
    def rewrite(body: bytes) -> bytes:
        needle = f"{stamp}.manifest.json".encode()
        assert needle in body, body[:500]
        return body.replace(needle, needle[:-1] + bytes([needle[-1] ^ 0x01]))  # ...json -> ...jsoo

    return rewrite


def _drop_manifest_key(stamp: str) -> Callable[[bytes], bytes]:
    def rewrite(body: bytes) -> bytes:
        entry = re.compile(
            rb"<Contents>(?:(?!</Contents>).)*" + re.escape(f"{stamp}.manifest.json".encode()) + rb".*?</Contents>",
            re.S,
        )
        assert entry.search(body), body[:500]
        return entry.sub(b"", body, count=1)

    return rewrite


@pytest.mark.parametrize("listing_fault", ["flipped", "dropped"])
def test_a_listing_that_leaves_a_manifest_out_deletes_no_dump(
    pg18: Cluster,
    bindir18: Path,
    bucket: Bucket,
    proxy: FaultProxy,
    dbname: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    listing_fault: str,
) -> None:
    """Prune a day later (its clock moved on, so every dump is old enough to be a leftover),
    through a proxy that damages the listing's entry of the older backup's manifest."""
    from backup_job.commands.destination import open_catalog, open_destination
    from backup_job.commands.prune import prune
    from backup_job.core.retention import RetentionPolicy
    from backup_job.core.settings import load_settings

    env = bucket.proxied_env(pg18, bindir18, "lf", proxy, dbname)
    _two_backups(pg18, env, dbname)
    before = bucket.keys(f"lf/{dbname}/")
    older = before[0].rsplit("/", 1)[-1][:16]
    change = (_flip_manifest_key if listing_fault == "flipped" else _drop_manifest_key)(older)
    fault = proxy.add(Fault("GET", r"list-type=2", "rewrite", rewrite=change))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = load_settings(dotenv_path=tmp_path / "none")
    storage = open_destination(settings)

    result = prune(open_catalog(settings, storage), RetentionPolicy(last=5), datetime.now(UTC) + timedelta(days=2))

    assert fault.hits, "the listing went through the proxy"
    assert bucket.keys(f"lf/{dbname}/") == before, "the dump whose manifest the listing lost is kept"
    assert result.deleted == [] and len(result.unsure) == 1 and older in result.unsure[0]
    assert "its manifest exists, though the listing did not show it" in result.trouble()


def test_a_leftover_goes_only_when_its_manifest_is_known_to_be_absent(
    pg18: Cluster,
    bindir18: Path,
    bucket: Bucket,
    proxy: FaultProxy,
    dbname: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A real leftover (its manifest really gone) whose lookup is refused is kept; looked up
    and not found, it goes."""
    from backup_job.commands.destination import open_catalog, open_destination
    from backup_job.commands.prune import prune
    from backup_job.core.retention import RetentionPolicy
    from backup_job.core.settings import load_settings

    env = bucket.proxied_env(pg18, bindir18, "lf", proxy, dbname)
    _two_backups(pg18, env, dbname)
    older_manifest, older_dump = bucket.keys(f"lf/{dbname}/")[:2]
    bucket.server.client().delete_object(Bucket=bucket.name, Key=older_manifest)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = load_settings(dotenv_path=tmp_path / "none")
    later = datetime.now(UTC) + timedelta(days=2)
    denied = proxy.add(Fault("HEAD", re.escape(older_manifest.rsplit("/", 1)[-1]), "deny"))

    refused = prune(open_catalog(settings, open_destination(settings)), RetentionPolicy(last=5), later)

    assert denied.hits and older_dump in bucket.keys(f"lf/{dbname}/")
    assert refused.deleted == [] and "looking up its manifest failed" in refused.trouble()

    pruned = prune(open_catalog(settings, open_destination(settings)), RetentionPolicy(last=5), later)

    assert pruned.deleted == [older_dump] and not pruned.trouble()
    assert older_dump not in bucket.keys(f"lf/{dbname}/")
