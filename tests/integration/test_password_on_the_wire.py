"""The password never leaves in cleartext (nor as md5) unless told, against real PostgreSQL.

A server whose pg_hba.conf says ``password`` asks every client for the password in cleartext,
and libpq would send it to whoever asks: a PgRestore's ``target.server``, anyone in the middle.
pgbackup's connections and client programs answer only SCRAM or no password at all
(``PGREQUIREAUTH=scram-sha-256,none``, ``core.pgauth``). The proof is a relay between the job
and the real server that keeps every byte the job sends (``Wiretap``): the password is never
among them, for ``run``, ``restore`` and ``verify``. md5 is refused with the setting that
allows it, which then works; cleartext (IAM tokens) works only over ``verify-full`` with the
opt-in; a password over TLS needs channel binding; a pg_dump that ignores the policy is named.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from devenv.postgres import Cluster

from ..kit.certs import Pki, make_pki
from ..kit.helpers import job_env, run_pgbackup
from ..kit.wiretap import Wiretap

ROLE, SECRET = "wire", "the-password-on-the-wire"


def _prepend_hba(cluster: Cluster, *lines: str) -> None:
    """New first lines in pg_hba.conf, in force for the next connection."""
    hba = cluster.datadir / "pg_hba.conf"
    hba.write_text("\n".join(lines) + "\n" + hba.read_text())
    cluster.sql("SELECT pg_catalog.pg_reload_conf()")


def _through(tap: Wiretap, env: dict[str, str], **extra: str) -> dict[str, str]:
    """``env`` reaching the server through ``tap``, as ``ROLE``."""
    return {**env, "PGHOST": "127.0.0.1", "PGPORT": str(tap.port), "PGUSER": ROLE, "PGPASSWORD": SECRET, **extra}


def _one_error(result: subprocess.CompletedProcess[str]) -> str:
    errors = [line for line in (result.stdout + result.stderr).splitlines() if " ERROR " in line]
    assert errors, result.stdout + result.stderr
    return errors[-1]


@pytest.fixture
def cleartext_pg(fresh_pg18: Cluster, bindir18: Path, dbname: str, tmp_path: Path) -> Iterator[tuple[Cluster, str]]:
    """A server with a backup of ``dbname`` (made over SCRAM), whose ``ROLE`` must then log in
    with ``password``: the cleartext request."""
    fresh_pg18.sql(f"CREATE ROLE {ROLE} LOGIN SUPERUSER PASSWORD '{SECRET}'")
    fresh_pg18.sql(f"CREATE DATABASE {dbname}")
    fresh_pg18.sql("CREATE TABLE t AS SELECT generate_series(1, 10) AS n", dbname)
    destination = f"file://{tmp_path}/backups"
    made = run_pgbackup(job_env(fresh_pg18, destination, bindir18, BACKUP_DATABASES=dbname))
    assert made.returncode == 0, made.stdout + made.stderr
    _prepend_hba(fresh_pg18, f"host all {ROLE} 127.0.0.1/32 password")
    yield fresh_pg18, destination


COMMANDS = {
    "run": ("run",),
    "restore": ("restore", "--database={db}", "--target={db}_copy", "--create"),
    "verify": ("verify",),
}


@pytest.mark.parametrize("command", COMMANDS)
def test_a_server_asking_for_the_password_in_cleartext_never_receives_it(
    command: str,
    cleartext_pg: tuple[Cluster, str],
    bindir18: Path,
    dbname: str,
) -> None:
    cluster, destination = cleartext_pg
    env = job_env(cluster, destination, bindir18, BACKUP_DATABASES=dbname)
    with Wiretap((cluster.host, cluster.port)) as tap:
        direct = subprocess.run(
            [str(bindir18 / "psql"), "-Atc", "SELECT 1"],
            capture_output=True,
            text=True,
            env=_through(tap, env),
            timeout=60,
        )
        assert direct.returncode == 0 and SECRET.encode() in tap.sent, "libpq alone sends it: the tap sees it"
    with Wiretap((cluster.host, cluster.port)) as tap:
        result = run_pgbackup(_through(tap, env), *(arg.format(db=dbname) for arg in COMMANDS[command]))
        sent = tap.sent

    assert result.returncode == 1, result.stdout + result.stderr
    assert SECRET.encode() not in sent, f"pgbackup {command} sent the password in cleartext"
    assert sent, "it did connect, and stopped at the server's request"
    error = _one_error(result)
    assert "server requested a cleartext password" in error and "BACKUP_ALLOW_CLEARTEXT_PASSWORD=true" in error
    assert "PGSSLMODE=verify-full" in error and "Traceback" not in result.stdout + result.stderr
    assert [row[0] for row in cluster.sql("SELECT datname FROM pg_catalog.pg_database")].count(f"{dbname}_copy") == 0


def test_md5_is_refused_naming_the_setting_that_allows_it_which_then_works(
    fresh_pg18: Cluster,
    bindir18: Path,
    dbname: str,
    tmp_path: Path,
) -> None:
    fresh_pg18.sql(f"SET password_encryption = 'md5'; CREATE ROLE {ROLE} LOGIN SUPERUSER PASSWORD '{SECRET}'")
    fresh_pg18.sql(f"CREATE DATABASE {dbname}")
    _prepend_hba(fresh_pg18, f"host all {ROLE} 127.0.0.1/32 md5")
    env = {
        **job_env(fresh_pg18, f"file://{tmp_path}/b", bindir18, BACKUP_DATABASES=dbname, BACKUP_GLOBALS="false"),
        "PGUSER": ROLE,
        "PGPASSWORD": SECRET,
    }

    refused = run_pgbackup(env)

    assert refused.returncode == 1
    error = _one_error(refused)
    assert "server requested a hashed password" in error and "PGREQUIREAUTH=scram-sha-256,md5" in error, error
    assert "password_encryption = 'scram-sha-256'" in error
    allowed = run_pgbackup({**env, "PGREQUIREAUTH": "scram-sha-256,md5"})
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    over_the_socket = run_pgbackup(
        {**env, "PGHOST": str(fresh_pg18.base), "PGUSER": "postgres", "BACKUP_DESTINATION": f"file://{tmp_path}/socket"}
    )  # maybe the same second
    assert over_the_socket.returncode == 0, over_the_socket.stdout + over_the_socket.stderr  # trust: `none`


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"PGREQUIREAUTH": "scram-sha-256,password"},
            "PGREQUIREAUTH=scram-sha-256,password lets a server ask for the password in cleartext; set "
            "BACKUP_ALLOW_CLEARTEXT_PASSWORD=true (with PGSSLMODE=verify-full)",
        ),
        ({"PGREQUIREAUTH": "!md5"}, "PGREQUIREAUTH=!md5 lets a server ask for the password in cleartext"),
        (
            {"BACKUP_ALLOW_CLEARTEXT_PASSWORD": "true", "PGSSLMODE": "require"},
            "BACKUP_ALLOW_CLEARTEXT_PASSWORD=true needs PGSSLMODE=verify-full (it is 'require')",
        ),
        (
            {
                "BACKUP_ALLOW_CLEARTEXT_PASSWORD": "true",
                "PGSSLMODE": "verify-full",
                "BACKUP_VERIFY_PGHOST": "scratch",
                "BACKUP_VERIFY_PGSSLMODE": "prefer",
            },
            "needs BACKUP_VERIFY_PGSSLMODE=verify-full (it is 'prefer')",
        ),
        ({"PGREQUIREAUTH": "scram-sha-256,!md5"}, "PGREQUIREAUTH='scram-sha-256,!md5' mixes methods"),
        ({"PGCHANNELBINDING": "always"}, "PGCHANNELBINDING='always' must be one of require | prefer | disable"),
    ],
)
@pytest.mark.parametrize("command", COMMANDS)
def test_settings_that_would_send_a_cleartext_password_unchecked_are_refused_before_anything_runs(
    command: str,
    extra: dict[str, str],
    message: str,
    tmp_path: Path,
) -> None:
    env = {"BACKUP_DESTINATION": f"file://{tmp_path}/b", "PGHOST": "127.0.0.1", "PGPASSWORD": SECRET, **extra}
    result = run_pgbackup(env, *(arg.format(db="app") for arg in COMMANDS[command]))
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert not (tmp_path / "b").exists() and SECRET not in result.stderr


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), client_cn=ROLE)


@pytest.fixture
def tls_server(pki: Pki) -> Iterator[Cluster]:
    """A TLS PostgreSQL 18 (OpenSSL build) where ``ROLE`` logs in with ``password`` over TLS
    (an IAM token's way) and ``trusted`` with nothing at all."""
    from devenv.postgres import openssl_bindir

    hba = [f"hostssl all {ROLE} 127.0.0.1/32 password", "hostssl all trusted 127.0.0.1/32 trust"]
    with Cluster(openssl_bindir(), tls=pki.server, hba=hba) as cluster:
        cluster.sql(f"CREATE ROLE {ROLE} LOGIN SUPERUSER PASSWORD '{SECRET}'")
        cluster.sql("CREATE ROLE trusted LOGIN SUPERUSER")
        yield cluster


def test_a_cleartext_token_goes_only_over_verify_full_with_the_opt_in(
    tls_server: Cluster,
    pki: Pki,
    tmp_path: Path,
) -> None:
    bindir = tls_server.bindir
    env = {
        **job_env(tls_server, f"file://{tmp_path}/b", bindir, BACKUP_DATABASES="postgres", BACKUP_GLOBALS="false"),
        "PGUSER": ROLE,
        "PGPASSWORD": SECRET,
        "PGSSLMODE": "verify-full",
        "PGSSLROOTCERT": str(pki.ca),
    }

    refused = run_pgbackup(env)
    allowed = run_pgbackup({**env, "BACKUP_ALLOW_CLEARTEXT_PASSWORD": "true"})

    assert refused.returncode == 1 and "server requested a cleartext password" in _one_error(refused)
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr


def test_a_password_over_tls_goes_only_to_a_server_that_binds_the_channel(
    tls_server: Cluster,
    pki: Pki,
    tmp_path: Path,
) -> None:
    """``trusted`` over TLS: a server (or anyone between, with sslmode=require) that lets the job
    in without SCRAM never proves it knows the password, so the job does not go on talking to it."""
    bindir = tls_server.bindir
    env = {
        **job_env(tls_server, f"file://{tmp_path}/b", bindir, BACKUP_DATABASES="postgres", BACKUP_GLOBALS="false"),
        "PGSSLMODE": "require",
    }

    scram = run_pgbackup(env)
    unbound = run_pgbackup({**env, "PGUSER": "trusted", "PGPASSWORD": "any"})
    told = run_pgbackup(
        {
            **env,
            "PGUSER": "trusted",
            "PGPASSWORD": "any",
            "PGCHANNELBINDING": "prefer",
            "BACKUP_DESTINATION": f"file://{tmp_path}/told",
        }
    )  # scram's may be of the same second

    assert scram.returncode == 0, scram.stdout + scram.stderr
    error = _one_error(unbound)
    assert unbound.returncode == 1 and "channel binding required" in error and "PGCHANNELBINDING=prefer" in error
    assert told.returncode == 0, told.stdout + told.stderr


def test_a_pg_dump_that_ignores_the_policy_is_named_once_per_run(
    pg15: Cluster,
    bindir15: Path,
    dbname: str,
    tmp_path: Path,
) -> None:
    pg15.sql(f"CREATE DATABASE {dbname}")
    result = run_pgbackup(job_env(pg15, f"file://{tmp_path}/b", bindir15, BACKUP_DATABASES=dbname))
    assert result.returncode == 0, result.stdout + result.stderr
    warnings = [line for line in result.stdout.splitlines() if "ignore PGREQUIREAUTH" in line]
    assert len(warnings) == 1 and re.search(r"pg_dump 15 ignore PGREQUIREAUTH", warnings[0]), result.stdout
