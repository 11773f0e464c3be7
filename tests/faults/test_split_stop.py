"""A stop request during a split backup: bounded, no write after it, no manifest, said once."""

from __future__ import annotations

from pathlib import Path

from devenv.faultproxy import Fault, FaultProxy
from devenv.postgres import Cluster
from devenv.wait import wait_for

from ..kit.helpers import Bucket
from .test_stop import WRITES, Started, assert_stopped_in_bound


def test_sigterm_while_a_table_s_object_stalls_stops_every_reader_within_the_bound(
    pg18: Cluster, bindir18: Path, any_bucket: Bucket, proxy: FaultProxy, dbname: str, tmp_path: Path
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    for table in ("a", "b", "c"):
        pg18.sql(f"CREATE TABLE {table} AS SELECT generate_series(1, 2000) AS n", dbname)
    stalled = proxy.add(Fault("PUT", r"\.split/data-", "stall", times=None, seconds=300, forward=False))
    env = {
        **any_bucket.proxied_env(pg18, bindir18, "stop", proxy, dbname),
        "BACKUP_GLOBALS": "false",
        "BACKUP_FORMAT": "split",
        "BACKUP_DUMP_JOBS": "2",
        "BACKUP_SPLIT_TABLE_MB": "1",  # each table its own object, none bundled
    }
    run = Started(env, tmp_path)
    try:
        # Quiet: two readers held at the store, and the leader's own objects (post-data, large
        # objects, the sequences last) all stored, so nothing may write until the signal.
        wait_for(
            lambda: (
                len(stalled.hits) >= 2
                and any(r[0] == "POST" and "sequences.json" in r[1] and "uploadId=" in r[1] for r in proxy.requests)
            ),
            timeout=60,
            what="two tables' objects held at the store and the leader's objects stored",
        )
        writes_before = len([r for r in proxy.requests if r[0] in WRITES])
    finally:
        code, took, before = run.terminate()

    assert_stopped_in_bound(run, proxy, code, took, before, writes_before)
    assert not any(k.endswith(".manifest.json") for k in any_bucket.keys("stop/")), "no manifest: no backup"
    line = run.stopped_line()
    assert f"'{dbname}'" in line and "1 of 1 not stored" in line, line
    wait_for(
        lambda: pg18.sql("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", params=(dbname,)) == [(0,)],
        timeout=30,
        what="every session of the backup gone: leader and readers",
    )
