"""A database owner's code never runs with pgbackup's rights: the drill's isolation, and who
may restore a database.

The tenant is a login role without privileges that owns one database and writes what any
owner may: a CHECK constraint calling its own function, which turns a session started by a
superuser back into the superuser's (``RESET SESSION AUTHORIZATION``:
pg_dump's per-object ``SET SESSION AUTHORIZATION`` is no barrier) and tries ``ALTER ROLE
tenant SUPERUSER``. Restoring a dump runs that function for every row, so whoever restores
the dump runs the tenant's code. The tests prove the tenant never becomes a superuser: the
drill refuses the backed-up server unless told otherwise, a superuser restores a database of
roles that are not superusers only when told so (``--as-superuser``), and the owner restores
its own database without asking.
"""

from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path

import psycopg2

from devenv.postgres import Cluster

from ..kit.helpers import job_env, run_pgbackup, signed

TENANT_SQL = """
CREATE FUNCTION public.chk(id int) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        EXECUTE 'RESET SESSION AUTHORIZATION';  -- back to whoever started the session
    EXCEPTION WHEN insufficient_privilege THEN NULL;
    END;
    BEGIN
        EXECUTE 'ALTER ROLE {tenant} SUPERUSER';
    EXCEPTION WHEN insufficient_privilege THEN NULL;
    END;
    RETURN true;
END $$;
CREATE TABLE orders (id int CHECK (public.chk(id)));
INSERT INTO orders VALUES (1), (2);
"""


def _tenant(cluster: Cluster, database: str) -> str:
    tenant = f"{database}_owner"
    cluster.sql(f"CREATE ROLE {tenant} LOGIN PASSWORD 'tenant-secret'")
    cluster.sql(f"CREATE DATABASE {database} OWNER {tenant}")
    cluster.sql(f"GRANT CREATE ON SCHEMA public TO {tenant}", database)
    cluster.sql(f"ALTER SCHEMA public OWNER TO {tenant}", database)
    with (
        closing(
            psycopg2.connect(
                host=cluster.host, port=cluster.port, user=tenant, password="tenant-secret", dbname=database
            )
        ) as connection,
        connection.cursor() as cursor,
    ):
        cursor.execute(TENANT_SQL.format(tenant=tenant))  # as the tenant: its own session, its own rights
        connection.commit()
    assert not _superuser(cluster, tenant)
    return tenant


def _superuser(cluster: Cluster, role: str) -> bool:
    return bool(cluster.sql("SELECT rolsuper FROM pg_roles WHERE rolname = %s", params=(role,))[0][0])


def test_the_drill_refuses_the_backed_up_server_and_runs_on_a_scratch_server(
    pg18: Cluster,
    fresh_pg18: Cluster,
    bindir18: Path,
    dbname: str,
    tmp_path: Path,
) -> None:
    tenant = _tenant(pg18, dbname)
    env = job_env(pg18, f"file://{tmp_path}/b", bindir18, BACKUP_DATABASES=dbname)
    env.pop("BACKUP_VERIFY_ON_BACKUP_SERVER")
    assert run_pgbackup(env).returncode == 0

    refused = run_pgbackup(env, "verify")
    fresh_pg18.sql(f"CREATE ROLE {tenant} LOGIN")  # the roles come first to a scratch server (restore --globals)
    scratch = {
        "BACKUP_VERIFY_PGHOST": fresh_pg18.host,
        "BACKUP_VERIFY_PGPORT": str(fresh_pg18.port),
        "BACKUP_VERIFY_PGUSER": "postgres",
        "BACKUP_VERIFY_PGPASSWORD": fresh_pg18.password,
    }
    drilled = run_pgbackup({**env, **scratch}, "verify")
    same = {
        "BACKUP_VERIFY_PGHOST": pg18.host,
        "BACKUP_VERIFY_PGPORT": str(pg18.port),
        "BACKUP_VERIFY_PGUSER": "postgres",
        "BACKUP_VERIFY_PGPASSWORD": pg18.password,
    }
    disguised = run_pgbackup({**env, **same}, "verify")

    assert refused.returncode == 1 and "no scratch server is configured" in refused.stdout, refused.stdout
    assert drilled.returncode == 0, drilled.stdout
    assert disguised.returncode == 1 and "the scratch server is the server it was taken from" in disguised.stdout
    assert not _superuser(pg18, tenant), "the backed-up server never ran the tenant's code as a superuser"


def test_a_superuser_restores_a_tenants_database_only_when_told(
    pg18: Cluster,
    bindir18: Path,
    dbname: str,
    tmp_path: Path,
) -> None:
    tenant = _tenant(pg18, dbname)
    env = job_env(pg18, f"file://{tmp_path}/b", bindir18, BACKUP_DATABASES=dbname)
    assert run_pgbackup(env).returncode == 0
    [path] = (tmp_path / "b" / dbname).glob("*.manifest.json")
    assert json.loads(path.read_text())["owners"] == [tenant]

    into_own = run_pgbackup(env, "restore", "--database", dbname, "--clean")
    into_new = run_pgbackup(env, "restore", "--database", dbname, "--target", f"{dbname}_r", "--create")

    for refused in (into_own, into_new):
        assert refused.returncode == 1, refused.stdout
        assert f"holds objects of roles that are not superusers ({tenant!r})" in refused.stdout
        assert "--as-superuser" in refused.stdout
    assert not _superuser(pg18, tenant)
    assert pg18.sql("SELECT count(*) FROM orders", dbname) == [(2,)], "the refused --clean dropped nothing"

    told = run_pgbackup(env, "restore", "--database", dbname, "--target", f"{dbname}_s", "--create", "--as-superuser")

    assert told.returncode == 0, told.stdout
    assert _superuser(pg18, tenant), "the tenant's code took the superuser's session: why it takes --as-superuser"
    pg18.sql(f"ALTER ROLE {tenant} NOSUPERUSER")


def test_the_owner_restores_its_own_database_and_gains_nothing(
    pg18: Cluster,
    bindir18: Path,
    dbname: str,
    tmp_path: Path,
) -> None:
    tenant = _tenant(pg18, dbname)
    env = job_env(pg18, f"file://{tmp_path}/b", bindir18, BACKUP_DATABASES=dbname, BACKUP_GLOBALS="false")
    assert run_pgbackup(env).returncode == 0
    pg18.sql("DELETE FROM orders WHERE id = 2", dbname)
    as_owner = {**env, "PGUSER": tenant, "PGPASSWORD": "tenant-secret"}

    restored = run_pgbackup(as_owner, "restore", "--database", dbname, "--clean")

    assert restored.returncode == 0, restored.stdout
    assert pg18.sql("SELECT count(*) FROM orders", dbname) == [(2,)]
    assert not _superuser(pg18, tenant)


def test_a_manifest_from_before_owners_were_recorded_is_refused_the_same_way(
    pg18: Cluster,
    bindir18: Path,
    dbname: str,
    tmp_path: Path,
) -> None:
    _tenant(pg18, dbname)
    env = job_env(pg18, f"file://{tmp_path}/b", bindir18, BACKUP_DATABASES=dbname, BACKUP_GLOBALS="false")
    assert run_pgbackup(env).returncode == 0
    [path] = (tmp_path / "b" / dbname).glob("*.manifest.json")
    facts = json.loads(path.read_text())
    del facts["owners"]  # as pgbackup wrote manifests before it recorded owners
    path.write_bytes(signed(facts))

    refused = run_pgbackup(env, "restore", "--database", dbname, "--target", f"{dbname}_r", "--create")

    assert refused.returncode == 1 and "roles it does not record" in refused.stdout, refused.stdout


def test_a_database_owned_by_superusers_only_restores_without_asking(
    pg18: Cluster,
    bindir18: Path,
    dbname: str,
    tmp_path: Path,
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    pg18.sql("CREATE TABLE t AS SELECT 1 AS x", dbname)
    env = job_env(pg18, f"file://{tmp_path}/b", bindir18, BACKUP_DATABASES=dbname, BACKUP_GLOBALS="false")
    assert run_pgbackup(env).returncode == 0

    restored = run_pgbackup(env, "restore", "--database", dbname, "--target", f"{dbname}_r", "--create")

    assert restored.returncode == 0, restored.stdout
