"""Helpers shared by the integration tests: run the real CLI, read back and restore backups."""

from __future__ import annotations

import gzip
import html
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devenv.faultproxy import FaultProxy
from devenv.postgres import Cluster
from devenv.s3 import S3Server
from devenv.seaweed import SeaweedServer
from devenv.wait import wait_for

ROOT = Path(__file__).resolve().parents[2]
# Variables from the developer's shell must not leak into the job under test.
_SCRUB_PREFIXES = ("PG", "AWS_", "AZURE_", "BACKUP_", "LOG_", "PYTHONPATH")


@dataclass
class Bucket:
    """A bucket on a test S3 server (moto's, or SeaweedFS)."""

    server: S3Server | SeaweedServer
    name: str

    def keys(self, prefix: str = "") -> list[str]:
        paginator = self.server.client().get_paginator("list_objects_v2")
        return sorted(
            obj["Key"]
            for page in paginator.paginate(Bucket=self.name, Prefix=prefix)
            for obj in page.get("Contents", [])
        )

    def get(self, key: str) -> bytes:
        return bytes(self.server.client().get_object(Bucket=self.name, Key=key)["Body"].read())

    def put(self, key: str, data: bytes) -> None:
        self.server.client().put_object(Bucket=self.name, Key=key, Body=data)

    def open_uploads(self) -> list[str]:
        response = self.server.client().list_multipart_uploads(Bucket=self.name)
        return [upload["Key"] for upload in response.get("Uploads", [])]

    def url(self, prefix: str = "") -> str:
        return f"s3://{self.name}/{prefix}".rstrip("/")

    def job_env(self, cluster: Cluster, bindir: Path, prefix: str = "", **extra: str) -> dict[str, str]:
        """Settings for a run of ``cluster`` into this bucket under ``prefix``."""
        return {**self.server.env(), **job_env(cluster, self.url(prefix), bindir, **extra)}

    def proxied_env(
        self, cluster: Cluster, bindir: Path, prefix: str, proxy: FaultProxy, database: str, **extra: str
    ) -> dict[str, str]:
        """``job_env`` for one database, talking to this bucket through a fault proxy."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB_PREFIXES)}
        env.update(
            self.job_env(
                cluster,
                bindir,
                prefix,
                BACKUP_DATABASES=database,
                BACKUP_GLOBALS="false",
                BACKUP_S3_ADDRESSING_STYLE="path",
                **extra,
            )
        )
        env["AWS_ENDPOINT_URL_S3"] = proxy.endpoint
        return env


def run_pgbackup(
    env: dict[str, str], *args: str, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m backup_job`` as a user would, with exactly the given settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB_PREFIXES)}
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-m", "backup_job", *(args or ("run",))],
        env=clean,
        capture_output=True,
        text=True,
        cwd=cwd or ROOT / "tests",
        timeout=timeout,
    )


# The suite's signing key pair (a test fixture, nothing else trusts it): backups are signed and
# read as the docs set a deployment up. Tests of unsigned backups drop these.
SIGNING_KEY = ROOT / "tests" / "kit" / "data" / "signing-key.pem"
SIGNING_PUBLIC_KEY = "ed25519:vVou7SwWohd6TEsUiRUKI7DjgihzvjjvPR38Krc+iTA="
SIGNED = {"BACKUP_SIGNING_KEY_FILE": str(SIGNING_KEY), "BACKUP_SIGNING_PUBLIC_KEYS": SIGNING_PUBLIC_KEY}


def signed(values: dict[str, Any]) -> bytes:
    """A manifest changed by a test, signed again with the suite's key: what pgbackup itself
    could have written (a miscount, a bug), as opposed to a forgery."""
    from backup_job.core.signing import SigningKey

    values = {**values, "signature": SigningKey.load(SIGNING_KEY, "test key").sign(values)}
    return (json.dumps(values, indent=2, sort_keys=True) + "\n").encode()


def job_env(cluster: Cluster, destination: str, bindir: Path, **extra: str) -> dict[str, str]:
    """Settings for a run of ``cluster`` into ``destination``, signed. Drills run on the same test
    server (``BACKUP_VERIFY_ON_BACKUP_SERVER``): the tests of the drill's isolation unset it."""
    env = {
        **cluster.env(),
        "BACKUP_DESTINATION": destination,
        "BACKUP_PG_BINDIR": str(bindir),
        **SIGNED,
        "BACKUP_VERIFY_ON_BACKUP_SERVER": "true",
    }
    env.update(extra)
    return env


def manifest(data: bytes) -> dict[str, Any]:
    return dict(json.loads(data))


def restore(cluster: Cluster, bindir: Path, dump_gz: bytes, target: str) -> None:
    """Load a gzip'd plain dump into a new database with psql, stopping at the first error."""
    cluster.sql(f'CREATE DATABASE "{target}"')
    env = {**os.environ, **cluster.env(target)}
    loaded = subprocess.run(
        [str(bindir / "psql"), "--no-psqlrc", "-q", "-v", "ON_ERROR_STOP=1", "-X"],
        input=gzip.decompress(dump_gz),
        env=env,
        capture_output=True,
    )
    assert loaded.returncode == 0, f"psql failed to load the dump: {loaded.stderr.decode()}"


VARYING = ("\\restrict", "\\unrestrict", "-- Dumped from database version")  # differ between any two dumps


def comparable_dump(cluster: Cluster, bindir: Path, database: str) -> list[str]:
    """A plain dump of schema and data, as pgbackup's pg_dump writes it (each object's owner set
    as session user), minus the lines that differ between any two dumps."""
    env = {**os.environ, **cluster.env(database)}
    out = subprocess.run(
        [str(bindir / "pg_dump"), "--format=plain", "--use-set-session-authorization"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [line for line in out.splitlines() if not line.startswith(VARYING)]


def comparable_globals(cluster: Cluster, bindir: Path) -> list[str]:
    """``pg_dumpall --globals-only`` now, minus the lines that differ between any two dumps."""
    env = {**os.environ, **cluster.env("postgres")}
    out = subprocess.run(
        [str(bindir / "pg_dumpall"), "--globals-only"], env=env, check=True, capture_output=True, text=True
    ).stdout
    return [line for line in out.splitlines() if not line.startswith(VARYING)]


def fake_tool(directory: Path, real_bindir: Path, tool: str, body: str) -> Path:
    """A bin directory whose ``tool`` answers ``--version`` like the real one and otherwise runs
    the shell ``body`` (``$REAL`` is the real program); its other tools are the real ones."""
    directory.mkdir()
    for other in ("pg_dump", "pg_dumpall", "psql"):
        if other != tool:
            (directory / other).symlink_to(real_bindir / other)
    script = directory / tool
    script.write_text(
        "#!/bin/bash\n"
        f'REAL="{real_bindir}/{tool}"\n'
        'if [ "$1" = "--version" ]; then exec "$REAL" --version; fi\n'
        f"{body}\n"
    )
    script.chmod(0o755)
    return directory


def fake_pg_dump(directory: Path, real_bindir: Path, body: str) -> Path:
    """``fake_tool`` for pg_dump."""
    return fake_tool(directory, real_bindir, "pg_dump", body)


@contextmanager
def table_locked(cluster: Cluster, database: str, table: str) -> Iterator[None]:
    """Hold an ACCESS EXCLUSIVE lock on ``table`` from another session."""
    blocker = cluster.connect(database)
    blocker.autocommit = False
    try:
        blocker.cursor().execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        yield
    finally:
        blocker.close()


def dockerfile_final_stage() -> list[tuple[str, str]]:
    """The Dockerfile's last stage as (INSTRUCTION, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    instructions = [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]
    last = max(i for i, (name, _args) in enumerate(instructions) if name == "FROM")
    return instructions[last + 1 :]


def wait_for_next_second() -> None:
    """Return once the wall clock has entered a new second, so the next run's timestamp
    (which has second resolution) differs from every earlier run's."""
    start = datetime.now(UTC).replace(microsecond=0)
    wait_for(lambda: datetime.now(UTC).replace(microsecond=0) > start, timeout=5, what="the next second")


# A fault proxy path for ListMultipartUploads (``GET /<bucket>?uploads...``, path style).
UPLOAD_LISTING = r"^/[^/?]+/?\?(?:[^#]*&)?uploads(?:[&=]|$)"


def redated(started: Callable[[str], datetime]) -> Callable[[bytes], bytes]:
    """A fault proxy ``rewrite`` of ListMultipartUploads answers giving each upload the start
    ``started(key)``: honest dates for a store that has none (moto's server dates every upload
    2010-11-10), or wrong ones for one that has."""

    def upload(match: re.Match[str]) -> str:
        entry = match.group(0)
        key = html.unescape(re.search(r"<Key>(.*?)</Key>", entry, re.DOTALL).group(1))  # type: ignore[union-attr]
        stamp = started(key).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        return re.sub(r"<Initiated>[^<]*</Initiated>", f"<Initiated>{stamp}</Initiated>", entry)

    return lambda body: re.sub(r"<Upload>.*?</Upload>", upload, body.decode(), flags=re.DOTALL).encode()


def make_sample(cluster: Cluster, database: str, rows: int = 1000) -> None:
    """A database with awkward types and values, and ``rows`` rows of random text."""
    cluster.sql(f'CREATE DATABASE "{database}"')
    statements = [
        "CREATE SCHEMA shop",
        "CREATE TABLE shop.orders (id bigserial PRIMARY KEY, placed timestamptz NOT NULL,"
        " amount numeric(12,2), note text, tags text[], payload jsonb, blob bytea)",
        "INSERT INTO shop.orders (placed, amount, note, tags, payload, blob) VALUES"
        " ('2026-01-02 03:04:05+00', 12.34, E'tab\\there\\nnew line, \\\\ backslash', '{a,b}',"
        " '{\"k\": [1, 2, {\"x\": null}]}', '\\xdeadbeef'),"
        " (now(), NULL, 'ünïcødé ✓ 日本語', NULL, NULL, NULL),"
        " (now(), -0.01, '', '{}', '[]', '\\x')",
        f"CREATE TABLE bulk AS SELECT g AS id, md5(random()::text) || md5(g::text) AS filler"
        f" FROM generate_series(1, {rows}) g",
        "CREATE VIEW shop.big_orders AS SELECT * FROM shop.orders WHERE amount > 10",
        "CREATE FUNCTION shop.total() RETURNS numeric LANGUAGE sql AS 'SELECT sum(amount) FROM shop.orders'",
    ]
    for statement in statements:
        cluster.sql(statement, database)
