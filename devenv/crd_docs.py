"""The field reference (docs/crd.md), made from the CRDs' OpenAPI schemas.

``deploy/crd.yaml`` (PgBackup) and ``deploy/crd-pgrestore.yaml`` (PgRestore) are the source
of truth for what the API server accepts; this walks their ``openAPIV3Schema`` and writes one
row per field: its path, type, default, the validation the API server applies (required,
enum, minimum and maximum, lengths, pattern, and each CEL rule's message) and its description.
``python -m devenv.crd_docs`` rewrites the page, and ``tests/unit/test_crd_docs.py`` fails while the
committed page differs from what this makes.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "crd.md"
CRDS = [ROOT / "deploy" / "crd.yaml", ROOT / "deploy" / "crd-pgrestore.yaml"]
BOUNDS = [
    ("minimum", "≥ {}"),
    ("maximum", "≤ {}"),
    ("minLength", "length ≥ {}"),
    ("maxLength", "length ≤ {}"),
    ("minItems", "items ≥ {}"),
    ("maxItems", "items ≤ {}"),
    ("minProperties", "keys ≥ {}"),
    ("maxProperties", "keys ≤ {}"),
]
HEADER = """# PgBackup and PgRestore fields

Every field of the two resources, as the API server checks them: made from the CRDs' OpenAPI
schemas (`deploy/crd.yaml`, `deploy/crd-pgrestore.yaml`) by `python -m devenv.crd_docs`; do not
edit this page by hand. `kubectl explain pgb.spec` and `kubectl explain pgr.spec` show the same
descriptions in a cluster. A value the API server refuses is named with its path
(`spec.compressionLevel: Invalid value: 12: ...`); a rule's message below is what it says.
`[]` in a path is each item of a list, `{}` each value of a map.
"""


def _text(value: str) -> str:
    """A description or message as table-cell Markdown: one line, no cell breaks, no raw HTML."""
    parts = " ".join(value.split()).split("`")
    for i in range(0, len(parts), 2):  # outside code spans: a * is a star, a < no tag, a | no cell break
        parts[i] = re.sub(r"(?<!\\)\*", r"\\*", parts[i]).replace("<", "&lt;").replace("|", "\\|")
    return "`".join(parts)


def _code(value: Any) -> str:
    """A value as a code span; a pipe stays a pipe there (MkDocs' tables split cells outside code only)."""
    shown = value if isinstance(value, str) else json.dumps(value)
    fence = "``" if "`" in shown else "`"
    return f"{fence}{shown}{fence}" if fence == "`" else f"{fence} {shown} {fence}"


def _type(schema: dict[str, Any]) -> str:
    kind = str(schema.get("type", "any"))
    if kind == "array":
        return f"array of {_type(schema.get('items', {}))}"
    if kind == "object" and "additionalProperties" in schema and "properties" not in schema:
        return f"map of {_type(schema['additionalProperties'])}"
    if schema.get("x-kubernetes-int-or-string"):
        return "integer or string"
    return kind + (f" ({schema['format']})" if "format" in schema else "")


def _checks(schema: dict[str, Any], required: bool) -> list[str]:
    checks = ["required"] if required else []
    if "enum" in schema:
        checks.append("one of " + ", ".join(_code(v) for v in schema["enum"]))
    checks += [text.format(schema[key]) for key, text in BOUNDS if key in schema]
    if "pattern" in schema:
        checks.append(f"matches {_code(schema['pattern'])}")
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        checks.append("any fields kept as given")
    for rule in schema.get("x-kubernetes-validations", []):
        checks.append(
            f"{_text(rule.get('message', ''))} (rule {_code(rule['rule'])})"
            if "message" in rule
            else f"rule {_code(rule['rule'])}"
        )
    return checks


def _rows(path: str, schema: dict[str, Any], required: bool) -> list[str]:
    default = _code(schema["default"]) if "default" in schema else ""
    row = (
        f"| `{path}` | {_type(schema)} | {default} | {'; '.join(_checks(schema, required))} | "
        f"{_text(schema.get('description', ''))} |"
    )
    rows = [row]
    wanted = set(schema.get("required", []))
    for name, child in schema.get("properties", {}).items():
        rows += _rows(f"{path}.{name}", child, name in wanted)
    items = schema.get("items")
    if isinstance(items, dict):
        for name, child in items.get("properties", {}).items():
            rows += _rows(f"{path}[].{name}", child, name in set(items.get("required", [])))
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for name, child in extra.get("properties", {}).items():
            rows += _rows(f"{path}{{}}.{name}", child, name in set(extra.get("required", [])))
    return rows


def section(crd: dict[str, Any]) -> str:
    """One kind: its description, then a table for spec and one for status."""
    names, version = crd["spec"]["names"], crd["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]
    lines = [
        f"## {names['kind']}",
        "",
        f"`apiVersion: {crd['spec']['group']}/{version['name']}`, `kind: {names['kind']}`; "
        f"short name {', '.join(f'`{n}`' for n in names.get('shortNames', []))}. "
        + _text(schema.get("description", "")),
        "",
    ]
    for top in ("spec", "status"):
        if top not in schema.get("properties", {}):
            continue
        lines += [
            f"### {names['kind']} {top}",
            "",
            "| Field | Type | Default | Validation | Description |",
            "|---|---|---|---|---|",
            *_rows(top, schema["properties"][top], top in schema.get("required", [])),
            "",
        ]
    return "\n".join(lines)


def render() -> str:
    return HEADER + "".join("\n" + section(yaml.safe_load(path.read_text())) for path in CRDS)


def main() -> int:
    text = render()
    if not PAGE.exists() or PAGE.read_text() != text:
        PAGE.write_text(text)
        print(f"updated {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
