"""A split backup restores by hand with the standard tools alone, exactly as
docs/big-databases.md's "Restoring a split backup by hand" says.

No pgbackup code reads the backup back: boto3 downloads the objects (standing in for
``aws s3 cp``), Python's json reads the manifest (standing in for ``jq``), and then only
``sha256sum``'s arithmetic, ``gunzip`` (or ``age`` and ``zstd``), ``createdb``, ``pg_restore``
and ``psql``, piped by bash as a user would type them. The restored database must dump exactly
as the source does.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from devenv.postgres import Cluster

from ..kit.helpers import Bucket, comparable_dump, run_pgbackup
from .test_split_backup import make_shapes


def _quoted(name: str) -> str:
    """An SQL identifier, double-quoted as the docs say: every ``"`` in it doubled."""
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class ByHand:
    """The documented steps, each a bash command line, run in ``work`` against one database."""

    def __init__(self, work: Path, cluster: Cluster, bindir: Path, target: str, opener: str) -> None:
        self.work = work
        self.env = {**cluster.env(target), "PATH": f"{bindir}:/usr/bin:/bin"}
        self.target = target
        self.opener = opener  # "gunzip -c FILE", or "age -d -i KEY FILE | zstd -dc"
        self.unseal = opener.split(" FILE", 1)[0] if opener.startswith("age ") else ""

    def sh(self, line: str) -> str:
        done = subprocess.run(
            ["bash", "-o", "pipefail", "-c", line], cwd=self.work, env=self.env, capture_output=True, text=True
        )
        assert done.returncode == 0, f"{line}\n{done.stdout}{done.stderr}"
        return done.stdout

    def open(self, file: str) -> str:
        return self.opener.replace("FILE", shlex.quote(file))


def _restore_by_hand(steps: ByHand, facts: dict[str, Any], files: dict[str, str]) -> list[tuple[str, int, int]]:
    """The section's steps 3-7; each data object's (name, rows the manifest says, rows COPY loaded)."""
    target = steps.target
    encoding, database = facts["encoding"], facts["database_properties"]
    if database is None:  # sealed with the objects: opened with the same key
        database = json.loads(steps.sh(f"echo {facts['sealed_database_properties']} | base64 -d | {steps.unseal}"))
    locale = f"--lc-collate={database['collate']} --lc-ctype={database['ctype']}"
    steps.sh(f"createdb -T template0 -E {encoding} {locale} {target}")
    for name in ("pre-data", "large-objects"):
        steps.sh(f"{steps.open(files[name])} > {name}.pgdump")
        steps.sh(f"pg_restore --exit-on-error -d {target} {name}.pgdump")
    loaded = []
    for obj in facts["objects"]:
        if obj["section"] == "table-data":
            steps.sh(
                f"{steps.open(files[obj['name']])} | "
                f"pg_restore --data-only --single-transaction --exit-on-error -d {target}"
            )
            continue
        if obj["section"] != "data":
            continue
        table = ".".join(_quoted(part) for part in obj["load_into"])
        columns = ", ".join(_quoted(column) for column in obj["columns"])
        copy = f"\\copy {table} ({columns}) FROM STDIN"
        out = steps.sh(
            f"{steps.open(files[obj['name']])} | PGCLIENTENCODING={encoding} "
            f"psql -X -v ON_ERROR_STOP=1 -d {target} -c {shlex.quote(copy)}"
        )
        [count] = re.findall(r"^COPY (\d+)$", out, re.MULTILINE)
        loaded.append((obj["name"], obj["rows"], int(count)))
    sequences = json.loads(steps.sh(steps.open(files["sequences"])))["sequences"]
    setval = "".join(
        f"SELECT pg_catalog.setval({_literal(_quoted(s['schema']) + '.' + _quoted(s['name']))}, "
        f"{s['last_value']}, {str(s['is_called']).lower()});\n"
        for s in sequences
    )
    (steps.work / "sequences.sql").write_text(setval)
    steps.sh(f"psql -X -q -v ON_ERROR_STOP=1 -d {target} -f sequences.sql")
    steps.sh(f"{steps.open(files['post-data'])} > post-data.pgdump")
    steps.sh(f"pg_restore --exit-on-error -j 2 -d {target} post-data.pgdump")
    steps.sh(f"psql -X -d {target} -c ANALYZE")
    return loaded


@pytest.mark.parametrize("variant", ["gzip", "zstd+age"])
def test_a_split_backup_restores_by_hand_with_the_standard_tools(
    variant: str, pg18: Cluster, bindir18: Path, bucket: Bucket, dbname: str, tmp_path: Path
) -> None:
    make_shapes(pg18, dbname)
    original = comparable_dump(pg18, bindir18, dbname)
    extra = {"BACKUP_DUMP_JOBS": "2"}
    opener = "gunzip -c FILE"
    if variant == "zstd+age":
        key = tmp_path / "key.txt"
        made = subprocess.run(["age-keygen", "-o", str(key)], capture_output=True, text=True, check=True)
        extra.update(BACKUP_COMPRESSION="zstd", BACKUP_ENCRYPT_RECIPIENTS=made.stderr.split("Public key: ")[1].strip())
        opener = f"age -d -i {shlex.quote(str(key))} FILE | zstd -dc"
    extra["BACKUP_SPLIT_TABLE_MB"] = "2"  # tables of two pages or more alone, the tiny ones bundled
    env = bucket.job_env(
        pg18, bindir18, "hand", BACKUP_DATABASES=dbname, BACKUP_FORMAT="split", BACKUP_GLOBALS="false", **extra
    )
    made_backup = run_pgbackup(env)
    assert made_backup.returncode == 0, made_backup.stdout + made_backup.stderr

    # 1-2: the newest manifest and the objects beside it, downloaded; each checked against it.
    work = tmp_path / "restore"
    (work / "split").mkdir(parents=True)
    client = bucket.server.client()
    listed = client.list_objects_v2(Bucket=bucket.name, Prefix=f"hand/{dbname}/")["Contents"]
    [manifest_key] = [o["Key"] for o in listed if o["Key"].endswith(".manifest.json")]
    client.download_file(bucket.name, manifest_key, str(work / "manifest.json"))
    facts = json.loads((work / "manifest.json").read_text())
    files: dict[str, str] = {}
    for obj in facts["objects"]:
        file = "split/" + obj["key"].rsplit("/", 1)[-1]
        client.download_file(bucket.name, obj["key"], str(work / file))
        assert hashlib.sha256((work / file).read_bytes()).hexdigest() == obj["sha256"], file  # sha256sum -c
        files[obj["name"]] = file
    assert shutil.which("age") and shutil.which("zstd"), "scripts/test installs Debian's age and zstd"

    copy = f"{dbname}_by_hand"
    loaded = _restore_by_hand(ByHand(work, pg18, bindir18, copy, opener), facts, files)

    assert len(loaded) == len([o for o in facts["objects"] if o["section"] == "data"]) >= 3
    assert [o for o in facts["objects"] if o["section"] == "table-data"], "a bundle of small tables too"
    assert all(rows == count for _name, rows, count in loaded), loaded
    assert comparable_dump(pg18, bindir18, copy) == [line.replace(dbname, copy) for line in original]
    assert pg18.sql("SELECT last_value, is_called FROM free_counter", copy) == [(101, True)]
    assert pg18.sql("SELECT convert_from(lo_get(oid), 'UTF8') FROM pg_largeobject_metadata", copy) == [
        ("a large object",)
    ]
