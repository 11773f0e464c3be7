"""Attacks on pgbackup by whoever owns a database, or can write the backups, against real
PostgreSQL 18 and the real ``pgbackup`` command.

A tenant (a login role, not a superuser) owns a database and plants, in its ``public``
schema, functions, aggregates and operators that shadow pg_catalog's: each one, when called,
logs its caller and tries ``ALTER ROLE <tenant> SUPERUSER``, which only succeeds when the
caller is a superuser, as pgbackup's role often is. Some shadows match their arguments better
than pg_catalog's own (``=`` for ``oid, integer``, ``jsonb_agg(jsonb)``), so they win even
where pg_catalog comes first in the search_path; the others win once the database (or the
pgbackup role in it) puts ``public`` before ``pg_catalog``. Every command pgbackup runs must
leave the tenant as it was. Forged manifests (a bucket writer's attack) must be refused with
one clear line, never spliced into SQL or reapplied.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from backup_job.pg import databases, dbprops, discovery
from backup_job.pg.target import Target
from devenv.postgres import SUPERUSER, Cluster

from ..kit.helpers import SIGNED, job_env, run_pgbackup, wait_for_next_second

TENANT_PASSWORD = "tenant-secret"
HOSTILE_PATH = "public, pg_catalog"

# What the tenant plants: every shadow runs hijack(), a SECURITY INVOKER function that logs its
# caller and tries to make the tenant a superuser (which works only for a superuser caller).
PLANT = r"""
CREATE TABLE public.hijack_log (what text, caller name);
GRANT INSERT ON public.hijack_log TO PUBLIC;
CREATE FUNCTION public.hijack(what text) RETURNS void LANGUAGE plpgsql SECURITY INVOKER AS $$
BEGIN
    INSERT INTO public.hijack_log (what, caller) VALUES (what, current_user);
    BEGIN
        EXECUTE 'ALTER ROLE {tenant} SUPERUSER';
    EXCEPTION WHEN insufficient_privilege THEN NULL;
    END;
END $$;

CREATE FUNCTION public.format(text, name) RETURNS text LANGUAGE plpgsql AS
    $$ BEGIN PERFORM public.hijack('format'); RETURN pg_catalog.format($1, $2); END $$;
CREATE FUNCTION public.format(text, text) RETURNS text LANGUAGE plpgsql AS
    $$ BEGIN PERFORM public.hijack('format'); RETURN pg_catalog.format($1, $2); END $$;
CREATE FUNCTION public.format(text, text, text, text) RETURNS text LANGUAGE plpgsql AS
    $$ BEGIN PERFORM public.hijack('format'); RETURN pg_catalog.format($1, $2, $3, $4); END $$;
CREATE FUNCTION public.quote_ident(name) RETURNS text LANGUAGE plpgsql AS
    $$ BEGIN PERFORM public.hijack('quote_ident'); RETURN pg_catalog.quote_ident($1); END $$;
CREATE FUNCTION public.quote_ident(text) RETURNS text LANGUAGE plpgsql AS
    $$ BEGIN PERFORM public.hijack('quote_ident'); RETURN pg_catalog.quote_ident($1); END $$;
CREATE FUNCTION public.current_setting(text) RETURNS text LANGUAGE plpgsql AS
    $$ BEGIN PERFORM public.hijack('current_setting'); RETURN pg_catalog.current_setting($1); END $$;
CREATE FUNCTION public.jsonb_build_object(text, name, text, text, text, boolean) RETURNS jsonb LANGUAGE plpgsql AS
    $$ BEGIN PERFORM public.hijack('jsonb_build_object');
             RETURN pg_catalog.jsonb_build_object($1, $2, $3, $4, $5, $6); END $$;
CREATE FUNCTION public.jsonb_build_object(text, name, text, text[]) RETURNS jsonb LANGUAGE plpgsql AS
    $$ BEGIN PERFORM public.hijack('jsonb_build_object'); RETURN pg_catalog.jsonb_build_object($1, $2, $3, $4); END $$;

CREATE FUNCTION public.hijack_count(bigint) RETURNS bigint LANGUAGE plpgsql AS
    $$ BEGIN PERFORM public.hijack('count'); RETURN $1 OPERATOR(pg_catalog.+) 1; END $$;
CREATE AGGREGATE public.count(*) (SFUNC = public.hijack_count, STYPE = bigint, INITCOND = '0');
CREATE FUNCTION public.hijack_jsonb_agg(jsonb, jsonb) RETURNS jsonb LANGUAGE plpgsql AS
    $$ BEGIN PERFORM public.hijack('jsonb_agg');
             RETURN coalesce($1, '[]'::jsonb) OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_array($2); END $$;
CREATE AGGREGATE public.jsonb_agg(jsonb) (SFUNC = public.hijack_jsonb_agg, STYPE = jsonb);

CREATE FUNCTION public.hijack_oid_int(oid, integer) RETURNS boolean LANGUAGE plpgsql AS
    $$ BEGIN PERFORM public.hijack('= (oid, integer)'); RETURN $1 OPERATOR(pg_catalog.=) $2::oid; END $$;
CREATE OPERATOR public.= (LEFTARG = oid, RIGHTARG = integer, FUNCTION = public.hijack_oid_int);
CREATE FUNCTION public.hijack_oid_regclass(oid, regclass) RETURNS boolean LANGUAGE plpgsql AS
    $$ BEGIN PERFORM public.hijack('= (oid, regclass)'); RETURN $1 OPERATOR(pg_catalog.=) $2::oid; END $$;
CREATE OPERATOR public.= (LEFTARG = oid, RIGHTARG = regclass, FUNCTION = public.hijack_oid_regclass);
{operators}
CREATE TABLE public.t (id int);
INSERT INTO public.t SELECT g FROM pg_catalog.generate_series(1, 25) g;
""".replace(
    "{operators}",
    "".join(
        # Shadows of the comparisons pgbackup's catalog queries make, each passing on to the real one.
        f"CREATE FUNCTION public.hijack_{left}_{name}({left}, {right}) RETURNS boolean LANGUAGE plpgsql AS\n"
        f"    $$ BEGIN PERFORM public.hijack('{op} ({left}, {right})');\n"
        f"         RETURN $1 OPERATOR(pg_catalog.{op}) $2; END $$;\n"
        f"CREATE OPERATOR public.{op} (LEFTARG = {left}, RIGHTARG = {right}, FUNCTION = public.hijack_{left}_{name});\n"
        for name, op, left, right in (
            ("ne", "<>", "oid", "oid"),
            ("eq", "=", "name", "name"),
            ("ne", "<>", "name", "name"),
            ("nregex", "!~", "name", "text"),
            ("eq", "=", "text", "text"),
            ("ne", "<>", "text", "text"),
        )
    ),
)


def _query(cluster: Cluster, database: str, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """One statement of the test's own, as the superuser, safe from the tenant's search_path."""
    return cluster.sql(statement, database, params, search_path="pg_catalog,pg_temp")


@dataclass
class Tenant:
    """A tenant's database on ``cluster``, with its shadows planted, and where its backups go."""

    cluster: Cluster
    role: str
    database: str
    destination: Path

    forged: bool = False  # a manifest was rewritten: read without keys, as a forger would need

    def env(self, bindir: Path, **extra: str) -> dict[str, str]:
        env = job_env(self.cluster, f"file://{self.destination}", bindir, BACKUP_GLOBALS="false", **extra)
        return {k: v for k, v in env.items() if k not in SIGNED} if self.forged else env

    def plant(self, database: str) -> None:
        connection = self.cluster.connect(database, user=self.role, password=TENANT_PASSWORD)
        try:
            with connection.cursor() as cursor:
                cursor.execute(PLANT.replace("{tenant}", self.role))
        finally:
            connection.close()

    def is_superuser(self) -> bool:
        return bool(
            _query(
                self.cluster,
                "postgres",
                "SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) %s",
                (self.role,),
            )[0][0]
        )

    def hijacked_calls(self, database: str) -> list[tuple[Any, ...]]:
        """The shadows that ran for anyone but the tenant itself."""
        return _query(
            self.cluster,
            database,
            "SELECT DISTINCT what, caller FROM public.hijack_log WHERE caller OPERATOR(pg_catalog.<>) %s ORDER BY 1",
            (self.role,),
        )

    def assert_armed(self, database: str) -> None:
        """The shadows do fire in ``database`` (here for the tenant itself, so harmlessly)."""
        connection = self.cluster.connect(database, user=self.role, password=TENANT_PASSWORD)
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM pg_catalog.pg_class WHERE relname <> 'x'")
                cursor.execute("SELECT DISTINCT what FROM public.hijack_log ORDER BY 1")
                assert cursor.fetchall() == [("<> (name, name)",), ("count",)]
        finally:
            connection.close()

    def assert_untouched(self, *databases: str) -> None:
        assert not self.is_superuser(), "pgbackup ran the tenant's code as a superuser"
        for database in databases:
            assert self.hijacked_calls(database) == [], f"pgbackup called the tenant's shadows in {database}"

    def manifest_path(self) -> Path:
        [path] = sorted((self.destination / self.database).glob("*.manifest.json"))[-1:]
        return path

    def forge(self, change: Any) -> None:
        """Rewrite the newest manifest as a bucket writer could (the dump and its sha256 stay)."""
        path = self.manifest_path()
        data = json.loads(path.read_bytes())
        change(data)
        path.write_text(json.dumps(data))
        self.forged = True  # with keys the forgery is simply untrusted: these tests watch what lies behind


def _tenant(cluster: Cluster, dbname: str, destination: Path) -> Tenant:
    tenant = Tenant(cluster, f"{dbname}_tenant", dbname, destination)
    cluster.sql(f"CREATE ROLE {tenant.role} LOGIN PASSWORD '{TENANT_PASSWORD}'")
    cluster.sql(f"CREATE DATABASE {dbname} OWNER {tenant.role}")
    tenant.plant(dbname)
    cluster.sql(f"ALTER DATABASE {dbname} SET search_path = {HOSTILE_PATH}")
    cluster.sql(f"ALTER ROLE {SUPERUSER} IN DATABASE {dbname} SET search_path = {HOSTILE_PATH}")
    tenant.assert_armed(dbname)
    return tenant


@pytest.fixture
def tenant(pg18: Cluster, bindir18: Path, dbname: str, tmp_path: Path) -> Tenant:
    """A tenant's hostile database on the shared server, backed up once to a local directory."""
    tenant = _tenant(pg18, dbname, tmp_path / "backups")
    backed_up = run_pgbackup(tenant.env(bindir18, BACKUP_DATABASES=dbname))
    assert backed_up.returncode == 0, backed_up.stdout + backed_up.stderr
    return tenant


def test_a_run_never_calls_the_shadows_planted_in_the_discovery_database(
    fresh_pg18: Cluster, bindir18: Path, dbname: str, tmp_path: Path
) -> None:
    """A cluster upgraded from PostgreSQL 14 or older lets every role create in ``public``, so
    the tenant plants its shadows in ``postgres`` as well, where discovery and the capture of
    database properties run; ``= (oid, integer)`` and ``jsonb_agg(jsonb)`` match better than
    pg_catalog's own, so they win even with the default search_path."""
    fresh_pg18.sql("GRANT CREATE ON SCHEMA public TO PUBLIC")
    tenant = _tenant(fresh_pg18, dbname, tmp_path / "backups")
    tenant.plant("postgres")
    fresh_pg18.sql(f"GRANT CONNECT ON DATABASE {dbname} TO PUBLIC")  # an ACL for the capture to read

    result = run_pgbackup(tenant.env(bindir18))

    assert result.returncode == 0, result.stdout + result.stderr
    tenant.assert_untouched("postgres", dbname)
    captured = json.loads(tenant.manifest_path().read_bytes())["database_properties"]
    assert {"role": None, "name": "search_path", "value": HOSTILE_PATH} in captured["settings"]
    assert {"grantee": None, "privilege": "CONNECT", "grantable": False} in captured["acl"]


def test_a_refused_restore_never_calls_the_shadows(tenant: Tenant, bindir18: Path) -> None:
    result = run_pgbackup(tenant.env(bindir18), "restore", "--database", tenant.database, "--as-superuser")

    assert result.returncode == 1
    assert f"database '{tenant.database}' is not empty" in result.stdout
    tenant.assert_untouched(tenant.database)


def test_restore_clean_never_calls_the_shadows(tenant: Tenant, bindir18: Path) -> None:
    result = run_pgbackup(tenant.env(bindir18), "restore", "--database", tenant.database, "--clean", "--as-superuser")

    assert result.returncode == 0, result.stdout + result.stderr
    tenant.assert_untouched(tenant.database)
    assert _query(tenant.cluster, tenant.database, "SELECT pg_catalog.count(*) FROM public.t") == [(25,)]


def test_a_verify_drill_never_calls_the_shadows_its_dump_brings(tenant: Tenant, bindir18: Path) -> None:
    """The scratch database holds the tenant's dump, shadows included, under the default
    search_path: ``= (oid, regclass)`` beats pg_catalog's ``= (oid, oid)`` there."""
    result = run_pgbackup(tenant.env(bindir18), "verify")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "verify: 1 of 1 backups verified" in result.stdout
    tenant.assert_untouched(tenant.database)


def test_restore_create_reapplies_properties_but_never_a_superusers_search_path(tenant: Tenant, bindir18: Path) -> None:
    copy = f"{tenant.database}_copy"
    refused = run_pgbackup(
        tenant.env(bindir18), "restore", "--database", tenant.database, "--target", copy, "--create", "--as-superuser"
    )

    assert refused.returncode == 1
    assert f"search_path for role '{SUPERUSER}'" in refused.stdout and "a superuser" in refused.stdout
    assert (
        _query(
            tenant.cluster,
            "postgres",
            "SELECT 1 FROM pg_catalog.pg_database WHERE datname OPERATOR(pg_catalog.=) %s",
            (copy,),
        )
        == []
    ), "nothing was created"

    tenant.cluster.sql(f"ALTER ROLE {SUPERUSER} IN DATABASE {tenant.database} RESET search_path")
    wait_for_next_second()
    backed_up = run_pgbackup(tenant.env(bindir18, BACKUP_DATABASES=tenant.database))
    assert backed_up.returncode == 0, backed_up.stdout + backed_up.stderr
    restored = run_pgbackup(
        tenant.env(bindir18), "restore", "--database", tenant.database, "--target", copy, "--create", "--as-superuser"
    )

    assert restored.returncode == 0, restored.stdout + restored.stderr
    tenant.assert_untouched(tenant.database, copy)
    assert _query(
        tenant.cluster,
        "postgres",
        "SELECT pg_catalog.pg_get_userbyid(datdba) FROM pg_catalog.pg_database WHERE datname OPERATOR(pg_catalog.=) %s",
        (copy,),
    ) == [(tenant.role,)]
    assert _query(
        tenant.cluster,
        "postgres",
        "SELECT s.setconfig FROM pg_catalog.pg_db_role_setting s"
        " JOIN pg_catalog.pg_database d ON d.oid OPERATOR(pg_catalog.=) s.setdatabase"
        " WHERE d.datname OPERATOR(pg_catalog.=) %s",
        (copy,),
    ) == [([f"search_path={HOSTILE_PATH}"],)]


def test_a_forged_row_count_key_is_refused_never_run(tenant: Tenant, bindir18: Path) -> None:
    injection = f"public.t; ALTER ROLE {tenant.role} SUPERUSER; --"
    tenant.forge(lambda data: data["row_counts"].update({injection: 25}))

    result = run_pgbackup(tenant.env(bindir18), "verify")

    assert result.returncode == 1
    [summary] = [line for line in result.stdout.splitlines() if "verify: 0 of 1 backups verified" in line]
    assert repr(injection) in summary and "not a table name as pg_dump writes" in summary  # damaged on sight
    assert "Traceback" not in result.stdout + result.stderr
    tenant.assert_untouched(tenant.database)


def _without_role_settings(properties: dict[str, Any]) -> None:
    properties["settings"] = [setting for setting in properties["settings"] if setting["role"] is None]


# Each forgery of a manifest's database_properties, and what the refusal must name.
FORGED_PROPERTIES: dict[str, tuple[Any, tuple[str, ...]]] = {
    "session_preload_libraries": (
        lambda props: props["settings"].append(
            {"role": None, "name": "session_preload_libraries", "value": "auto_explain"}
        ),
        ("database_properties.settings[1]", "session_preload_libraries"),
    ),
    "privilege": (
        lambda props: props.update(
            acl=[{"grantee": "pg_database_owner", "privilege": "SUPERUSER", "grantable": False}]
        ),
        ("database_properties.acl[0].privilege", "'SUPERUSER'"),
    ),
    "grantee": (
        lambda props: props.update(acl=[{"grantee": ["x"], "privilege": "CONNECT", "grantable": False}]),
        ("database_properties.acl[0].grantee",),
    ),
    "setting name": (
        lambda props: props["settings"].append({"role": None, "name": "work_mem = 1; x", "value": "1"}),
        ("database_properties.settings[1].name", "'work_mem = 1; x'"),
    ),
    "connection limit": (
        lambda props: props.update(connection_limit="5; x"),
        ("database_properties.connection_limit",),
    ),
}


@pytest.mark.parametrize("forgery", sorted(FORGED_PROPERTIES))
def test_forged_database_properties_are_refused_before_anything_is_created(
    tenant: Tenant, bindir18: Path, forgery: str
) -> None:
    change, named = FORGED_PROPERTIES[forgery]

    def forge(data: dict[str, Any]) -> None:
        _without_role_settings(data["database_properties"])  # only the forgery is left to refuse
        change(data["database_properties"])

    tenant.forge(forge)
    copy = f"{tenant.database}_forged"

    result = run_pgbackup(
        tenant.env(bindir18), "restore", "--database", tenant.database, "--target", copy, "--create", "--as-superuser"
    )

    assert result.returncode == 1
    [line] = [line for line in result.stdout.splitlines() if "ERROR" in line]
    assert all(text in line for text in named), line
    assert "Traceback" not in result.stdout + result.stderr
    assert (
        _query(
            tenant.cluster,
            "postgres",
            "SELECT 1 FROM pg_catalog.pg_database WHERE datname OPERATOR(pg_catalog.=) %s",
            (copy,),
        )
        == []
    ), "nothing was created"
    tenant.assert_untouched(tenant.database)


def test_our_sql_names_only_pg_catalog_even_under_a_hostile_search_path(tenant: Tenant) -> None:
    """Second line of defence: every function and operator in pgbackup's SQL is qualified, so
    it stays safe on a session whose search_path puts ``public`` first."""
    cluster = tenant.cluster
    connection = psycopg2.connect(
        host=cluster.host,
        port=cluster.port,
        user=SUPERUSER,
        password=cluster.password,
        dbname=tenant.database,
        sslmode="disable",
        options="-c search_path=public,pg_catalog",
    )
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(discovery.VERSION_QUERY)
            cursor.execute(discovery.QUERY)
            cursor.execute(databases.CONTENTS_SQL)
            cursor.execute(databases.EXISTS_SQL, (tenant.database,))
        dbprops.capture(connection, [tenant.database])
        tenant.assert_untouched(tenant.database)
        connection.autocommit = False
        with connection.cursor() as cursor:  # CLEAN_SQL drops the log, so ask inside its transaction
            cursor.execute(databases.CLEAN_SQL)
            cursor.execute(
                "SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) %s", (tenant.role,)
            )
            assert cursor.fetchone() == (False,), "CLEAN_SQL ran the tenant's code"
        connection.rollback()
    finally:
        connection.close()


def test_every_connection_fixes_the_search_path_and_keeps_the_users_options(pg18: Cluster, dbname: str) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    pg18.sql(f"ALTER DATABASE {dbname} SET search_path = {HOSTILE_PATH}")
    target = Target(env={**pg18.env(), "PGOPTIONS": "-c work_mem=7MB"}, label="the test server")

    connection = target.connect(dbname)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW search_path")
            assert cursor.fetchone() == ("pg_catalog,pg_temp",)
            cursor.execute("SHOW work_mem")
            assert cursor.fetchone() == ("7MB",)
    finally:
        connection.close()
    options = target.child_env(dbname)["PGOPTIONS"]
    assert options.startswith("-c work_mem=7MB ") and options.endswith("-c search_path=pg_catalog,pg_temp")
    assert Target(env=pg18.env(), label="x").child_env(dbname)["PGOPTIONS"] == "-c search_path=pg_catalog,pg_temp"
