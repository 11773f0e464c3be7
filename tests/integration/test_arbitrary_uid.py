"""``pgbackup run`` as OpenShift runs it: a uid from a namespace range with no passwd entry,
group root, no HOME, and the connection's TLS files laid out as a Secret volume (root:root,
0440), against a PostgreSQL 18 that admits the backup role only over TLS with a client
certificate (``hostssl ... cert``), server verified (``verify-full``), into moto's S3.

Server and pg_dump are the OpenSSL build of PostgreSQL 18 (``tests/kit/certs.py``)."""

from __future__ import annotations

import os
import pwd
import random
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from devenv.postgres import Cluster

from ..kit import anyuid
from ..kit.certs import TLS_ROLE, Pki, pki, tls_bindir, tls_pg  # noqa: F401 (fixtures)
from ..kit.helpers import Bucket

ROLE = TLS_ROLE


@pytest.fixture
def secret_volumes(pki: Pki) -> Iterator[Path]:
    """The CA and the client certificate as the kubelet mounts Secrets without an fsGroup:
    root:root, mode 0440, in directories any uid can reach."""
    root = Path(tempfile.mkdtemp(prefix="pgbackup-secrets-"))
    try:
        root.chmod(0o755)
        for directory, files in (
            ("ca", {"ca.crt": pki.ca}),
            ("client", {"tls.crt": pki.client_cert, "tls.key": pki.client_key}),
        ):
            (root / directory).mkdir(mode=0o755)
            for name, source in files.items():
                shutil.copyfile(source, root / directory / name)
                os.chown(root / directory / name, 0, 0)
                (root / directory / name).chmod(0o440)
        yield root
    finally:
        shutil.rmtree(root)


def _uid_without_passwd_entry() -> int:
    uid = random.randrange(1000600000, 1000700000)  # an OpenShift-style range
    with pytest.raises(KeyError):
        pwd.getpwuid(uid)
    return uid


def _run_as(
    uid: int, cluster: Cluster, bucket: Bucket, bindir: Path, secrets: Path, database: str
) -> subprocess.CompletedProcess[str]:
    """``pgbackup run`` as ``uid``:0 with only the variables a pod would have (no HOME, no USER)."""
    env = {
        "PATH": f"{bindir}:{anyuid.command_dir()}:/usr/bin:/bin",
        "PGHOST": cluster.host,
        "PGPORT": str(cluster.port),
        "PGUSER": ROLE,
        "PGDATABASE": "postgres",
        "PGSSLMODE": "verify-full",
        "PGSSLROOTCERT": str(secrets / "ca" / "ca.crt"),
        "PGSSLCERT": str(secrets / "client" / "tls.crt"),
        "PGSSLKEY": str(secrets / "client" / "tls.key"),
        "BACKUP_DESTINATION": bucket.url("openshift"),
        "BACKUP_DATABASES": database,
        "BACKUP_GLOBALS": "true",
        **bucket.server.env(),
    }
    return subprocess.run(
        [str(anyuid.command_dir() / "pgbackup"), "run"],
        env=env,
        cwd="/",
        user=uid,
        group=0,
        extra_groups=[0],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_plain_connection_of_the_backup_role_is_refused(tls_pg: Cluster) -> None:
    """The server really requires TLS and the certificate for the role the job uses."""
    with pytest.raises(psycopg2.OperationalError, match="rejects connection"):
        psycopg2.connect(host=tls_pg.host, port=tls_pg.port, user=ROLE, dbname="postgres", sslmode="disable")


def test_an_arbitrary_uid_with_group_root_backs_up_over_client_certificate_tls(
    tls_pg: Cluster,
    tls_bindir: Path,
    bucket: Bucket,
    secret_volumes: Path,
    dbname: str,
) -> None:
    tls_pg.sql(f"CREATE DATABASE {dbname}")
    tls_pg.sql("CREATE TABLE t AS SELECT generate_series(1, 500) AS n", dbname)

    result = _run_as(_uid_without_passwd_entry(), tls_pg, bucket, tls_bindir, secret_volumes, dbname)

    assert result.returncode == 0, result.stdout + result.stderr
    segments = [key.split("/")[1] for key in bucket.keys("openshift/")]
    assert sorted(set(segments)) == ["_globals", dbname] and len(segments) == 4  # dump + manifest each
    assert all(oct(os.stat(p).st_mode & 0o777) == "0o440" for p in secret_volumes.rglob("*") if p.is_file()), (
        "the job left the mounted files as they were"
    )


def test_unreadable_tls_files_fail_the_run_naming_the_file(
    tls_pg: Cluster,
    tls_bindir: Path,
    bucket: Bucket,
    secret_volumes: Path,
    dbname: str,
) -> None:
    """Mode 0400 (no group read): the uid cannot read them, and the run says which file."""
    tls_pg.sql(f"CREATE DATABASE {dbname}")
    for path in secret_volumes.rglob("*"):
        if path.is_file():
            path.chmod(0o400)

    result = _run_as(_uid_without_passwd_entry(), tls_pg, bucket, tls_bindir, secret_volumes, dbname)

    assert result.returncode == 1, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert (
        f"PGSSLROOTCERT {secret_volumes}/ca/ca.crt cannot be read: Permission denied (mode 0400, owner 0:0" in output
    ), output
    assert "Traceback" not in output and bucket.keys() == []
