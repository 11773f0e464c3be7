"""BACKUP_PG_DUMP_OPTIONS is read the way pg_dump reads it: a refused option stays refused
whether it is abbreviated, bundled, aliased or given its value in the next word."""

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
from backup_job.core.errors import ConfigError
from backup_job.core.settings import load_settings
from devenv.postgres import Cluster

from .helpers import job_env, run_pgbackup

BYPASSES = [  # what a string comparison let through, and the option pg_dump really sees
    ("--form=custom", "--format"), ("--for custom", "--format"), ("-vFc", "-F"), ("-vF c", "-F"),
    ("--compr=9", "--compress"), ("-Z9", "-Z"), ("--cre", "--create"), ("-vC", "-C"), ("-cv", "-c"),
    ("--clea", "--clean"), ("--jobs 4", "--jobs"), ("-j4", "-j"), ("--db=other", "--dbname"), ("-dother", "-d"),
    ("--file /tmp/x", "--file"), ("-vf/tmp/x", "-f"), ("--passw", "--password"), ("-wW", "-W"),
    ("--vers", "--version"), ("-v?", "-?"),
]


def settings_error(value: str, tmp_path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings({"BACKUP_DESTINATION": "file:///b", "BACKUP_PG_DUMP_OPTIONS": value},
                      dotenv_path=tmp_path / "none")
    return str(caught.value)


@pytest.mark.parametrize(("value", "option"), BYPASSES)
def test_every_spelling_of_a_refused_option_is_refused(value: str, option: str, tmp_path: Path) -> None:
    message = settings_error(value, tmp_path)
    assert f"must not contain {option}" in message and "BACKUP_PG_DUMP_OPTIONS" in message


@pytest.mark.parametrize(("value", "reason"), [
    ("--fi=x", "--fi is ambiguous (it could be --file, --filter)"),
    ("--no-such-thing", "--no-such-thing is not a pg_dump option"),
    ("-X", "-X is not a pg_dump option pgbackup can pass"),
    ("-k", "-k is not a pg_dump option"),
    ("shop", "'shop' is not an option (pg_dump would take it as the database name)"),
    ("--no-owner -- shop", "'--' would end pg_dump's options"),
    ("-Z", "-Z needs a value"),
    ("--verbose=yes", "--verbose takes no value"),
])
def test_what_pg_dump_would_reject_is_rejected_up_front(value: str, reason: str, tmp_path: Path) -> None:
    assert reason in settings_error(value, tmp_path)


@pytest.mark.parametrize("value", [
    "--no-owner --no-privileges", "--no-ow --no-acl", "--exclude-table-data='audit.*'", "-t 'a b' -T c -v",
    "--exclude-table -Fc",  # the table is called -Fc: the next word is a value, not an option
    "--lock-wait-timeout 5s --role=backup", "--large --blob --attribute-inserts --inserts",
])
def test_harmless_options_are_kept_word_for_word(value: str, tmp_path: Path) -> None:
    import shlex

    settings = load_settings({"BACKUP_DESTINATION": "file:///b", "BACKUP_PG_DUMP_OPTIONS": value},
                             dotenv_path=tmp_path / "none")
    assert settings.dump.pg_dump_options == tuple(shlex.split(value))


def _pg_dump(bindir: Path, *args: str) -> str:
    env = {**os.environ, "PGHOST": "/nonexistent", "PGCONNECT_TIMEOUT": "1"}
    return subprocess.run([str(bindir / "pg_dump"), *args], capture_output=True, text=True, env=env,
                          stdin=subprocess.DEVNULL, timeout=30).stderr


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

    result = run_pgbackup(job_env(pg18, f"file://{tmp_path}/b", bindir18, BACKUP_DATABASES=dbname,
                                  BACKUP_PG_DUMP_OPTIONS=value))

    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "must not contain -" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "b").exists(), "nothing was attempted"


CONNECTION_SPELLINGS = [  # every way pg_dump reads a server, port or user, and what it sees
    ("--host=evil.example", "--host"), ("--hos=evil.example", "--host"), ("--ho evil.example", "--host"),
    ("-h evil.example", "-h"), ("-hevil.example", "-h"), ("-vhevil.example", "-h"), ("-vh evil.example", "-h"),
    ("--port=6543", "--port"), ("--po 6543", "--port"), ("-p6543", "-p"), ("-vp 6543", "-p"),
    ("--username=mallory", "--username"), ("--user mallory", "--username"), ("-Umallory", "-U"),
    ("-vUmallory", "-U"), ("--restrict-key=k3y", "--restrict-key"), ("--restr k3y", "--restrict-key"),
]


@pytest.mark.parametrize(("value", "option"), CONNECTION_SPELLINGS)
def test_connection_options_and_the_restrict_key_are_refused_however_written(
    value: str, option: str, tmp_path: Path
) -> None:
    message = settings_error(f"--no-owner {value}", tmp_path)
    assert f"must not contain {option}" in message and "BACKUP_PG_DUMP_OPTIONS" in message, message


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
        direct = subprocess.run([str(bindir18 / "pg_dump"), *options.split()], capture_output=True, timeout=60,
                                env={**os.environ, **pg18.env(dbname)}, stdin=subprocess.DEVNULL)
        assert direct.returncode != 0 and trap.passwords == [pg18.password.encode()], \
            "pg_dump itself really sends PGPASSWORD where these options point"
        trap.passwords.clear()

        result = run_pgbackup(job_env(pg18, f"file://{tmp_path}/b", bindir18, BACKUP_DATABASES=dbname,
                                      BACKUP_GLOBALS="false", BACKUP_PG_DUMP_OPTIONS=options))

    assert trap.passwords == [], "pgbackup's pg_dump sent the password to the other server"
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and re.search(r"must not contain (--host|-h) ", result.stderr), result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "b").exists()
