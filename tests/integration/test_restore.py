"""Acceptance tests of ``pgbackup list`` and ``pgbackup restore`` against real PostgreSQL 18
and a real S3 server: round trips, --clean, refusals, tampering, and the globals."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from backup_job.core.layout import format_timestamp
from devenv.postgres import Cluster

from ..kit.helpers import Bucket, comparable_dump, make_sample, manifest, run_pgbackup, wait_for_next_second


def _backup(bucket: Bucket, pg: Cluster, bindir: Path, *databases: str, **extra: str) -> None:
    result = run_pgbackup(bucket.job_env(pg, bindir, "prod", BACKUP_DATABASES=",".join(databases), **extra))
    assert result.returncode == 0, result.stdout + result.stderr


def _database_facts(pg: Cluster, name: str) -> list[tuple[object, ...]]:
    """Owner, encoding, locale, connection limit, comment, ACL and settings of a database."""
    return pg.sql(
        "SELECT pg_get_userbyid(d.datdba), pg_encoding_to_char(d.encoding), d.datcollate, d.datctype,"
        " d.datconnlimit, shobj_description(d.oid, 'pg_database'),"
        " (SELECT array_agg(a.privilege_type || ':' || coalesce(r.rolname, 'PUBLIC') ORDER BY 1)"
        "    FROM aclexplode(d.datacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee),"
        " (SELECT array_agg(coalesce(r.rolname, '-') || ':' || c ORDER BY 1) FROM pg_db_role_setting s"
        "    LEFT JOIN pg_roles r ON r.oid = s.setrole, unnest(s.setconfig) c WHERE s.setdatabase = d.oid)"
        " FROM pg_database d WHERE d.datname = %s",
        params=(name,),
    )


def test_round_trip_into_another_name_and_the_same_name(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str
) -> None:
    make_sample(pg18, dbname, rows=20_000)
    owner = f"{dbname}_owner"
    pg18.sql(f"CREATE ROLE {owner}; CREATE ROLE {owner}_app")
    pg18.sql(f"ALTER DATABASE {dbname} OWNER TO {owner}")
    pg18.sql(f"ALTER DATABASE {dbname} SET work_mem = '12MB'")
    pg18.sql(f'ALTER DATABASE {dbname} SET search_path = "$user", shop, public')
    pg18.sql(f"ALTER ROLE {owner}_app IN DATABASE {dbname} SET statement_timeout = '5s'")
    pg18.sql(
        f"REVOKE ALL ON DATABASE {dbname} FROM PUBLIC; GRANT CONNECT, TEMPORARY ON DATABASE {dbname} TO {owner}_app"
    )
    pg18.sql(f"ALTER DATABASE {dbname} WITH CONNECTION LIMIT 42")
    pg18.sql(f"COMMENT ON DATABASE {dbname} IS 'orders, ''quoted'''")
    original = comparable_dump(pg18, bindir18, dbname)
    facts = _database_facts(pg18, dbname)
    _backup(bucket, pg18, bindir18, dbname)
    env = bucket.job_env(pg18, bindir18, "prod")

    copy = f"{dbname}_copy"
    result = run_pgbackup(env, "restore", "--database", dbname, "--target", copy, "--create")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "sha256 verified" in result.stdout
    assert comparable_dump(pg18, bindir18, copy) == original
    assert _database_facts(pg18, copy) == facts, "owner, settings, GRANTs, limit and comment come back"

    pg18.sql(f"DROP DATABASE {dbname}")
    result = run_pgbackup(env, "restore", "--database", dbname, "--create")

    assert result.returncode == 0, result.stdout + result.stderr
    assert comparable_dump(pg18, bindir18, dbname) == original
    assert _database_facts(pg18, dbname) == facts


def test_refuses_a_non_empty_target_and_clean_replaces_it(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str
) -> None:
    make_sample(pg18, dbname, rows=5_000)
    pg18.sql("CREATE EXTENSION IF NOT EXISTS pg_trgm", dbname)
    original = comparable_dump(pg18, bindir18, dbname)
    _backup(bucket, pg18, bindir18, dbname)
    pg18.sql(
        "DELETE FROM bulk WHERE id > 10; CREATE SCHEMA extra; CREATE TABLE extra.t (x int);"
        " CREATE TABLE public.added (y int); DROP EXTENSION pg_trgm",
        dbname,
    )
    changed = comparable_dump(pg18, bindir18, dbname)
    env = bucket.job_env(pg18, bindir18, "prod")

    refused = run_pgbackup(env, "restore", "--database", dbname)

    assert refused.returncode == 1
    assert f"database '{dbname}' is not empty" in refused.stdout and "--clean" in refused.stdout
    assert comparable_dump(pg18, bindir18, dbname) == changed, "a refused restore changes nothing"

    cleaned = run_pgbackup(env, "restore", "--database", dbname, "--clean")

    assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
    assert comparable_dump(pg18, bindir18, dbname) == original


def test_not_found_errors_are_one_line(pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    _backup(bucket, pg18, bindir18, dbname)
    env = bucket.job_env(pg18, bindir18, "prod")

    unknown = run_pgbackup(env, "restore", "--database", f"{dbname}_nope", "--create")
    missing_target = run_pgbackup(env, "restore", "--database", dbname, "--target", f"{dbname}_absent")
    too_early = run_pgbackup(env, "restore", "--database", dbname, "--at", "2020-01-01", "--target", "x", "--create")
    bad_time = run_pgbackup(env, "restore", "--database", dbname, "--at", "yesterday")

    assert unknown.returncode == 1 and f"no complete backup of '{dbname}_nope'" in unknown.stdout
    assert missing_target.returncode == 1 and "does not exist" in missing_target.stdout
    assert "add --create" in missing_target.stdout
    assert too_early.returncode == 1 and "at or before 2020-01-01T23:59:59" in too_early.stdout
    assert bad_time.returncode == 2 and "--at 'yesterday' is not a time" in bad_time.stderr
    for result in (unknown, missing_target, too_early):
        assert len(result.stdout.strip().splitlines()) == 1, result.stdout
        assert "Traceback" not in result.stdout + result.stderr


def test_at_picks_the_newest_backup_at_or_before_the_time(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    pg18.sql("CREATE TABLE v (n int); INSERT INTO v VALUES (1)", dbname)
    _backup(bucket, pg18, bindir18, dbname)
    first = next(k for k in bucket.keys("prod/") if k.startswith(f"prod/{dbname}/") and k.endswith(".gz"))
    stamp = first.split("/")[-1].removesuffix(".sql.gz")
    # A second, later backup under a later timestamp: the same object copied as a later run.
    later = "29991231T000000Z"
    data = manifest(bucket.get(first.replace(".sql.gz", ".manifest.json")))
    pg18.sql("UPDATE v SET n = 2", dbname)
    wait_for_next_second()
    _backup(bucket, pg18, bindir18, dbname)
    second = max(k for k in bucket.keys(f"prod/{dbname}/") if k.endswith(".gz"))
    assert second != first
    data_second = manifest(bucket.get(second.replace(".sql.gz", ".manifest.json")))
    assert data["sha256"] != data_second["sha256"]
    env = bucket.job_env(pg18, bindir18, "prod")

    old = run_pgbackup(env, "restore", "--database", dbname, "--at", stamp, "--target", f"{dbname}_old", "--create")
    new = run_pgbackup(env, "restore", "--database", dbname, "--at", later, "--target", f"{dbname}_new", "--create")

    assert old.returncode == 0 and new.returncode == 0, old.stdout + new.stdout
    assert pg18.sql("SELECT n FROM v", f"{dbname}_old") == [(1,)]
    assert pg18.sql("SELECT n FROM v", f"{dbname}_new") == [(2,)]


def test_tampered_object_fails_with_the_checksum_and_changes_nothing(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str
) -> None:
    make_sample(pg18, dbname, rows=20_000)
    _backup(bucket, pg18, bindir18, dbname)
    key = next(k for k in bucket.keys(f"prod/{dbname}/") if k.endswith(".sql.gz"))
    data = bytearray(bucket.get(key))
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])
    bucket.put(key, bytes(data))  # same size, different bytes
    empty = f"{dbname}_empty"
    pg18.sql(f"CREATE DATABASE {empty}")
    env = bucket.job_env(pg18, bindir18, "prod")

    into_new = run_pgbackup(env, "restore", "--database", dbname, "--target", f"{dbname}_new", "--create")
    into_empty = run_pgbackup(env, "restore", "--database", dbname, "--target", empty)
    drill = run_pgbackup(env, "verify", "--database", dbname)

    for result in (into_new, into_empty, drill):
        assert result.returncode == 1, result.stdout + result.stderr
        assert "checksum mismatch" in result.stdout, result.stdout
        assert "Traceback" not in result.stdout + result.stderr
    assert pg18.sql("SELECT 1 FROM pg_database WHERE datname = %s", params=(f"{dbname}_new",)) == []
    tables = pg18.sql(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')",
        empty,
    )
    assert tables == [(0,)], "the load ran in a transaction that never committed"
    assert pg18.sql("SELECT datname FROM pg_database WHERE datname LIKE 'pgbackup_verify_%'") == []


def test_list_shows_backups_newest_first_and_incomplete_ones(
    pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    _backup(bucket, pg18, bindir18, dbname)
    key = next(k for k in bucket.keys(f"prod/{dbname}/") if k.endswith(".sql.gz"))
    later = format_timestamp(datetime.now(UTC) + timedelta(minutes=5))  # newest, within the clock skew
    orphan = f"prod/{dbname}/{later}.sql.gz"
    bucket.put(orphan, b"half an upload")
    bucket.put("prod/notes.txt", b"not ours")
    env = bucket.job_env(pg18, bindir18, "prod")

    text = run_pgbackup(env, "list", "--database", dbname)
    as_json = run_pgbackup(env, "list", "--json")

    assert text.returncode == 0 and as_json.returncode == 0, text.stdout + as_json.stdout
    lines = text.stdout.splitlines()
    assert lines[0].split() == ["DATABASE", "TIMESTAMP", "SIZE", "SHA256", "ENCRYPTED", "STATE"]
    assert later in lines[1] and "incomplete: dump object without a manifest" in lines[1]
    assert key.split("/")[-1].removesuffix(".sql.gz") in lines[2] and lines[2].endswith(
        "complete, signed (fc16885beacd577b)"
    )
    rows = json.loads(as_json.stdout)
    ours = [r for r in rows if r["database"] == dbname]
    assert [r["complete"] for r in ours] == [False, True]
    assert ours[1]["sha256"] == manifest(bucket.get(key.replace(".sql.gz", ".manifest.json")))["sha256"]
    assert any(r["kind"] == "globals" and r["complete"] for r in rows)
    assert all("notes" not in (r["key"] or "") for r in rows), "foreign objects are not listed"


def test_globals_round_trip_restores_roles_with_their_grants(
    fresh_pg18: Cluster, bindir18: Path, bucket: Bucket
) -> None:
    pg = fresh_pg18
    pg.sql("CREATE ROLE readers NOLOGIN")
    pg.sql("CREATE ROLE app_owner NOLOGIN")
    pg.sql("CREATE ROLE analyst LOGIN PASSWORD 'analyst-pass' CONNECTION LIMIT 3 IN ROLE readers")
    pg.sql("ALTER ROLE analyst SET statement_timeout = '30s'")
    pg.sql("CREATE DATABASE app OWNER app_owner")
    pg.sql(
        "CREATE TABLE public.accounts (id int); INSERT INTO accounts VALUES (1), (2);"
        " ALTER TABLE accounts OWNER TO app_owner; GRANT SELECT ON accounts TO readers",
        "app",
    )
    pg.sql("GRANT CONNECT ON DATABASE app TO readers")
    _backup(bucket, pg, bindir18, "app")
    globals_manifest = manifest(bucket.get(next(k for k in bucket.keys("prod/_globals/") if k.endswith(".json"))))
    assert globals_manifest["kind"] == "globals" and globals_manifest["role_passwords"] is True
    pg.sql("DROP DATABASE app")
    pg.sql("DROP ROLE analyst; DROP ROLE readers; DROP ROLE app_owner")
    env = bucket.job_env(pg, bindir18, "prod")

    without_roles = run_pgbackup(env, "restore", "--database", "app", "--create")
    roles = run_pgbackup(env, "restore", "--globals")
    database = run_pgbackup(env, "restore", "--database", "app", "--create", "--as-superuser")  # app_owner's objects

    assert without_roles.returncode == 1 and "restore --globals" in without_roles.stdout, without_roles.stdout
    assert roles.returncode == 0, roles.stdout + roles.stderr
    assert database.returncode == 0, database.stdout + database.stderr
    assert pg.sql("SELECT rolcanlogin, rolconnlimit, rolconfig FROM pg_roles WHERE rolname = 'analyst'") == [
        (True, 3, ["statement_timeout=30s"])
    ]
    assert pg.sql("SELECT pg_has_role('analyst', 'readers', 'MEMBER')") == [(True,)]
    assert pg.sql(
        "SELECT has_table_privilege('analyst', 'public.accounts', 'SELECT'),"
        " has_database_privilege('analyst', 'app', 'CONNECT'),"
        " (SELECT tableowner FROM pg_tables WHERE tablename = 'accounts')",
        "app",
    ) == [(True, True, "app_owner")]
    analyst = pg.connect("app", user="analyst", password="analyst-pass")  # the password came back too
    try:
        cursor = analyst.cursor()
        cursor.execute("SELECT count(*) FROM accounts")
        assert cursor.fetchone() == (2,)
    finally:
        analyst.close()


def test_globals_fall_back_to_no_passwords_when_they_cannot_be_read(
    fresh_pg18: Cluster, bindir18: Path, bucket: Bucket
) -> None:
    pg = fresh_pg18
    pg.sql("CREATE ROLE agent LOGIN PASSWORD 'agent-pass'")  # like a managed service's admin: no pg_authid
    pg.sql("CREATE DATABASE small OWNER agent")

    result = run_pgbackup(
        bucket.job_env(pg, bindir18, "prod", BACKUP_DATABASES="small", PGUSER="agent", PGPASSWORD="agent-pass")
    )

    assert result.returncode == 0, result.stdout + result.stderr
    warning = [line for line in result.stdout.splitlines() if "WARNING" in line and "role passwords" in line]
    assert warning and "pg_authid" in warning[0]
    globals_key = next(k for k in bucket.keys("prod/_globals/") if k.endswith(".json"))
    assert manifest(bucket.get(globals_key))["role_passwords"] is False
    listing = run_pgbackup(bucket.job_env(pg, bindir18, "prod"), "list")
    assert "without role passwords" in listing.stdout


def test_restore_names_the_newer_dump_without_a_manifest_it_passed_over(
    pg18: Cluster, bindir18: Path, any_bucket: Bucket, dbname: str
) -> None:
    """On moto and SeaweedFS: the newest dump has no manifest (a run died between its writes);
    the older complete backup is restored, and the newer dump is named, not passed over in silence."""
    pg18.sql(f"CREATE DATABASE {dbname}")
    _backup(any_bucket, pg18, bindir18, dbname)
    later = format_timestamp(datetime.now(UTC) + timedelta(minutes=5))  # newest, within the clock skew
    any_bucket.put(f"prod/{dbname}/{later}.sql.gz", b"half an upload")
    env = any_bucket.job_env(pg18, bindir18, "prod")

    result = run_pgbackup(env, "restore", "--database", dbname, "--target", f"{dbname}_copy", "--create")

    assert result.returncode == 0, result.stdout + result.stderr
    [warning] = [line for line in result.stdout.splitlines() if "WARNING" in line]
    assert f"the backup of '{dbname}' from {later} is not restored" in warning
    assert "incomplete: dump object without a manifest" in warning
    pg18.sql(f"DROP DATABASE {dbname}_copy")
