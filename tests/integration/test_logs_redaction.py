"""Secrets are redacted where they stand as whole tokens, whatever their length, as written and
percent-encoded; a short password no longer masks pieces of database names and keys.

The tests that run pgbackup or real services; the offline ones are in tests/unit/test_logs_redaction.py."""

from __future__ import annotations

import uuid
from pathlib import Path

from backup_job.core.layout import encode_database
from devenv.postgres import Cluster

from ..kit.helpers import job_env, run_pgbackup


def test_a_run_logs_names_whole_and_its_keys_without_a_secret(pg18: Cluster, bindir18: Path, tmp_path: Path) -> None:
    """End to end, the issue's case: the role's password is ``bench``; one database's name merely
    contains it, another's name is another secret, which its keys hold percent-encoded.
    ``list`` shows names as they are (docs/configuration.md#secrets-in-logs): names are no
    secrets, and whoever can run it can read the bucket's keys."""
    suffix = uuid.uuid4().hex[:8]
    role, contains, named = f"r_{suffix}", f"bench{suffix}", f"s3 cr@t/{suffix}"
    pg18.sql(f"CREATE ROLE {role} LOGIN SUPERUSER PASSWORD 'bench'")
    try:
        for database in (contains, named):
            pg18.sql(f'CREATE DATABASE "{database}"')
        env = job_env(
            pg18,
            f"file://{tmp_path}/b",
            bindir18,
            PGUSER=role,
            PGPASSWORD="bench",
            BACKUP_VERIFY_PGPASSWORD=named,
            BACKUP_DATABASES=f"{contains},{named}",
            BACKUP_GLOBALS="false",
        )
        result = run_pgbackup(env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"backup of '{contains}' finished" in result.stdout and f"/{contains}/" in result.stdout
        assert f"***{suffix}" not in result.stdout, "no piece of a name is masked"
        assert "backup of '***' finished" in result.stdout
        for leak in (named, encode_database(named), "cr@t", "cr%40t"):
            assert leak not in result.stdout + result.stderr, leak

        listed = run_pgbackup(env, "list")
        assert listed.returncode == 0 and contains in listed.stdout and named in listed.stdout, listed.stdout
    finally:
        for database in (contains, named):
            pg18.sql(f'DROP DATABASE IF EXISTS "{database}"')
        pg18.sql(f"DROP ROLE {role}")
