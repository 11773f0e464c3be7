"""Acceptance tests of split backups (``BACKUP_FORMAT=split``) against real PostgreSQL and S3:
the objects and the manifest, whole round trips over several connections, and one table."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
import uuid
from pathlib import Path

import pytest

from backup_job.core.manifest import objects_digest
from devenv.postgres import Cluster

from ..kit.helpers import Bucket, comparable_dump, make_sample, manifest, run_pgbackup, signed, wait_for_next_second
from .test_encryption import identity_file

# What pg_dump handles and a split backup must too: partitions, inheritance, generated columns,
# row-level security, an unlogged table, a materialized view, a large object, sequences (owned,
# identity and free-standing), foreign keys, a CHECK constraint, and awkward names.
SHAPES = [
    "CREATE TABLE shop.customers (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL"
    " CHECK (name <> ''), doubled int GENERATED ALWAYS AS (id * 2) STORED)",
    "INSERT INTO shop.customers (name) SELECT 'c' || g FROM generate_series(1, 300) g",
    "ALTER TABLE shop.orders ADD COLUMN customer int REFERENCES shop.customers (id)",
    "UPDATE shop.orders SET customer = 1",
    "CREATE INDEX ON shop.orders (placed)",
    "CREATE TABLE events (id bigint, at date NOT NULL, what text) PARTITION BY RANGE (at)",
    "CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')",
    "CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')",
    "INSERT INTO events SELECT g, date '2025-06-01' + (g % 400), 'e' FROM generate_series(1, 2000) g",
    "CREATE TABLE animals (name text)",
    "CREATE TABLE cats (lives int) INHERITS (animals)",
    "INSERT INTO animals VALUES ('generic'); INSERT INTO cats VALUES ('tom', 9)",
    "CREATE TABLE secrets (owner_name text, secret text)",
    "ALTER TABLE secrets ENABLE ROW LEVEL SECURITY",
    "CREATE POLICY mine ON secrets USING (owner_name = current_user)",
    "INSERT INTO secrets VALUES ('nobody', 'hidden by the policy')",
    "CREATE UNLOGGED TABLE scratchpad AS SELECT g AS n FROM generate_series(1, 50) g",
    "CREATE MATERIALIZED VIEW shop.order_count AS SELECT count(*) AS n FROM shop.orders",
    "CREATE SEQUENCE free_counter START 100",
    "SELECT nextval('free_counter'), nextval('free_counter')",
    "SELECT lo_from_bytea(0, 'a large object')",
    'CREATE TABLE "Odd ""Name"".x" ("Col umn" text)',
    """INSERT INTO "Odd ""Name"".x" VALUES ('quoted'), (E'multi\\nline')""",
]


def make_shapes(cluster: Cluster, database: str) -> None:
    make_sample(cluster, database, rows=3000)
    for statement in SHAPES:
        cluster.sql(statement, database)


def _split_env(bucket: Bucket, pg: Cluster, bindir: Path, database: str, **extra: str) -> dict[str, str]:
    """Streams of 2 MiB: tables of two pages or more are objects of their own, one-page ones bundled."""
    return bucket.job_env(
        pg,
        bindir,
        "prod",
        **{
            "BACKUP_DATABASES": database,
            "BACKUP_FORMAT": "split",
            "BACKUP_GLOBALS": "false",
            "BACKUP_SPLIT_TABLE_MB": "2",
            **extra,
        },
    )


def _backup(env: dict[str, str]) -> str:
    result = run_pgbackup(env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.parametrize(("version", "store"), [("18", "seaweed"), ("15", "s3server")])
def test_split_round_trip_restores_the_database_exactly(
    version: str, store: str, request: pytest.FixtureRequest, dbname: str
) -> None:
    """PostgreSQL 18 into SeaweedFS, 15 into moto: each S3 server and each major version once."""
    pg: Cluster = request.getfixturevalue(f"pg{version}")
    bindir: Path = request.getfixturevalue(f"bindir{version}")
    server = request.getfixturevalue(store)
    bucket = Bucket(server, f"backups-{uuid.uuid4().hex[:12]}")
    server.client().create_bucket(Bucket=bucket.name)
    make_shapes(pg, dbname)
    original = comparable_dump(pg, bindir, dbname)
    env = _split_env(bucket, pg, bindir, dbname, BACKUP_DUMP_JOBS="3")
    out = _backup(env)
    assert "objects read over 3 connections" in out
    keys = bucket.keys()
    facts = manifest(bucket.get(next(k for k in keys if k.endswith(".manifest.json"))))
    assert facts["format"] == "split" and facts["format_version"] == 3
    assert {o["key"] for o in facts["objects"]} == {k for k in keys if ".split/" in k}
    assert facts["row_counts"]["public.events_2025"] + facts["row_counts"]["public.events_2026"] == 2000
    assert facts["row_counts"]["public.cats"] == 1 and facts["row_counts"]["public.animals"] == 1
    assert facts["row_counts"]['public."Odd ""Name"".x"'] == 2
    bundled = [o for o in facts["objects"] if o["section"] == "table-data"]
    assert len(bundled) == 1 and "public.cats" in bundled[0]["tables"]  # tiny tables share one object

    copy = f"{dbname}_copy"
    result = run_pgbackup(env, "restore", "--database", dbname, "--target", copy, "--create", "--jobs", "2")

    assert result.returncode == 0, result.stdout + result.stderr
    early = re.search(r"(\d+) indexes and constraints built as their tables were loaded", result.stdout)
    assert early and int(early.group(1)) == 1  # shop.customers' primary key, before the last phase
    assert comparable_dump(pg, bindir, copy) == [line.replace(dbname, copy) for line in original]
    assert pg.sql("SELECT last_value, is_called FROM free_counter", copy) == [(101, True)]
    assert pg.sql("SELECT convert_from(lo_get(oid), 'UTF8') FROM pg_largeobject_metadata", copy) == [
        ("a large object",)
    ]
    assert pg.sql("SELECT n FROM shop.order_count", copy) == [(3,)]
    assert pg.sql("SELECT count(*) FROM scratchpad", copy) == [(50,)]
    assert pg.sql("SELECT count(*) FROM secrets", copy) == [(1,)]  # as the superuser: the policy does not apply


def test_split_restore_refuses_what_it_cannot_do_whole(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str
) -> None:
    make_sample(pg18, dbname, rows=10)
    env = _split_env(bucket, pg18, bindir18, dbname)
    _backup(env)

    clean = run_pgbackup(env, "restore", "--database", dbname, "--clean")
    into_existing = run_pgbackup(env, "restore", "--database", dbname, "--target", "postgres")
    unknown_table = run_pgbackup(env, "restore", "--database", dbname, "--table", "shop.nothing", "--target", "x")

    assert clean.returncode != 0 and "--clean applies to plain backups" in clean.stdout
    assert into_existing.returncode != 0 and "add --create" in into_existing.stdout
    assert unknown_table.returncode != 0 and "holds no table 'shop.nothing'" in unknown_table.stdout


def test_one_table_is_restored_with_its_indexes_and_constraints_and_nothing_else(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str
) -> None:
    make_shapes(pg18, dbname)
    env = _split_env(bucket, pg18, bindir18, dbname)
    _backup(env)
    pg18.sql("DROP TABLE shop.orders CASCADE", dbname)

    result = run_pgbackup(env, "restore", "--database", dbname, "--table", "shop.orders", "--target", dbname)

    assert result.returncode == 0, result.stdout + result.stderr
    assert pg18.sql("SELECT count(*) FROM shop.orders", dbname) == [(3,)]
    indexes = pg18.sql("SELECT indexname FROM pg_indexes WHERE tablename = 'orders' ORDER BY 1", dbname)
    assert indexes == [("orders_pkey",), ("orders_placed_idx",)]
    constraints = pg18.sql("SELECT conname FROM pg_constraint WHERE conrelid = 'shop.orders'::regclass", dbname)
    assert ("orders_pkey",) in constraints
    assert ("orders_customer_fkey",) not in constraints  # shop.customers was not restored: skipped, and named
    assert "shop.orders -> shop.customers" in result.stdout
    assert pg18.sql("SELECT nextval('shop.orders_id_seq')", dbname) == [(4,)]  # the owned sequence, set
    again = run_pgbackup(env, "restore", "--database", dbname, "--table", "shop.orders", "--target", dbname)
    assert again.returncode != 0 and "exists already" in again.stdout


def test_one_table_into_an_empty_database_skips_and_names_foreign_keys(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str
) -> None:
    make_shapes(pg18, dbname)
    env = _split_env(bucket, pg18, bindir18, dbname)
    _backup(env)
    target = f"{dbname}_one"
    pg18.sql(f"CREATE DATABASE {target}")
    pg18.sql("CREATE SCHEMA shop", target)

    result = run_pgbackup(env, "restore", "--database", dbname, "--table", "shop.orders", "--target", target)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "foreign keys not restored" in result.stdout and "shop.orders -> shop.customers" in result.stdout
    assert pg18.sql("SELECT count(*) FROM shop.orders", target) == [(3,)]
    tables = pg18.sql(
        "SELECT relname FROM pg_class WHERE relkind = 'r' AND relnamespace = 'shop'::regnamespace", target
    )
    assert tables == [("orders",)]


def test_list_verify_and_prune_treat_a_split_backup_as_one(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str
) -> None:
    make_shapes(pg18, dbname)
    env = _split_env(bucket, pg18, bindir18, dbname)
    _backup(env)
    older = {k for k in bucket.keys() if dbname in k}
    wait_for_next_second()
    _backup(env)
    newer = {k for k in bucket.keys() if dbname in k} - older

    listed = run_pgbackup(env, "list", "--database", dbname)
    verified = run_pgbackup(env, "verify", "--database", dbname)
    pruned = run_pgbackup({**env, "BACKUP_RETENTION": "last=1"}, "prune")

    assert listed.stdout.count(f"split: {len(newer) - 1} objects") == 2, listed.stdout
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "tables with 5" in verified.stdout and "rows match" in verified.stdout
    assert pruned.returncode == 0, pruned.stdout + pruned.stderr
    assert {k for k in bucket.keys() if dbname in k} == newer  # every object of the older one, nothing else
    assert "proven" in pruned.stdout or "deleted" in pruned.stdout


def test_a_changed_object_of_a_split_backup_is_refused_by_restore_and_kept_by_prune(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str
) -> None:
    make_sample(pg18, dbname, rows=2000)
    env = _split_env(bucket, pg18, bindir18, dbname)
    _backup(env)
    older = {k for k in bucket.keys() if dbname in k}
    wait_for_next_second()
    _backup(env)
    newest = sorted(k for k in set(bucket.keys()) - older if "data-000001" in k)[0]
    data = bytearray(bucket.get(newest))
    data[len(data) // 2] ^= 0x01  # one bit, at rest, same size
    bucket.put(newest, bytes(data))

    restored = run_pgbackup(env, "restore", "--database", dbname, "--target", f"{dbname}_x", "--create")
    pruned = run_pgbackup({**env, "BACKUP_RETENTION": "last=1"}, "prune")

    assert restored.returncode != 0 and "checksum mismatch" in restored.stdout
    assert pg18.sql("SELECT 1 FROM pg_database WHERE datname = %s", params=(f"{dbname}_x",)) == []
    assert pruned.returncode != 0, pruned.stdout
    assert older <= set(bucket.keys())  # the older, good backup stays while the newest does not prove


def test_one_table_restored_beside_the_live_one_under_another_name(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str
) -> None:
    make_shapes(pg18, dbname)
    env = _split_env(bucket, pg18, bindir18, dbname)
    _backup(env)
    pg18.sql("DELETE FROM shop.orders WHERE amount IS NULL; UPDATE shop.orders SET note = 'changed'", dbname)

    result = run_pgbackup(
        env, "restore", "--database", dbname, "--table", "shop.orders", "--into", "shop.orders_before"
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert pg18.sql("SELECT count(*) FROM shop.orders", dbname) == [(2,)]  # the live table, untouched
    assert pg18.sql("SELECT count(*), count(*) FILTER (WHERE note = 'changed') FROM shop.orders_before", dbname) == [
        (3, 0)
    ]
    indexes = pg18.sql("SELECT indexname FROM pg_indexes WHERE tablename = 'orders_before' ORDER BY 1", dbname)
    assert indexes == [("orders_before_pkey",), ("orders_before_placed_idx",)]
    sequence = pg18.sql("SELECT pg_get_serial_sequence('shop.orders_before', 'id')", dbname)
    assert sequence == [("shop.orders_before_id_seq",)]
    assert pg18.sql("SELECT datname FROM pg_database WHERE datname LIKE 'pgbackup_into_%'") == []
    again = run_pgbackup(env, "restore", "--database", dbname, "--table", "shop.orders", "--into", "shop.orders")
    assert again.returncode != 0 and "exists already" in again.stdout


def test_large_tables_are_read_in_ranges_of_pages_sealed_and_compressed_with_zstd(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str, tmp_path: Path
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    pg18.sql(
        "CREATE TABLE wide AS SELECT g AS id, repeat(md5(g::text), 8) AS pad FROM generate_series(1, 40000) g", dbname
    )
    identity, recipient = identity_file(tmp_path, "key")
    env = _split_env(
        bucket,
        pg18,
        bindir18,
        dbname,
        BACKUP_SPLIT_TABLE_MB="4",  # the table has about 14 MB: four ranges, the last one open
        BACKUP_COMPRESSION="zstd",
        BACKUP_ENCRYPT_RECIPIENTS=recipient,
        BACKUP_DUMP_JOBS="2",
    )
    _backup(env)
    facts = manifest(bucket.get(next(k for k in bucket.keys() if k.endswith(".manifest.json"))))
    data = [o for o in facts["objects"] if o["section"] == "data"]

    assert len(data) >= 3 and all(o["table"] == "public.wide" for o in data)
    assert all(o["key"].endswith(".copy.zst.age") for o in data)
    assert sum(o["rows"] for o in data) == 40000 == facts["row_counts"]["public.wide"]

    copy = f"{dbname}_copy"
    result = run_pgbackup(
        {**env, "BACKUP_DECRYPT_IDENTITY_PATH": str(identity)},
        "restore",
        "--database",
        dbname,
        "--target",
        copy,
        "--create",
        "--jobs",
        "2",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert pg18.sql("SELECT count(*), count(DISTINCT id) FROM wide", copy) == [(40000, 40000)]


def test_pg_dump_options_are_honoured_by_the_readers_or_refused(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str
) -> None:
    make_shapes(pg18, dbname)
    pg18.sql("CREATE TABLE public.audit AS SELECT g FROM generate_series(1, 10) g", dbname)
    options = "--exclude-table-data=public.aud* --no-unlogged-table-data --load-via-partition-root -N shop"
    env = _split_env(bucket, pg18, bindir18, dbname, BACKUP_PG_DUMP_OPTIONS=options)
    _backup(env)
    facts = manifest(bucket.get(next(k for k in bucket.keys() if k.endswith(".manifest.json"))))
    tables = {o["table"]: o for o in facts["objects"] if o["section"] == "data"}

    assert "public.audit" not in tables and "public.scratchpad" not in tables  # data excluded
    assert not any(t.startswith("shop.") for t in tables)  # schema excluded
    assert tables["public.events_2025"]["load_into"] == ["public", "events"]
    copy = f"{dbname}_copy"
    result = run_pgbackup(env, "restore", "--database", dbname, "--target", copy, "--create")
    assert result.returncode == 0, result.stdout + result.stderr
    assert pg18.sql("SELECT count(*) FROM audit", copy) == [(0,)]  # the table, without its rows
    assert pg18.sql("SELECT count(*) FROM events", copy) == [(2000,)]

    refused = run_pgbackup({**env, "BACKUP_PG_DUMP_OPTIONS": "--inserts"})
    assert refused.returncode == 2 and "must not contain --inserts with BACKUP_FORMAT=split" in refused.stderr


def test_an_unsigned_backup_s_tables_go_into_a_database_in_use_only_when_allowed(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str
) -> None:
    make_sample(pg18, dbname, rows=10)
    # no signing at all: every complete backup is trusted, none is signed
    env = _split_env(bucket, pg18, bindir18, dbname, BACKUP_SIGNING_KEY_FILE="", BACKUP_SIGNING_PUBLIC_KEYS="")
    _backup(env)
    pg18.sql("DROP TABLE bulk", dbname)
    args = ("restore", "--database", dbname, "--table", "public.bulk", "--target", dbname)

    refused = run_pgbackup(env, *args)
    allowed = run_pgbackup(env, *args, "--allow-unsigned")

    assert refused.returncode != 0 and "is not signed: its schema's SQL would run there" in refused.stdout
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert pg18.sql("SELECT count(*) FROM bulk", dbname) == [(10,)]


def test_a_forged_sequences_object_sets_no_sequence_of_a_database_in_use(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str
) -> None:
    """A bucket writer's sequences object names a live sequence the restored table does not own:
    a restore of that table into the database in use leaves it alone."""
    make_sample(pg18, dbname, rows=10)
    pg18.sql("CREATE SEQUENCE live_counter; SELECT nextval('live_counter')", dbname)
    env = _split_env(bucket, pg18, bindir18, dbname)
    _backup(env)
    key = next(k for k in bucket.keys() if k.endswith(".manifest.json"))
    values = manifest(bucket.get(key))
    entry = next(o for o in values["objects"] if o["name"] == "sequences")
    orders = next(o for o in values["relations"].values() if o["name"] == "orders")
    owned_oid = next(oid for catalog, oid in orders["pre"] if catalog == 1259 and oid != orders["oid"])
    forged = json.dumps(
        {
            "sequences": [
                {"oid": owned_oid, "schema": "public", "name": "live_counter", "last_value": 999, "is_called": True}
            ]
        }
    ).encode()
    data = gzip.compress(forged)
    bucket.put(entry["key"], data)
    entry.update(
        compressed_bytes=len(data),
        raw_bytes=len(forged),
        sha256=hashlib.sha256(data).hexdigest(),
        block_sha256=base64.b64encode(hashlib.sha256(data).digest()).decode(),
    )
    values["compressed_bytes"] = sum(o["compressed_bytes"] for o in values["objects"])
    values["sha256"] = objects_digest(values["objects"])
    values.pop("signature", None)
    bucket.put(key, signed(values))
    pg18.sql("DROP TABLE shop.orders CASCADE", dbname)

    result = run_pgbackup(env, "restore", "--database", dbname, "--table", "shop.orders", "--target", dbname)

    assert result.returncode == 0, result.stdout + result.stderr
    assert pg18.sql("SELECT last_value FROM live_counter", dbname) == [(1,)]


def test_rows_a_policy_would_hide_fail_the_backup_unless_row_security_is_asked_for(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str
) -> None:
    """As pg_dump: a role subject to a row-level security policy cannot dump the table short."""
    role = f"{dbname}_reader"
    pg18.sql(f"CREATE DATABASE {dbname}")
    pg18.sql(f"CREATE ROLE {role} LOGIN PASSWORD 'reader-secret'")
    pg18.sql(
        "CREATE TABLE notes AS SELECT g AS id, 'n' || g AS body FROM generate_series(1, 500) g;"
        " ALTER TABLE notes ENABLE ROW LEVEL SECURITY;"
        " CREATE POLICY few ON notes USING (id <= 5);"
        f" GRANT SELECT ON notes TO {role}",
        dbname,
    )
    env = _split_env(bucket, pg18, bindir18, dbname, PGUSER=role, PGPASSWORD="reader-secret")

    refused = run_pgbackup(env)
    left = [k for k in bucket.keys() if ".split/" in k]
    asked = run_pgbackup({**env, "BACKUP_PG_DUMP_OPTIONS": "--enable-row-security"})

    assert refused.returncode == 1, refused.stdout
    assert "row-level security" in refused.stdout and "public.notes" in refused.stdout
    assert left == [], "the failed backup's objects were removed (and a run in the same second is not refused)"
    assert asked.returncode == 0, asked.stdout + asked.stderr
    facts = manifest(bucket.get(sorted(k for k in bucket.keys() if k.endswith(".manifest.json"))[-1]))
    assert facts["row_counts"]["public.notes"] == 5  # what the policy lets the role see, as asked


def test_rows_load_as_their_table_s_owner(pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str) -> None:
    """A CHECK constraint that holds only for its owner: the restore as a superuser loads the rows
    with SET SESSION AUTHORIZATION to that owner, as a plain dump's SQL does."""
    owner = f"{dbname}_owner"
    pg18.sql(f"CREATE ROLE {owner}")
    pg18.sql(f"CREATE DATABASE {dbname} OWNER {owner}")
    pg18.sql(
        f"SET ROLE {owner};"
        " CREATE FUNCTION loaded_by_owner() RETURNS boolean LANGUAGE sql"
        f" AS $$ SELECT current_user = '{owner}' $$;"
        " CREATE TABLE t (n int CHECK (loaded_by_owner()));"
        " INSERT INTO t SELECT generate_series(1, 100)",
        dbname,
    )
    env = _split_env(bucket, pg18, bindir18, dbname)
    _backup(env)
    copy = f"{dbname}_copy"

    refused = run_pgbackup(env, "restore", "--database", dbname, "--target", copy, "--create")
    result = run_pgbackup(env, "restore", "--database", dbname, "--target", copy, "--create", "--as-superuser")

    assert refused.returncode != 0 and "--as-superuser" in refused.stdout  # the owners gate, as for plain
    assert result.returncode == 0, result.stdout + result.stderr
    assert pg18.sql("SELECT count(*) FROM t", copy) == [(100,)]


@pytest.fixture
def extension_with_a_configuration_table(bindir18: Path) -> str:
    """An extension whose table holds rows it installs and rows users add (only the latter are
    dumped: ``pg_extension_config_dump`` with a filter)."""
    name = "pgbackup_test_config"
    folder = bindir18.parent / "share" / "extension"
    (folder / f"{name}.control").write_text("default_version = '1.0'\nrelocatable = false\nschema = public\n")
    (folder / f"{name}--1.0.sql").write_text(
        "CREATE TABLE settings (key text PRIMARY KEY, value text, user_defined boolean DEFAULT true);\n"
        "INSERT INTO settings VALUES ('shipped', 'by the extension', false);\n"
        "SELECT pg_catalog.pg_extension_config_dump('settings', 'WHERE user_defined');\n"
    )
    return name


def test_an_extension_s_configuration_rows_are_dumped_with_its_filter(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str, extension_with_a_configuration_table: str
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    pg18.sql(f"CREATE EXTENSION {extension_with_a_configuration_table}", dbname)
    pg18.sql("INSERT INTO settings (key, value) VALUES ('mine', 'set by a user')", dbname)
    env = _split_env(bucket, pg18, bindir18, dbname)
    _backup(env)
    copy = f"{dbname}_copy"

    result = run_pgbackup(env, "restore", "--database", dbname, "--target", copy, "--create")

    assert result.returncode == 0, result.stdout + result.stderr
    rows = pg18.sql("SELECT key, user_defined FROM settings ORDER BY key", copy)
    assert rows == [("mine", True), ("shipped", False)]  # one from the extension, one from the backup
