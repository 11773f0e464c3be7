"""Split backups, the parts that need no server: member keys, the manifest's checks of a
hostile split manifest, the archive listing, the options the readers honour, the connection
rule."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from typing import Any

import pytest

from backup_job.core.errors import ConfigError
from backup_job.core.layout import member_key, parse_key, parse_member, split_directory
from backup_job.core.manifest import Manifest, objects_digest
from backup_job.core.settings import DumpSettings
from backup_job.pg import connections, toc
from backup_job.pipeline.split import Honoured

STAMP = "20261206T020000Z"


def test_member_keys_parse_back_and_nothing_else_does() -> None:
    key = member_key("prod", "shop db", STAMP, "data-000001.copy.gz.age")
    assert key == f"prod/shop%20db/{STAMP}.split/data-000001.copy.gz.age"
    assert parse_member("prod", key) == ("shop db", STAMP, "data-000001.copy.gz.age")
    assert parse_key("prod", key) is None  # an older pgbackup's parser never takes it for its own
    for hostile in (
        f"prod/shop/{STAMP}.split/../x.copy.gz",
        f"prod/shop/{STAMP}.split/data-1.copy.gz",
        f"prod/shop/{STAMP}.split/DATA-000001.copy.gz",
        f"prod/shop/{STAMP}.split/notes.txt",
        f"prod/_globals/{STAMP}.split/pre-data.pgdump.gz",
        f"prod/shop/{STAMP}.splat/pre-data.pgdump.gz",
        "prod/shop/2026.split/pre-data.pgdump.gz",
        f"other/shop/{STAMP}.split/pre-data.pgdump.gz",
    ):
        assert parse_member("prod", hostile) is None, hostile


def _object(name: str, section: str, **extra: Any) -> dict[str, Any]:
    data = name.encode()
    entry = {
        "name": name,
        "key": member_key("prod", "shop", STAMP, f"{name}.{'copy' if section == 'data' else 'pgdump'}.gz"),
        "section": section,
        "raw_bytes": 10,
        "compressed_bytes": len(data),
        "parts": 1,
        "sha256": hashlib.sha256(data).hexdigest(),
        "block_bytes": 16 * 1024 * 1024,
        "block_sha256": base64.b64encode(hashlib.sha256(data).digest()).decode(),
    }
    entry.update(extra)
    return entry


def _split_values() -> dict[str, Any]:
    objects = [
        _object("pre-data", "pre-data"),
        _object(
            "data-000001",
            "data",
            table="public.t",
            relation=["public", "t"],
            load_into=["public", "t"],
            columns=["id"],
            rows=3,
        ),
        _object("post-data", "post-data"),
    ]
    return {
        "tool": "pgbackup",
        "format_version": 3,
        "format": "split",
        "database": "shop",
        "key": split_directory("prod", "shop", STAMP),
        "run_timestamp": STAMP,
        "raw_bytes": 30,
        "compressed_bytes": sum(o["compressed_bytes"] for o in objects),
        "sha256": objects_digest(objects),
        "parts": 3,
        "pg_dump_version": "18.1",
        "server_version": "18.1",
        "started_at": "x",
        "finished_at": "y",
        "duration_seconds": 1.0,
        "compression_level": 6,
        "objects": objects,
        "relations": {
            "public.t": {
                "oid": 16400,
                "schema": "public",
                "name": "t",
                "owner": "app",
                "pre": [[1259, 16400]],
                "post": [],
                "foreign_keys": [],
            }
        },
        "row_counts": {"public.t": 3},
    }


def test_a_split_manifest_parses_and_its_pieces_are_manifests_of_one_object() -> None:
    manifest = Manifest.from_json(json.dumps(_split_values()).encode())
    piece = manifest.piece(manifest.objects[1])
    assert manifest.split and not piece.split
    assert piece.key.endswith("data-000001.copy.gz") and piece.compressed_bytes == len(b"data-000001")
    assert len(manifest.slim().objects) == 3 and "block_sha256" not in manifest.slim().objects[0]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda v: v["objects"][1].update(key="prod/elsewhere/x.copy.gz"), "objects"),
        (lambda v: v["objects"].append(copy.deepcopy(v["objects"][0])), "objects"),
        (lambda v: v["objects"].pop(2), "objects"),
        (lambda v: v["objects"][1].update(name="../../x"), "objects[1]"),
        (lambda v: v["objects"][1].update(load_into=["public"]), "objects[1]"),
        (lambda v: v["objects"][1].update(columns="id); DROP TABLE t; --"), "objects[1]"),
        (lambda v: v["objects"][1].update(section="shell"), "objects[1]"),
        (lambda v: v["objects"][1].update(rows=-1), "objects[1].rows"),
        (lambda v: v.update(compressed_bytes=1), "compressed_bytes"),
        (lambda v: v.update(format_version=2), "format_version"),
        (lambda v: v["relations"]["public.t"].update(oid="16400"), "relations"),
        (lambda v: v["relations"]["public.t"].update(pre=[[1259, -1]]), "relations"),
        (lambda v: v["relations"].update({"no name; here": {}}), "relations"),
        (lambda v: v.update(format="plain"), "objects"),
    ],
)
def test_a_hostile_split_manifest_is_refused_naming_the_field(change: Any, field: str) -> None:
    values = _split_values()
    change(values)
    with pytest.raises(ValueError, match=rf"field {field.replace('[', '.').replace(']', '.')}"):
        Manifest.from_json(json.dumps(values).encode())


def test_a_pgbackup_from_before_split_backups_lists_one_as_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    from backup_job.core import manifest as module

    monkeypatch.setattr(module, "UNDERSTOOD_VERSION", module.SEALED_FORMAT_VERSION)  # what it understood
    with pytest.raises(module.NotUnderstood, match="newer than this pgbackup understands"):
        Manifest.from_json(json.dumps(_split_values()).encode())


LISTING = """;
; Selected TOC Entries:
;
221; 1259 16386 TABLE public a postgres
2590; 0 0 COMMENT public TABLE a postgres
;\tdepends on: 221
220; 1259 16385 SEQUENCE public a_id_seq postgres
;\tdepends on: 221
2593; 0 0 SEQUENCE OWNED BY public a_id_seq postgres
;\tdepends on: 220
222; 1259 16398 TABLE we ird x y postgres
2594; 0 0 ACL we ird TABLE x y postgres
;\tdepends on: 222
2429; 2606 16401 FK CONSTRAINT we ird x y x y_z_fkey postgres
2578; 0 16386 ROW SECURITY public a postgres
;\tdepends on: 221
"""


def test_the_listing_is_read_by_oids_and_dependencies_never_by_names() -> None:
    entries = toc.parse(LISTING)
    assert [e.kind for e in entries] == [
        "TABLE",
        "COMMENT",
        "SEQUENCE",
        "SEQUENCE OWNED BY",
        "TABLE",
        "ACL",
        "FK CONSTRAINT",
        "ROW SECURITY",
    ]
    assert toc.tables(entries) == [16386, 16398]
    chosen = toc.select(entries, {(1259, 16386), (1259, 16385), (0, 16386)})
    assert [e.dump_id for e in chosen] == [221, 2590, 220, 2593, 2578]
    assert toc.list_file(chosen).splitlines()[0] == "221; 1259 16386 TABLE public a postgres"


def test_the_readers_honour_the_data_options_and_the_schema_dumps_keep_the_rest() -> None:
    honoured = Honoured.read(
        ("--serializable-deferrable", "--exclude-table-data=audit.*", "-E", "LATIN1", "--enable-row-security", "-O")
    )
    assert honoured.serializable and honoured.row_security and honoured.encoding == "LATIN1"
    assert honoured.exclude_data == ("--table=audit.*",)
    assert "--serializable-deferrable" not in honoured.schema_options and "-O" in honoured.schema_options


def _dump(**env: str) -> DumpSettings:
    return DumpSettings.read(env)


def test_split_settings_refuse_what_the_readers_cannot_honour() -> None:
    assert _dump(BACKUP_FORMAT="split", BACKUP_DUMP_JOBS="4").dump_jobs == 4
    with pytest.raises(ConfigError, match=r"BACKUP_DUMP_JOBS.*applies only with BACKUP_FORMAT=split"):
        _dump(BACKUP_DUMP_JOBS="4")
    for option in ("--inserts", "--data-only", "-a", "--section=data", "--snapshot=x", "--filter=f"):
        with pytest.raises(ConfigError, match="with BACKUP_FORMAT=split"):
            _dump(BACKUP_FORMAT="split", BACKUP_PG_DUMP_OPTIONS=option)
    with pytest.raises(ConfigError, match="BACKUP_FORMAT=split with BACKUP_DUMP_JOBS"):
        _dump(BACKUP_PG_DUMP_OPTIONS="--jobs=4")


class _Cursor:
    def __init__(self, free: int) -> None:
        self.free = free

    def execute(self, *_args: object) -> None:
        pass

    def fetchone(self) -> tuple[int]:
        return (self.free,)

    def __enter__(self) -> _Cursor:
        return self

    def __exit__(self, *_exc: object) -> None:
        pass


class _Target:
    def __init__(self, free: int) -> None:
        self.free = free

    def connect(self, _database: str) -> Any:
        free = self.free

        class Connection:
            def cursor(self) -> _Cursor:
                return _Cursor(free)

            def close(self) -> None:
                pass

        return Connection()


@pytest.mark.parametrize(
    ("free", "wanted", "parallel", "jobs"),
    [(100, 8, 4, 8), (40, 8, 4, 6), (10, 8, 4, 1), (0, 8, 1, 1), (21, 16, 2, 6)],
)
def test_readers_fit_the_server_s_free_connections(free: int, wanted: int, parallel: int, jobs: int) -> None:
    # parallel x (jobs + 2) <= free - RESERVE, never below one reader
    assert connections.fit(_Target(free), "postgres", wanted, parallel) == jobs  # type: ignore[arg-type]
