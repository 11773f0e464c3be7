"""The authentication policy (``core.pgauth``) for one server's libpq variables: what each
connection and client program gets, and what is refused before anything starts."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg2
import pytest

from backup_job.core import pgauth
from backup_job.core.errors import ConfigError, RunError
from backup_job.pg import target

PASSWORD = {"PGHOST": "db", "PGPASSWORD": "pw"}


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.pgpass, no ~/.postgresql/postgresql.crt


@pytest.mark.parametrize(
    ("server", "environ", "wanted"),
    [
        (PASSWORD, {}, {"PGREQUIREAUTH": "scram-sha-256,none"}),
        ({**PASSWORD, "PGSSLMODE": "prefer"}, {}, {"PGREQUIREAUTH": "scram-sha-256,none"}),
        (
            {**PASSWORD, "PGSSLMODE": "require"},
            {},
            {"PGREQUIREAUTH": "scram-sha-256,none", "PGCHANNELBINDING": "require"},
        ),
        (
            {**PASSWORD, "PGSSLMODE": "verify-full"},
            {"PGCHANNELBINDING": "prefer"},
            {"PGREQUIREAUTH": "scram-sha-256,none", "PGCHANNELBINDING": "prefer"},
        ),
        (
            {"PGSSLMODE": "verify-full", "PGPASSFILE": "/run/pgpass"},
            {},
            {"PGREQUIREAUTH": "scram-sha-256,none", "PGCHANNELBINDING": "require"},
        ),
        (
            {**PASSWORD, "PGSSLMODE": "verify-full", "PGSSLCERT": "/tls/client.crt"},
            {},
            {"PGREQUIREAUTH": "scram-sha-256,none"},
        ),  # certificate authentication has nothing to bind
        ({"PGSSLMODE": "verify-full"}, {}, {"PGREQUIREAUTH": "scram-sha-256,none"}),  # no password to protect
        (
            {**PASSWORD, "PGSSLMODE": "require"},
            {"PGREQUIREAUTH": "scram-sha-256,md5"},
            {"PGREQUIREAUTH": "scram-sha-256,md5"},
        ),  # the user's list, as written; md5 cannot bind
        (
            {**PASSWORD, "PGSSLMODE": "verify-full"},
            {"BACKUP_ALLOW_CLEARTEXT_PASSWORD": "true"},
            {"PGREQUIREAUTH": "scram-sha-256,password,none"},
        ),
        (
            {**PASSWORD, "PGSSLMODE": "verify-full"},
            {"PGREQUIREAUTH": "password", "BACKUP_ALLOW_CLEARTEXT_PASSWORD": "1"},
            {"PGREQUIREAUTH": "password"},
        ),
        (PASSWORD, {"PGREQUIREAUTH": "!password,!md5"}, {"PGREQUIREAUTH": "!password,!md5"}),
    ],
)
def test_each_server_gets_the_policy(server: dict[str, str], environ: dict[str, str], wanted: dict[str, str]) -> None:
    assert pgauth.policy(server, environ) == wanted
    assert pgauth.secured(server, environ) == {**server, **wanted}


def test_a_password_file_in_home_counts_as_a_password_and_a_client_certificate_there_as_one(
    tmp_path: Path,
) -> None:
    server = {"PGSSLMODE": "require"}
    (tmp_path / ".pgpass").write_text("*:*:*:*:pw\n")
    assert pgauth.policy(server, {}).get("PGCHANNELBINDING") == "require"
    (tmp_path / ".postgresql").mkdir()
    (tmp_path / ".postgresql" / "postgresql.crt").write_text("")
    assert "PGCHANNELBINDING" not in pgauth.policy(server, {})


@pytest.mark.parametrize(
    ("server", "environ", "message"),
    [
        (
            PASSWORD,
            {"PGREQUIREAUTH": "password"},
            "PGREQUIREAUTH=password lets a server ask for the password in cleartext",
        ),
        (
            {**PASSWORD, "PGSSLMODE": "verify-full"},
            {"PGREQUIREAUTH": "!md5"},
            "set BACKUP_ALLOW_CLEARTEXT_PASSWORD=true",
        ),
        (PASSWORD, {"BACKUP_ALLOW_CLEARTEXT_PASSWORD": "true"}, "needs PGSSLMODE=verify-full (it is 'prefer')"),
        (
            {**PASSWORD, "PGSSLMODE": "verify-ca"},
            {"PGREQUIREAUTH": "password", "BACKUP_ALLOW_CLEARTEXT_PASSWORD": "true"},
            "PGREQUIREAUTH=password needs PGSSLMODE=verify-full (it is 'verify-ca')",
        ),
    ],
)
def test_cleartext_is_refused_without_verify_full_and_the_opt_in(
    server: dict[str, str],
    environ: dict[str, str],
    message: str,
) -> None:
    with pytest.raises(ConfigError, match=r"^configuration error: ") as raised:
        pgauth.policy(server, environ)
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_check_covers_the_scratch_server_with_its_own_ssl_mode() -> None:
    environ = {"PGSSLMODE": "verify-full", "BACKUP_ALLOW_CLEARTEXT_PASSWORD": "true"}
    pgauth.check(environ)
    with pytest.raises(ConfigError, match=r"needs BACKUP_VERIFY_PGSSLMODE=verify-full .* BACKUP_VERIFY_PGSSLROOTCERT$"):
        pgauth.check({**environ, "BACKUP_VERIFY_PGHOST": "scratch", "BACKUP_VERIFY_PGSSLMODE": "require"})


def test_programs_that_ignore_the_policy_are_named_in_one_line() -> None:
    assert pgauth.unenforced({"pg_dump": 18, "psycopg2's libpq": 17}) is None
    line = pgauth.unenforced({"psql": 15, "psycopg2's libpq": 17})
    assert line is not None and line.startswith("psql 15 ignore PGREQUIREAUTH") and "\n" not in line


def test_a_scratch_connection_gets_its_parameters_as_arguments_and_the_environment_stays(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No swap of the process environment: the scratch server's own variables as keywords, and
    libpq's unset meaning for those of the backup server it lacks (never its password)."""
    for name, value in {
        "PGHOST": "backup.db",
        "PGUSER": "backup",
        "PGPASSWORD": "backup-secret",
        "BACKUP_VERIFY_PGHOST": "scratch.db",
        "BACKUP_VERIFY_PGUSER": "drill",
    }.items():
        monkeypatch.setenv(name, value)
    seen: dict[str, dict[str, str]] = {}

    def connect(dsn: str | None = None, **keywords: str) -> None:
        seen.update(keywords=psycopg2.extensions.parse_dsn(dsn) if dsn else keywords, environ=dict(os.environ))
        raise psycopg2.OperationalError("refused here")

    monkeypatch.setattr(target.psycopg2, "connect", connect)
    with pytest.raises(RunError, match="refused here"):
        target.verify_server(os.environ).connect("drills")
    assert {k: seen["environ"].get(k) for k in ("PGHOST", "PGUSER", "PGPASSWORD")} == {
        "PGHOST": "backup.db",
        "PGUSER": "backup",
        "PGPASSWORD": "backup-secret",
    }
    keywords = seen["keywords"]
    assert (keywords["host"], keywords["user"], keywords["dbname"]) == ("scratch.db", "drill", "drills")
    assert keywords["password"] == "" and "backup-secret" not in keywords.values()
    assert keywords["require_auth"] == "scram-sha-256,none"
