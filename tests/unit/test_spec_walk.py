"""The typed spec held against the CRDs, both ways, and the CRDs' status against the code.

The dataclasses of ``pgbackup_operator.spec`` are written by hand and checked here against
``deploy/crd.yaml`` and ``deploy/crd-pgrestore.yaml``, walking each ``spec`` schema:

- every field the schema declares is a field of the typed spec (so it is read), and every
  field of the typed spec is declared (so nothing is read that the API server drops);
- the JSON types agree (string, integer, number, boolean, object, array), and a field the
  classes require is required by the schema too;
- a ``Mapping`` field is a pass-through subtree: declared or not below it, it counts as read;
- every field of the typed spec is read somewhere in the operator (an attribute of that
  name outside its class).

And every field declared in each CRD's ``status`` schema is written by the operator: its key
appears as a key of a dict display or of a subscript assignment in the operator's code.
Read from the source with ``ast``; nothing is imported for that part.
"""

from __future__ import annotations

import ast
import dataclasses
import typing
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

import pytest
import yaml

from pgbackup_operator.spec import PgBackupSpec, PgRestoreSpec
from pgbackup_operator.spec.read import crd_name, hints, optional

from ..kit.helpers import ROOT

OPERATOR = ROOT / "operator" / "pgbackup_operator"
CRDS = {"deploy/crd.yaml": PgBackupSpec, "deploy/crd-pgrestore.yaml": PgRestoreSpec}
JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean"}


@cache
def openapi(crd: str) -> dict[str, Any]:
    document = yaml.safe_load((ROOT / crd).read_text())
    schema: dict[str, Any] = document["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def mismatches(cls: type[Any], schema: dict[str, Any], path: str) -> list[str]:
    """Where the dataclass ``cls`` and the object schema at ``path`` disagree."""
    declared: dict[str, Any] = schema.get("properties") or {}
    fields = {crd_name(field.name): field for field in dataclasses.fields(cls)}
    found = [
        f"{path}.{key}: declared in the CRD but read nowhere (no field of {cls.__name__})"
        for key in sorted(declared.keys() - fields.keys())
    ]
    found += [
        f"{path}.{key}: read ({cls.__name__}.{fields[key].name}) but not declared in the CRD"
        for key in sorted(fields.keys() - declared.keys())
    ]
    required = set(schema.get("required") or [])
    for key in sorted(fields.keys() & declared.keys()):
        field = fields[key]
        if (
            field.default is dataclasses.MISSING
            and field.default_factory is dataclasses.MISSING
            and key not in required
        ):
            found.append(f"{path}.{key}: required by {cls.__name__} but optional in the CRD")
        found += compare(hints(cls)[field.name], declared[key], f"{path}.{key}")
    return found


def compare(annotation: Any, schema: dict[str, Any], path: str) -> list[str]:
    kind = optional(annotation)
    declared = schema.get("type")
    if typing.get_origin(kind) is Mapping:
        return (
            [] if declared == "object" else [f"{path}: a pass-through object in the typed spec, {declared} in the CRD"]
        )
    if typing.get_origin(kind) is tuple:
        if declared != "array":
            return [f"{path}: a list in the typed spec, {declared} in the CRD"]
        return compare(typing.get_args(kind)[0], schema.get("items") or {}, f"{path}[]")
    if dataclasses.is_dataclass(kind):
        if declared != "object":
            return [f"{path}: an object in the typed spec, {declared} in the CRD"]
        return mismatches(kind, schema, path)  # type: ignore[arg-type]
    if JSON_TYPES.get(kind) != declared:
        return [f"{path}: {JSON_TYPES.get(kind, kind)} in the typed spec, {declared} in the CRD"]
    return []


def classes(cls: type[Any]) -> list[type[Any]]:
    """``cls`` and every dataclass below it."""
    found = [cls]
    for annotation in hints(cls).values():
        kind = optional(annotation)
        if typing.get_origin(kind) is tuple:
            kind = typing.get_args(kind)[0]
        if dataclasses.is_dataclass(kind):
            found += [c for c in classes(kind) if c not in found]  # type: ignore[arg-type]
    return found


@cache
def operator_trees() -> tuple[ast.Module, ...]:
    """The operator's source, parsed once for the whole file."""
    return tuple(ast.parse(path.read_text()) for path in sorted(OPERATOR.rglob("*.py")))


def attributes_read(trees: Sequence[ast.Module]) -> set[str]:
    return {node.attr for tree in trees for node in ast.walk(tree) if isinstance(node, ast.Attribute)}


def keys_written(trees: Sequence[ast.Module]) -> set[str]:
    """String keys of dict displays and of subscript assignments (``update["phase"] = ...``)."""
    found: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Dict):
                found |= {
                    key.value for key in node.keys if isinstance(key, ast.Constant) and isinstance(key.value, str)
                }
            elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store):
                if isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
                    found.add(node.slice.value)
    return found


def status_fields(schema: dict[str, Any], path: str) -> list[tuple[str, str]]:
    """Every (path, key) the status schema declares, nested objects and list items included."""
    found = []
    for key, below in (schema.get("properties") or {}).items():
        found.append((f"{path}.{key}", key))
        found += status_fields(below, f"{path}.{key}")
    if "items" in schema:
        found += status_fields(schema["items"], f"{path}[]")
    return found


@pytest.mark.parametrize("crd", sorted(CRDS))
def test_every_declared_spec_field_is_read_and_every_read_field_declared(crd: str) -> None:
    spec = openapi(crd)["properties"]["spec"]
    assert mismatches(CRDS[crd], spec, "spec") == []


@pytest.mark.parametrize("crd", sorted(CRDS))
def test_every_field_of_the_typed_spec_is_read_by_the_operator(crd: str) -> None:
    read = attributes_read(operator_trees())
    unread = [
        f"{cls.__name__}.{field.name}"
        for cls in classes(CRDS[crd])
        for field in dataclasses.fields(cls)
        if field.name not in read
    ]
    assert unread == []


@pytest.mark.parametrize("crd", sorted(CRDS))
def test_every_declared_status_field_is_written(crd: str) -> None:
    written = keys_written(operator_trees())
    status = openapi(crd)["properties"]["status"]
    assert [path for path, key in status_fields(status, "status") if key not in written] == []


def test_the_walk_sees_a_field_declared_on_one_side_only() -> None:
    """The checks above can fail: a schema with a field the class lacks, and one without a
    field the class has, a type that disagrees, and a status key nobody writes."""
    spec = openapi("deploy/crd-pgrestore.yaml")["properties"]["spec"]
    extra = {**spec, "properties": {**spec["properties"], "colour": {"type": "string"}}}
    assert mismatches(PgRestoreSpec, extra, "spec") == [
        "spec.colour: declared in the CRD but read nowhere (no field of PgRestoreSpec)"
    ]
    missing = {**spec, "properties": {k: v for k, v in spec["properties"].items() if k != "at"}}
    assert mismatches(PgRestoreSpec, missing, "spec") == [
        "spec.at: read (PgRestoreSpec.at) but not declared in the CRD"
    ]
    retyped = {**spec, "properties": {**spec["properties"], "globals": {"type": "string"}}}
    assert mismatches(PgRestoreSpec, retyped, "spec") == ["spec.globals: boolean in the typed spec, string in the CRD"]
    unwritten = {"properties": {"phase": {"type": "string"}, "nobodyWritesThis": {"type": "string"}}}
    written = keys_written([ast.parse('update = {"phase": 1}')])
    assert [path for path, key in status_fields(unwritten, "status") if key not in written] == [
        "status.nobodyWritesThis"
    ]
