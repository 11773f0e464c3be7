"""Reading a custom resource's JSON into the typed spec, one dataclass at a time.

The dataclasses of ``pgbackup`` and ``pgrestore`` are the whole description: each field's
Python name is its CRD name in snake case (``crd_name``: ``ca_secret_ref`` is ``caSecretRef``,
a trailing ``_`` dodges a keyword), and its annotation says what the JSON must hold:

- ``str``, ``int``, ``float``, ``bool``: that scalar (``bool`` is never an ``int``);
- ``X | None`` with default None: the field may be left out (JSON ``null`` counts as left out);
- a default value: the CRD's own default, for specs that did not pass the API server;
- no default: the field is required;
- another dataclass: a nested object, read the same way;
- ``tuple[X, ...]``: a JSON array of X;
- ``Mapping[str, Any]`` (or a tuple of them): a pass-through subtree the operator copies
  into pods as it is (resources, tolerations, env...). It is deep-copied here, so the typed
  object shares nothing with the body it came from.

A string field may also carry the CRD's pattern (``field(metadata=matching(...))``): each of
its strings (or of its list's) must match it whole and fit its length; the operator puts such
strings on a command line.

A value of the wrong shape is a ``RenderError`` naming its path (``spec.destination.s3.bucket:
must be a string``) with reason ``InvalidSpec``, or the reason in the field's metadata
(``field(metadata=reason("PodNotAllowed"))``) where the operator reported that kind of mistake
under a reason of its own before the spec was typed; nested objects inherit it.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import types
import typing
from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar

from ..api import RenderError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")
INVALID = "InvalidSpec"
SHAPES = {str: "a string", bool: "true or false", int: "an integer", float: "a number"}


def reason(name: str) -> dict[str, str]:
    """Field metadata: report a wrong shape under reason ``name`` rather than ``InvalidSpec``."""
    return {"reason": name}


def matching(pattern: re.Pattern[str], longest: int, meaning: str) -> dict[str, Any]:
    """Field metadata: each string of the field matches ``pattern`` whole and holds at most
    ``longest`` characters, as the CRD's pattern and maxLength say; ``meaning`` names the form."""
    return {"pattern": pattern, "longest": longest, "meaning": meaning}


def crd_name(field: str) -> str:
    """``ca_secret_ref`` -> ``caSecretRef``; ``on_`` -> ``on``."""
    head, *rest = field.rstrip("_").split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


@cache
def hints(cls: type[Any]) -> dict[str, Any]:
    """The resolved annotations of a dataclass of the typed spec, by field name."""
    return typing.get_type_hints(cls)


def optional(annotation: Any) -> Any:
    """``X`` of ``X | None``; anything else as it is."""
    if typing.get_origin(annotation) in (types.UnionType, typing.Union):
        [inner] = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return inner
    return annotation


def parse_object(cls: type[T], value: Any, path: str, why: str = INVALID) -> T:
    """``value`` (a JSON object) as the dataclass ``cls``; ``path`` names it in errors."""
    if not isinstance(value, Mapping):
        raise RenderError(f"{path}: must be an object", why)
    given: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        where = f"{path}.{crd_name(field.name)}"
        raw = value.get(crd_name(field.name))
        if raw is None:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise RenderError(f"{where}: is required", field.metadata.get("reason", why))
            continue
        given[field.name] = convert(hints(cls)[field.name], raw, where, field.metadata.get("reason", why))
        if "pattern" in field.metadata:
            check(given[field.name], field.metadata, where, field.metadata.get("reason", why))
    return cls(**given)


def check(value: str | tuple[str, ...], rule: Mapping[str, Any], where: str, why: str) -> None:
    """``value`` (or each of its items) as ``matching`` said, or ``RenderError`` naming it; a
    value too long to be one is not shown."""
    if isinstance(value, tuple):
        for index, item in enumerate(value):
            check(item, rule, f"{where}[{index}]", why)
        return
    if len(value) > rule["longest"]:
        raise RenderError(f"{where}: longer than {rule['longest']} characters: it must be {rule['meaning']}", why)
    if not rule["pattern"].fullmatch(value):
        raise RenderError(f"{where}: {value!r} is not {rule['meaning']}", why)


def convert(annotation: Any, raw: Any, where: str, why: str) -> Any:
    """One JSON value as ``annotation`` says, or ``RenderError``."""
    kind = optional(annotation)
    origin = typing.get_origin(kind)
    if origin is tuple:
        if not isinstance(raw, (list, tuple)):
            raise RenderError(f"{where}: must be a list", why)
        item = typing.get_args(kind)[0]
        return tuple(convert(item, entry, f"{where}[{index}]", why) for index, entry in enumerate(raw))
    if origin is Mapping:
        if not isinstance(raw, Mapping):
            raise RenderError(f"{where}: must be an object", why)
        return copy.deepcopy(dict(raw))
    if dataclasses.is_dataclass(kind):
        return parse_object(kind, raw, where, why)  # type: ignore[arg-type]
    return scalar(kind, raw, where, why)


def scalar(kind: type[Any], raw: Any, where: str, why: str) -> Any:
    accepted: tuple[type[Any], ...] = (int, float) if kind is float else (kind,)
    if isinstance(raw, bool) != (kind is bool) or not isinstance(raw, accepted):
        raise RenderError(f"{where}: must be {SHAPES[kind]}", why)
    return raw


def plain(value: Any) -> Any:
    """A pass-through value as the pod wants it: its own dicts and lists, deep-copied."""
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value
