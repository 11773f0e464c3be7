"""BACKUP_PG_DUMP_OPTIONS is read the way pg_dump reads it: a refused option stays refused
whether it is abbreviated, bundled, aliased or given its value in the next word.

The tests that run pgbackup or real services; the offline ones are in tests/unit/test_dump_options.py."""

from __future__ import annotations

import os
import re
import socket
import struct
import subprocess
import threading
from pathlib import Path

import pytest

from backup_job.core.dumpoptions import LONG_OPTIONS, SHORT_OPTIONS
from devenv.postgres import Cluster

from ..kit.helpers import job_env, run_pgbackup


def _pg_dump(bindir: Path, *args: str) -> str:
    env = {**os.environ, "PGHOST": "/nonexistent", "PGCONNECT_TIMEOUT": "1"}
    return subprocess.run(
        [str(bindir / "pg_dump"), *args], capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=30
    ).stderr


def test_the_option_table_is_pg_dump_18s(bindir18: Path) -> None:
    """Every long option pg_dump 18 knows, with whether it takes a value, read from pg_dump's
    own error messages; and every short option letter."""
    for name, takes_value in LONG_OPTIONS.items():
        if takes_value:
            assert f"option '--{name}' requires an argument" in _pg_dump(bindir18, f"--{name}"), name
        else:
            assert f"option '--{name}' doesn't allow an argument" in _pg_dump(bindir18, f"--{name}=x"), name
    known = set()
    for letter in "abcdefghijklmnopqrstuvwxyz":
        answer = _pg_dump(bindir18, f"--{letter}")
        if "ambiguous" in answer:
            known |= set(re.findall(r"'--([a-z-]+)'", answer.split("possibilities:", 1)[1]))
    assert known <= set(LONG_OPTIONS), known - set(LONG_OPTIONS)
    for letter in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789":
        answer = _pg_dump(bindir18, f"-{letter}")
        if "invalid option" in answer:
            assert letter not in SHORT_OPTIONS, letter
        else:
            assert letter in SHORT_OPTIONS, letter
            assert ("requires an argument" in answer) == (f"{letter}:" in SHORT_OPTIONS), letter


@pytest.mark.parametrize("value", ["--form=custom", "-vFc"])
def test_a_bypass_that_pg_dump_honours_is_refused_before_anything_runs(
    value: str, pg18: Cluster, bindir18: Path, tmp_path: Path, dbname: str
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    env = {**os.environ, **pg18.env(dbname)}
    honoured = subprocess.run([str(bindir18 / "pg_dump"), *value.split()], capture_output=True, env=env, timeout=60)
    assert honoured.returncode == 0 and honoured.stdout.startswith(b"PGDMP"), "pg_dump really writes its custom format"

    result = run_pgbackup(
        job_env(pg18, f"file://{tmp_path}/b", bindir18, BACKUP_DATABASES=dbname, BACKUP_PG_DUMP_OPTIONS=value)
    )

    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "must not contain -" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "b").exists(), "nothing was attempted"


class PasswordTrap:
    """A TCP server that speaks just enough of PostgreSQL's protocol to ask a client for its
    password in cleartext, and keeps what it is sent."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.passwords: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                client, _address = self.server.accept()
            except OSError:
                return  # closed
            with client:
                self._answer(client)

    def _answer(self, client: socket.socket) -> None:
        client.settimeout(10)
        try:
            while True:  # SSLRequest / GSSENCRequest are refused ("N"); then the startup packet
                length, code = struct.unpack("!ii", _read(client, 8))
                _read(client, length - 8)
                if code not in (80877103, 80877104):
                    break
                client.sendall(b"N")
            client.sendall(b"R" + struct.pack("!ii", 8, 3))  # AuthenticationCleartextPassword
            kind, length = struct.unpack("!ci", _read(client, 5))
            if kind == b"p":
                self.passwords.append(_read(client, length - 4).rstrip(b"\0"))
        except (OSError, struct.error):
            pass

    def __enter__(self) -> PasswordTrap:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown(socket.SHUT_RDWR)  # wakes the accept() that close() alone would leave waiting
        self.server.close()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()


def _read(client: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = client.recv(count - len(data))
        if not chunk:
            raise OSError("closed")
        data += chunk
    return data


@pytest.mark.parametrize("spelling", ["--hos=127.0.0.1 --po={port}", "-vh127.0.0.1 -p {port}"])
def test_pg_dump_options_cannot_send_the_servers_password_to_another_server(
    spelling: str, pg18: Cluster, bindir18: Path, dbname: str, tmp_path: Path
) -> None:
    """Whoever writes BACKUP_PG_DUMP_OPTIONS (a PgBackup's spec.pgDumpOptions) must not learn
    PGPASSWORD by pointing pg_dump at a server of their own."""
    pg18.sql(f"CREATE DATABASE {dbname}")
    with PasswordTrap() as trap:
        options = spelling.format(port=trap.port)
        direct = subprocess.run(
            [str(bindir18 / "pg_dump"), *options.split()],
            capture_output=True,
            timeout=60,
            env={**os.environ, **pg18.env(dbname)},
            stdin=subprocess.DEVNULL,
        )
        assert direct.returncode != 0 and trap.passwords == [pg18.password.encode()], (
            "pg_dump itself really sends PGPASSWORD where these options point"
        )
        trap.passwords.clear()

        result = run_pgbackup(
            job_env(
                pg18,
                f"file://{tmp_path}/b",
                bindir18,
                BACKUP_DATABASES=dbname,
                BACKUP_GLOBALS="false",
                BACKUP_PG_DUMP_OPTIONS=options,
            )
        )

    assert trap.passwords == [], "pgbackup's pg_dump sent the password to the other server"
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and re.search(r"must not contain (--host|-h) ", result.stderr), result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "b").exists()
