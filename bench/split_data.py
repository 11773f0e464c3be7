"""The data set of ``bench.compare --split``: a database shaped like a real big one, built once and kept.

Database ``big`` at ``--scale 1`` (about 2.5 GB of plain dump):

- ``public.orders``, most of the data: 15.5 million rows of about 125 bytes of dump (id,
  customer, time, status, amount, a note of words and a hash), 2.2 GB on disk: above twice
  ``BACKUP_SPLIT_TABLE_MB``'s default (1024 MB), from which a split backup reads a table in
  ranges of pages (``pipeline.split``), as a big
  database's biggest table is; primary key, secondary indexes on ``customer_id`` and on
  ``placed``, and a foreign key to ``public.customers``;
- five mid-sized tables of about 100 MB of dump each (``customers``, ``products``,
  ``invoices``, ``shipments``, ``audit_log``), each with a primary key;
- 200 small tables ``config.setting_001`` .. ``config.setting_200``, five rows each.

Every row is computed from ``generate_series`` (no ``random()``), so the same scale always
gives the same data; the notes compress about as well as real text does (gzip -6 to roughly a
third). Database ``big_quarter`` is the same at a quarter of the scale, for the one-table
restore at two sizes.

Building takes minutes, so the cluster is kept: a Debian PostgreSQL 15 data directory under
devenv's shared root (``/var/tmp/pgbackup-testenv``, where devenv already keeps its copies of
PostgreSQL binaries; the server user can reach it when we run as root), one directory per
scale, ``bench-split-pg15-s<scale>``. A file ``ready`` is written last: a directory without it
(an interrupted build) is removed and built again. Delete the directory to rebuild.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from devenv.postgres import SHARED_ROOT, Cluster

BIG, QUARTER = "big", "big_quarter"
MID_TABLES = ("customers", "products", "invoices", "shipments", "audit_log")
SMALL_TABLES = 200
SMALL_SCHEMA = "config"
ORDERS_ROWS = 15_500_000  # at scale 1
MID_ROWS = 650_000  # at scale 1, per mid-sized table
SHAPE = (
    "one table holding most of the data (public.orders: primary key, 2 secondary indexes, a foreign key to "
    f"customers), {len(MID_TABLES)} mid-sized tables (~100 MB of dump each at scale 1), "
    f"{SMALL_TABLES} small tables of 5 rows"
)
NOTE = (
    "(ARRAY['shipped','pending','returned','paid','cancelled','gift wrap','express','backorder'])"
    "[1 + g % 8] || ' order for ' || (ARRAY['north','south','east','west'])[1 + g % 4] || ' region, ref ' || "
    "md5(g::text) || ' batch ' || (g / 1000)"
)


def small_table(number: int) -> str:
    return f"{SMALL_SCHEMA}.setting_{number:03d}"


def build(cluster: Cluster, database: str, scale: float) -> None:
    """Create ``database`` at ``scale`` on ``cluster`` (deterministic)."""
    cluster.sql(f"CREATE DATABASE {database}")
    mid_rows, orders_rows = max(1000, int(MID_ROWS * scale)), max(10_000, int(ORDERS_ROWS * scale))
    for table in MID_TABLES:
        cluster.sql(
            f"CREATE TABLE {table} (id bigint PRIMARY KEY, ref bigint NOT NULL, created timestamptz NOT NULL,"
            " name text NOT NULL, body text NOT NULL)",
            database,
        )
        cluster.sql(
            f"INSERT INTO {table} SELECT g, g % 977, timestamptz '2025-01-01' + g * interval '1 minute',"
            f" '{table} ' || g, {NOTE} || ' ' || md5((g * 7)::text) FROM generate_series(1, {mid_rows}) g",
            database,
        )
    cluster.sql(
        "CREATE TABLE orders (id bigint NOT NULL, customer_id bigint NOT NULL, placed timestamptz NOT NULL,"
        " status smallint NOT NULL, amount numeric(12,2) NOT NULL, note text NOT NULL)",
        database,
    )
    cluster.sql(
        f"INSERT INTO orders SELECT g, 1 + g % {mid_rows}, timestamptz '2024-01-01' + g * interval '2 seconds',"
        f" g % 5, (g % 100000) / 100.0, {NOTE} FROM generate_series(1, {orders_rows}) g",
        database,
    )
    for statement in (
        "ALTER TABLE orders ADD PRIMARY KEY (id)",
        "CREATE INDEX orders_customer_idx ON orders (customer_id)",
        "CREATE INDEX orders_placed_idx ON orders (placed)",
        "ALTER TABLE orders ADD CONSTRAINT orders_customer_fkey FOREIGN KEY (customer_id) REFERENCES customers (id)",
        f"CREATE SCHEMA {SMALL_SCHEMA}",
    ):
        cluster.sql(statement, database)
    for number in range(1, SMALL_TABLES + 1):
        cluster.sql(
            f"CREATE TABLE {small_table(number)} AS SELECT g AS id, 'key ' || g AS key, md5(g::text) AS value"
            " FROM generate_series(1, 5) g",
            database,
        )
    cluster.sql("VACUUM ANALYZE", database)


class CachedCluster(Cluster):
    """A ``Cluster`` whose data directory outlives it: built on first use, then only started and stopped."""

    def __init__(self, bindir: Path, scale: float) -> None:
        super().__init__(bindir)
        os.rmdir(self.base)  # the throwaway directory Cluster made: this one lives at a fixed place
        self.scale = scale
        self.base = SHARED_ROOT / f"bench-split-pg15-s{scale:g}"
        self.datadir, self.logfile = self.base / "data", self.base / "server.log"
        self.ready = self.base / "ready"
        self.built_now = False

    def start(self) -> CachedCluster:
        if self.ready.exists():
            self._start_existing()
            return self
        shutil.rmtree(self.base, ignore_errors=True)  # an interrupted build
        self.base.mkdir(parents=True)
        if self.user:
            os.chmod(self.base, 0o755)
            os.chown(self.base, self.user.pw_uid, self.user.pw_gid)
        super().start()
        try:
            build(self, BIG, self.scale)
            build(self, QUARTER, self.scale / 4)
            self.sql("CHECKPOINT")
        except BaseException:
            self.stop()  # __exit__ does not run when __enter__ fails; without `ready` the next run rebuilds
            raise
        self.ready.write_text(f"scale {self.scale:g}\n")
        self.built_now = True
        return self

    def _start_existing(self) -> None:
        self.stop()  # a server a killed run left behind
        options = (
            f"-c listen_addresses={self.host} -c port={self.port} -c unix_socket_directories={self.base}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=50"
        )
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.logfile), "-o", options, "-w", "start"
        )

    def postmaster_pid(self) -> int:
        return int((self.datadir / "postmaster.pid").read_text().split()[0])

    def stop(self) -> None:
        """A clean shutdown; the data directory stays."""
        if (self.datadir / "postmaster.pid").exists():
            try:
                self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w", "stop")
            except subprocess.CalledProcessError:
                pass
