"""A split backup reads one moment of the database over several connections, or fails saying why.

Real PostgreSQL 18, moto's S3 behind the fault proxy, the real ``pgbackup`` command. The proxy
holds back the answer to one object's start (``kit.splitrun.held_answer``) so that the test can
act while the backup is under way: commit transfers after the snapshot was exported, run DDL
while a table is still being read. Nothing here sleeps: every wait polls a condition.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devenv.faultproxy import FaultProxy
from devenv.postgres import Cluster
from devenv.s3 import S3Server
from devenv.wait import wait_for

from ..kit.helpers import Bucket, comparable_dump, manifest, run_pgbackup
from ..kit.splitrun import Watched, held_answer, object_start

ACCOUNTS = 500
OPENING = 1000  # each account's opening balance: the total over both tables never changes
TOTAL = 2 * ACCOUNTS * OPENING
AFTER_SNAPSHOT = 20  # transfers committed after the export that the backup must leave out


@pytest.fixture
def proxy(s3server: S3Server) -> Iterator[FaultProxy]:
    """The fault proxy in front of moto's server (the faults here are the database's, not the store's)."""
    with FaultProxy(s3server.endpoint) as running:
        yield running


def _env(bucket: Bucket, pg: Cluster, bindir: Path, proxy: FaultProxy, database: str, **extra: str) -> dict[str, str]:
    # Streams of 1 MiB: every table of a page or more is an object of its own, read by a reader
    return bucket.proxied_env(
        pg, bindir, "cons", proxy, database, BACKUP_FORMAT="split", BACKUP_SPLIT_TABLE_MB="1", **extra
    )


class Transfers:
    """A teller on a connection of its own: moves money between a row of ``accounts_a`` and a row
    of ``accounts_b`` and writes it in ``ledger``, one transaction per transfer, until stopped."""

    def __init__(self, cluster: Cluster, database: str) -> None:
        self.connection = cluster.connect(database)
        self.connection.autocommit = False
        self.commits = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="transfers", daemon=True)

    def _run(self) -> None:
        pick = random.Random(7)
        try:
            with self.connection.cursor() as cursor:
                while not self._stop.is_set():
                    a, b, amount = pick.randint(1, ACCOUNTS), pick.randint(1, ACCOUNTS), pick.randint(-50, 50)
                    cursor.execute("UPDATE accounts_a SET balance = balance - %s WHERE id = %s", (amount, a))
                    cursor.execute("UPDATE accounts_b SET balance = balance + %s WHERE id = %s", (amount, b))
                    cursor.execute("INSERT INTO ledger (a, b, amount) VALUES (%s, %s, %s)", (a, b, amount))
                    self.connection.commit()
                    self.commits += 1
        except BaseException as exc:
            self.error = exc

    def __enter__(self) -> Transfers:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self.connection.close()


def _on_snapshot(cluster: Cluster, database: str, snapshot: str) -> dict[str, Any]:
    """What a transaction on the exported snapshot sees: the ledger's rows and both balances."""
    connection = cluster.connect(database)
    try:
        with connection.cursor() as cursor:
            cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cursor.execute("SET TRANSACTION SNAPSHOT %s", (snapshot,))
            cursor.execute(
                "SELECT (SELECT count(*) FROM ledger), (SELECT max(id) FROM ledger),"
                " (SELECT sum(balance) FROM accounts_a), (SELECT sum(balance) FROM accounts_b)"
            )
            ledger, last_id, a, b = cursor.fetchone()
            cursor.execute("COMMIT")
    finally:
        connection.close()
    return {"ledger": ledger, "last_id": last_id, "a": a, "b": b}


def test_money_moved_during_a_split_backup_restores_to_the_exported_snapshot_exactly(
    pg18: Cluster, bindir18: Path, bucket: Bucket, proxy: FaultProxy, dbname: str
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    for table in ("accounts_a", "accounts_b"):
        pg18.sql(f"CREATE TABLE {table} (id int PRIMARY KEY, balance bigint NOT NULL)", dbname)
        pg18.sql(f"INSERT INTO {table} SELECT g, {OPENING} FROM generate_series(1, {ACCOUNTS}) g", dbname)
    pg18.sql("CREATE TABLE ledger (id bigserial PRIMARY KEY, a int, b int, amount int)", dbname)
    env = _env(bucket, pg18, bindir18, proxy, dbname, BACKUP_DUMP_JOBS="2")

    with Transfers(pg18, dbname) as teller:
        wait_for(lambda: teller.commits >= 5 or teller.error, what="the first transfers")
        # The pre-data object's answer is held: the leader has exported its snapshot and holds
        # it, and no reader has started, while the teller commits on.
        with held_answer(proxy, "POST", object_start("pre-data")) as release:
            run = Watched(env)
            snapshot = run.snapshot()
            seen = _on_snapshot(pg18, dbname, snapshot)
            since = teller.commits  # at least the commits made before the export
            wait_for(
                lambda: teller.commits >= since + AFTER_SNAPSHOT or teller.error or run.proc.poll() is not None,
                what=f"{AFTER_SNAPSHOT} transfers after the export",
            )
            release.set()
            code, out = run.finish()
        during = teller.commits - since
    assert teller.error is None, teller.error
    assert code == 0, out
    assert during >= AFTER_SNAPSHOT, f"only {during} transfers landed while the backup ran"

    assert seen["a"] + seen["b"] == TOTAL
    now = pg18.sql("SELECT count(*) FROM ledger", dbname)[0][0]
    assert now - seen["ledger"] >= AFTER_SNAPSHOT, "the source moved on: a backup off the snapshot would differ"
    facts = manifest(bucket.get(next(k for k in bucket.keys(f"cons/{dbname}/") if k.endswith(".manifest.json"))))
    assert facts["row_counts"]["public.ledger"] == seen["ledger"]

    copy = f"{dbname}_copy"
    restored = run_pgbackup(env, "restore", "--database", dbname, "--target", copy, "--create", "--jobs", "2")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    [(ledger, last_id, a, b, next_id)] = pg18.sql(
        "SELECT (SELECT count(*) FROM ledger), (SELECT max(id) FROM ledger), (SELECT sum(balance) FROM accounts_a),"
        " (SELECT sum(balance) FROM accounts_b), nextval('ledger_id_seq')",
        copy,
    )
    assert a + b == TOTAL
    assert (ledger, last_id, a, b) == (seen["ledger"], seen["last_id"], seen["a"], seen["b"])
    assert next_id > last_id, "the ledger's sequence never hands out an id the restored rows hold"


# --- DDL while a table is read ------------------------------------------------------------------

DDL = "ALTER TABLE other ADD COLUMN x int"


def _two_tables(pg: Cluster, database: str) -> None:
    """``big`` is read first (the largest goes first, as data-000001), ``other`` after it."""
    pg.sql(f"CREATE DATABASE {database}")
    pg.sql("CREATE TABLE big AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 2000) g", database)
    pg.sql("CREATE TABLE other AS SELECT g AS id FROM generate_series(1, 10) g", database)
    pg.sql("VACUUM ANALYZE big, other", database)


class Alter:
    """``DDL`` on a session of its own, started now, finished whenever its lock is granted."""

    def __init__(self, cluster: Cluster, database: str) -> None:
        self.connection = cluster.connect(database)
        self.pid = self.connection.get_backend_pid()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="ddl", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            with self.connection.cursor() as cursor:
                cursor.execute(DDL)
        except BaseException as exc:
            self.error = exc

    def blockers(self, cluster: Cluster) -> list[str]:
        """The application names of the sessions the ALTER waits for ([] while it does not wait)."""
        rows = cluster.sql(
            "SELECT application_name FROM pg_stat_activity WHERE pid = ANY(pg_blocking_pids(%s))", params=(self.pid,)
        )
        return sorted(str(r[0]) for r in rows)

    def done(self) -> None:
        self.thread.join(timeout=60)
        self.connection.close()
        assert not self.thread.is_alive() and self.error is None, self.error


def _ddl_while_big_is_read(
    pg: Cluster, bucket: Bucket, proxy: FaultProxy, env: dict[str, str], database: str, done: list[str]
) -> tuple[int, str, Alter, list[str]]:
    """Run the backup with ``big``'s stream held, wait for the members in ``done``, then ALTER
    ``other``: how the run ended, its output, the ALTER, and whom it waited for."""
    with held_answer(proxy, "POST", object_start("data-000001")) as release:
        run = Watched(env)
        members = [f".split/{name}." for name in done]
        wait_for(
            lambda: (
                all(any(m in k for k in bucket.keys(f"cons/{database}/")) for m in members)
                or run.proc.poll() is not None
            ),
            what=f"{', '.join(done)} stored",
        )
        assert run.proc.poll() is None, "".join(run.lines)
        alter = Alter(pg, database)
        wait_for(lambda: alter.blockers(pg) or not alter.thread.is_alive(), what="the ALTER to wait for a lock")
        blockers = alter.blockers(pg)
        release.set()
        code, out = run.finish()
    alter.done()
    return code, out, alter, blockers


def test_ddl_on_a_table_not_yet_read_fails_the_backup_naming_the_table_and_the_lock(
    pg18: Cluster, bindir18: Path, bucket: Bucket, proxy: FaultProxy, dbname: str
) -> None:
    """One reader: ``other`` waits for ``big``. The ALTER queues behind the backup's lock; the
    reader's NOWAIT lock on ``other`` then refuses to queue behind the ALTER (which would
    deadlock), and the database fails at once, with no manifest."""
    _two_tables(pg18, dbname)
    env = _env(bucket, pg18, bindir18, proxy, dbname, BACKUP_DUMP_JOBS="1")

    code, out, _alter, blockers = _ddl_while_big_is_read(
        pg18, bucket, proxy, env, dbname, ["pre-data", "post-data", "large-objects", "sequences"]
    )

    assert blockers and set(blockers) == {"pgbackup"}, "the ALTER waited for the backup's sessions"
    assert code != 0, out
    [failed] = [line for line in out.splitlines() if "FAILED" in line and f"'{dbname}'" in line]
    assert f"table public.other of '{dbname}' could not be locked for reading" in failed, failed
    assert "exclusive lock" in failed and "retry when the DDL is done" in failed, failed
    assert "Traceback" not in out
    assert not [k for k in bucket.keys(f"cons/{dbname}/") if k.endswith(".manifest.json")]
    assert pg18.sql("SELECT count(*) FROM information_schema.columns WHERE table_name = 'other'", dbname) == [(2,)]


def test_ddl_on_a_table_already_read_waits_for_the_backup_which_keeps_the_snapshot(
    pg18: Cluster, bindir18: Path, bucket: Bucket, proxy: FaultProxy, dbname: str
) -> None:
    """Two readers: ``other`` is read and stored while ``big`` is still held. The ALTER waits
    until the backup ends; the backup succeeds and restores ``other`` as the snapshot saw it."""
    _two_tables(pg18, dbname)
    before = comparable_dump(pg18, bindir18, dbname)
    env = _env(bucket, pg18, bindir18, proxy, dbname, BACKUP_DUMP_JOBS="2")

    code, out, _alter, blockers = _ddl_while_big_is_read(
        pg18, bucket, proxy, env, dbname, ["data-000002", "post-data", "large-objects", "sequences"]
    )

    assert blockers and set(blockers) == {"pgbackup"}, "the ALTER waited for the backup's sessions"
    assert code == 0, out
    assert pg18.sql("SELECT count(*) FROM information_schema.columns WHERE table_name = 'other'", dbname) == [(2,)]
    copy = f"{dbname}_copy"
    restored = run_pgbackup(env, "restore", "--database", dbname, "--target", copy, "--create")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert comparable_dump(pg18, bindir18, copy) == [line.replace(dbname, copy) for line in before]


@pytest.mark.parametrize(
    "rewrite", ["TRUNCATE other; INSERT INTO other VALUES (99)", "ALTER TABLE other ALTER COLUMN id TYPE bigint"]
)
def test_a_table_rewritten_after_the_snapshot_before_the_backup_locked_it_fails_the_backup(
    rewrite: str, pg18: Cluster, bindir18: Path, bucket: Bucket, proxy: FaultProxy, dbname: str
) -> None:
    """The schema dump has ended (its locks with it) and the leader has not locked the tables
    yet: a TRUNCATE or a rewriting ALTER commits then. Its rows are invisible to the snapshot
    (neither is MVCC-safe), so reading ``other`` would store it empty, silently; the backup must
    fail instead, naming the table."""
    _two_tables(pg18, dbname)
    env = _env(bucket, pg18, bindir18, proxy, dbname, BACKUP_DUMP_JOBS="1")

    with held_answer(proxy, "POST", r"\.split/pre-data\.[a-z.]+\?uploadId=") as release:
        run = Watched(env)
        run.snapshot()
        wait_for(
            lambda: any("pre-data" in k for k in bucket.keys(f"cons/{dbname}/")) or run.proc.poll() is not None,
            what="the schema stored",
        )
        assert run.proc.poll() is None, "".join(run.lines)
        pg18.sql(rewrite, dbname)  # nothing of the backup holds a lock on it: it commits at once
        release.set()
        code, out = run.finish()

    assert code != 0, out
    [failed] = [line for line in out.splitlines() if f"backup of '{dbname}' FAILED" in line]
    assert "public.other" in failed and "after the backup's snapshot" in failed, failed
    assert not [k for k in bucket.keys(f"cons/{dbname}/") if k.endswith(".manifest.json")]
