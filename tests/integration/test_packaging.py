"""The image and the compose stack, checked without a Docker engine: hadolint, the official
compose-spec schema, and that every setting the code reads is documented where users look.

The tests that run pgbackup or real services; the offline ones are in tests/unit/test_packaging.py."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from ..kit.helpers import ROOT

COMPOSE_GO = "github.com/compose-spec/compose-go/v2@v2.16.2"


@pytest.fixture(scope="module")
def compose_schema() -> dict[str, object]:
    """The compose-spec JSON schema as published in compose-go, from the Go module proxy."""
    download = subprocess.run(["go", "mod", "download", "-json", COMPOSE_GO], capture_output=True, text=True)
    assert download.returncode == 0, download.stderr
    directory = Path(json.loads(download.stdout)["Dir"])
    return dict(json.loads((directory / "schema" / "compose-spec.json").read_text()))


def test_compose_file_matches_the_compose_spec(compose_schema: dict[str, object]) -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    jsonschema.validate(compose, compose_schema)
    for name, service in compose["services"].items():
        image = service.get("image", "")
        assert image == "pgbackup:local" or re.search(r":\d+(\.\d+)+", image), f"{name}: pin the image tag ({image})"
    backup = compose["services"]["backup"]
    assert backup["command"] == ["schedule"] and backup["build"] == "."


def test_a_broken_compose_file_is_caught(compose_schema: dict[str, object]) -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    compose["services"]["backup"]["depends_on"] = {"postgres": {"condition": "when_ready"}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(compose, compose_schema)
