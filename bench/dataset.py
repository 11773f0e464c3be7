"""The data sets of ``bench.compare``, built on a throwaway cluster.

- ``bench``: ``pgbench -i -s SCALE`` plus ``wide_text``, one row per id with a timestamp and
  about 1 KB of hex text (30 md5 strings), which gzip shrinks only to about half;
- ``small_001``..``small_NNN``: copies of a template holding one 100-row table;
- for ``--memory-scaling``, ``bench_backup``'s order-like table, grown in place.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from bench.bench_backup import ROW_BYTES, build_database
from devenv.postgres import Cluster

BIG_DATABASE = "bench"
SMALL_TEMPLATE = "tpl_small"  # outside the small_* glob on purpose


def small_names(count: int) -> list[str]:
    return [f"small_{number:03d}" for number in range(1, count + 1)]


def build_big(cluster: Cluster, scale: int, text_rows: int) -> None:
    cluster.sql(f"CREATE DATABASE {BIG_DATABASE}")
    env = cluster.env(BIG_DATABASE)
    subprocess.run(
        [str(cluster.bindir / "pgbench"), "-i", "-q", "-s", str(scale), BIG_DATABASE],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    cluster.sql(
        "CREATE TABLE wide_text (id bigint PRIMARY KEY, created timestamptz NOT NULL, body text NOT NULL)", BIG_DATABASE
    )
    cluster.sql(
        "INSERT INTO wide_text SELECT g, timestamptz '2026-01-01' + g * interval '1 second',"
        " (SELECT string_agg(md5(g::text || '/' || i::text), ' ') FROM generate_series(1, 30) i)"
        f" FROM generate_series(1, {text_rows}) g",
        BIG_DATABASE,
    )
    cluster.sql("VACUUM ANALYZE wide_text", BIG_DATABASE)


def build_small(cluster: Cluster, count: int) -> list[str]:
    """``count`` small databases, copied from one template (a copy takes milliseconds)."""
    cluster.sql(f"CREATE DATABASE {SMALL_TEMPLATE}")
    cluster.sql(
        "CREATE TABLE items AS SELECT g AS id, 'item number ' || g AS name, md5(g::text) AS code,"
        " timestamptz '2026-01-01' + g * interval '1 hour' AS added FROM generate_series(1, 100) g",
        SMALL_TEMPLATE,
    )
    names = small_names(count)
    connection = cluster.connect()
    try:
        with connection.cursor() as cursor:
            for name in names:  # autocommit: one CREATE DATABASE per statement
                cursor.execute(f"CREATE DATABASE {name} TEMPLATE {SMALL_TEMPLATE} STRATEGY FILE_COPY")
    finally:
        connection.close()
    return names


def dump_bytes(cluster: Cluster, database: str) -> int:
    """The size of ``database``'s plain dump, measured by dumping it (which also warms the caches)."""
    proc = subprocess.Popen(
        [str(cluster.bindir / "pg_dump"), database], env=cluster.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None
    total = 0
    while chunk := proc.stdout.read(1 << 20):
        total += len(chunk)
    if proc.wait() != 0:
        raise SystemExit(f"pg_dump {database} failed: {proc.stderr.read().decode() if proc.stderr else ''}")
    return total


def build_scaling(cluster: Cluster, gigabytes: float) -> int:
    """``bench_backup``'s order-like database ``bench`` of about ``gigabytes`` GB; its row count."""
    build_database(cluster, gigabytes)
    return int(gigabytes * 1e9 / ROW_BYTES)


def grow_scaling(cluster: Cluster, rows: int, factor: int) -> int:
    """Append copies of the first ``rows`` rows (new ids, new notes) until the table is ``factor`` times as big."""
    for copy in range(1, factor):
        shift = rows * copy
        cluster.sql(
            f"INSERT INTO big SELECT id + {shift}, customer_id, placed + {shift} * interval '1 second', amount,"
            f" status, 'order note ' || md5((id + {shift})::text) FROM big WHERE id <= {rows}",
            BIG_DATABASE,
        )
    return rows * factor


def pg_dump_version(bindir: Path) -> str:
    return subprocess.run(
        [str(bindir / "pg_dump"), "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
