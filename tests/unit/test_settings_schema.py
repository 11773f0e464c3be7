"""The settings schema holds its promises: one declaration per variable, docs made from it, and
the operator's rendering read back by the job's own parser (no cluster needed)."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from backup_job.core import settings as S
from backup_job.core.retention import RetentionPolicy
from backup_job.core.termination import LIMIT, TerminationMessage
from backup_job.pg.target import verify_server
from devenv import env_example
from devenv.settings_docs import BLOCK, render
from pgbackup_operator import render as operator

from ..kit.helpers import ROOT

OWN = [v for v in S.ALL if v.owner in ("pgbackup", "operator")]  # named once in the code
COMPOSE_STACK = {"POSTGRES_PASSWORD", "BACKUP_BUCKET", "BACKUP_PREFIX"}  # docker-compose.yml's own, not pgbackup's

SPEC: dict[str, Any] = {  # every field that becomes a variable, none at its default
    "schedule": "30 2 * * *",
    "postgres": {
        "host": "pg.db.svc",
        "port": 6432,
        "database": "maint",
        "sslMode": "verify-full",
        "userSecretRef": {"name": "pg", "key": "user"},
        "passwordSecretRef": {"name": "pg", "key": "pw"},
        "tls": {"caSecretRef": {"name": "pg-ca", "key": "root.crt"}, "clientCertSecretRef": {"name": "c"}},
    },
    "databases": {"include": ["app*", "shop"], "exclude": ["app_test"]},
    "destination": {
        "s3": {
            "bucket": "backups",
            "prefix": "/pg/prod/",
            "region": "eu-west-1",
            "endpoint": "http://minio:9000",
            "pathStyle": True,
            "checksumCompatibility": True,
            "serverSideEncryption": "aws:kms",
            "kmsKeyId": "alias/pg",
            "storageClass": "STANDARD_IA",
            "credentialsSecretRef": {"name": "s3"},
        }
    },
    "compressionLevel": 3,
    "pgDumpOptions": ["--exclude-table-data=audit.*", "--no-owner", "--exclude-schema=it's"],
    "globals": False,
    "retention": {"monthly": 12, "last": 7, "weekly": 8, "daily": 14},
    "shrinkAlarm": 0.25,
    "verify": {
        "schedule": "0 5 * * 0",
        "databases": ["shop"],
        "server": {
            "host": "scratch.db.svc",
            "port": 7432,
            "database": "drills",
            "sslMode": "require",
            "user": "drill",
            "passwordSecretRef": {"name": "scratch", "key": "pw"},
            "tls": {"caSecretRef": {"name": "s-ca"}},
        },
    },
}
SECRETS = {
    ("pg", "user"): "backup",
    ("pg", "pw"): "pg-secret",
    ("s3", "AWS_ACCESS_KEY_ID"): "AKIA",
    ("s3", "AWS_SECRET_ACCESS_KEY"): "s3-secret",
    ("scratch", "pw"): "scratch-secret",
}


# What the downward API gives a pod the Job controller made from the CronJob
POD_FIELDS = {
    "metadata.labels['batch.kubernetes.io/job-name']": "pgbackup-prod-29400000",
    "metadata.labels['batch.kubernetes.io/controller-uid']": "0d6c6a55-4a8e-4c59-9a43-05a8b47f7a2e",
}


def resolved_env(cronjob: dict[str, Any]) -> dict[str, str]:
    """The pod's environment as the kubelet would hand it to the job (Secrets resolved)."""
    container = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    env = {}
    for item in container["env"]:
        if "value" in item:
            env[item["name"]] = item["value"]
        elif "fieldRef" in item["valueFrom"]:
            env[item["name"]] = POD_FIELDS[item["valueFrom"]["fieldRef"]["fieldPath"]]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = SECRETS[(ref["name"], ref["key"])]
    return env


def body(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "pgbackup.io/v1alpha1",
        "kind": "PgBackup",
        "metadata": {"name": "prod", "namespace": "db", "uid": "u-1", "generation": 1},
        "spec": spec,
    }


def test_every_pgbackup_field_renders_to_what_the_job_parses_back(tmp_path: Path) -> None:
    backup, drill = operator.render_cronjobs(body(SPEC), "img:1")
    env = resolved_env(backup)
    assert set(env) <= set(S.BY_NAME), set(env) - set(S.BY_NAME)
    settings = S.load_settings(env, dotenv_path=tmp_path / "none")
    assert (settings.destination.bucket, settings.destination.prefix) == ("backups", "pg/prod")
    assert settings.storage == S.S3Settings("path", "aws:kms", "alias/pg", "STANDARD_IA")
    assert (settings.dump.include, settings.dump.exclude) == (("app*", "shop"), ("app_test",))
    assert settings.compression.level == 3
    assert settings.dump.pg_dump_options == tuple(SPEC["pgDumpOptions"])
    assert settings.dump.globals is False and settings.run.shrink_alarm == 0.25
    assert settings.run.retention == RetentionPolicy(last=7, daily=14, weekly=8, monthly=12)
    assert (
        settings.postgres.discovery_database == "maint" and str(settings.run.termination_log) == "/dev/termination-log"
    )
    assert set(settings.secrets()) == {"pg-secret", "AKIA", "s3-secret"}
    assert (env["PGHOST"], env["PGPORT"], env["PGUSER"], env["PGSSLMODE"]) == (
        "pg.db.svc",
        "6432",
        "backup",
        "verify-full",
    )
    assert env["PGSSLROOTCERT"].endswith("/ca/root.crt") and env["PGSSLKEY"].endswith("/client/tls.key")
    assert env["AWS_REGION"] == "eu-west-1" and env["AWS_ENDPOINT_URL_S3"] == "http://minio:9000"
    assert env["AWS_REQUEST_CHECKSUM_CALCULATION"] == env["AWS_RESPONSE_CHECKSUM_VALIDATION"] == "when_required"

    assert drill is not None
    drill_env = resolved_env(drill)
    assert set(drill_env) <= set(S.BY_NAME), set(drill_env) - set(S.BY_NAME)
    drill_settings = S.load_settings(drill_env, dotenv_path=tmp_path / "none")
    assert drill_settings.dump.include == ("shop",) and not drill_settings.run.retention
    target = verify_server(drill_env)
    assert dict(target.env) == {
        "PGHOST": "scratch.db.svc",
        "PGPORT": "7432",
        "PGDATABASE": "drills",
        "PGSSLMODE": "require",
        "PGUSER": "drill",
        "PGPASSWORD": "scratch-secret",
        "PGSSLROOTCERT": "/etc/pgbackup/verify-tls/ca/ca.crt",
        "PGREQUIREAUTH": "scram-sha-256,none",
        "PGCHANNELBINDING": "require",
    }, "no password in cleartext or md5, and over TLS only with channel binding (core.pgauth)"
    assert "pg-secret" not in drill_env.values(), "a drill on a scratch server never gets the backup password"


def test_a_minimal_pgbackup_runs_on_the_jobs_defaults(tmp_path: Path) -> None:
    minimal = {
        "schedule": "@daily",
        "postgres": {"host": "pg", "user": "u", "passwordSecretRef": {"name": "pg"}},
        "destination": {"s3": {"bucket": "bkt"}},
    }
    cronjob = operator.render_cronjob(body(minimal))
    container = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value", "secret") for e in container["env"] if "fieldRef" not in e.get("valueFrom", {})}
    settings = S.load_settings(env, dotenv_path=tmp_path / "none")
    defaults = S.load_settings({S.DESTINATION.name: "s3://bkt"}, dotenv_path=tmp_path / "none")
    for group, field in (
        ("compression", None),
        ("dump", "globals"),
        ("run", "retention"),
        ("run", "shrink_alarm"),
        ("dump", "include"),
        ("dump", "exclude"),
        ("dump", "pg_dump_options"),
        ("postgres", "discovery_database"),
        ("storage", None),
    ):
        ours, theirs = getattr(settings, group), getattr(defaults, group)
        assert (getattr(ours, field) if field else ours) == (getattr(theirs, field) if field else theirs), field


def test_the_crd_defaults_are_the_renderers_and_the_jobs() -> None:
    crd = yaml.safe_load((ROOT / "deploy" / "crd.yaml").read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    postgres = spec["postgres"]["properties"]
    assert postgres["port"]["default"] == int(S.PGPORT.default)
    assert postgres["database"]["default"] == S.PGDATABASE.default
    assert postgres["sslMode"]["default"] == S.PGSSLMODE.default
    assert "default" not in spec["compressionLevel"]  # so that zstd's own default level is reachable
    assert spec["compression"]["properties"]["format"]["default"] == S.COMPRESSION.default_value
    assert spec["parallelDatabases"]["default"] == S.PARALLEL_DATABASES.default_value
    assert spec["globals"]["default"] == S.GLOBALS.default_value
    assert spec["timeZone"]["default"] == operator.DEFAULT_TIME_ZONE
    job = spec["job"]["properties"]
    assert job["concurrencyPolicy"]["default"] == operator.DEFAULT_CONCURRENCY_POLICY
    assert (
        job["successfulJobsHistoryLimit"]["default"]
        == job["failedJobsHistoryLimit"]["default"]
        == operator.DEFAULT_HISTORY_LIMIT
    )
    assert job["backoffLimit"]["default"] == operator.DEFAULT_BACKOFF_LIMIT


@pytest.mark.parametrize("variable", [v for v in S.ALL if v is not S.DESTINATION], ids=lambda v: v.name)
def test_every_default_parses_and_renders_back(variable: S.Variable[Any]) -> None:
    value = variable.default_value
    assert variable.parse(variable.render(value)) == value


def test_the_configuration_tables_are_made_from_the_schema() -> None:
    page = (ROOT / "docs" / "configuration.md").read_text()
    groups = [m.group(2) for m in BLOCK.finditer(page)]
    assert sorted(groups) == sorted(S.GROUPS), "each group's table once on the configuration page"
    assert render(page) == page, "run: python -m devenv.settings_docs"
    broken = page.replace("| `BACKUP_GLOBALS` | `true` |", "| `BACKUP_GLOBALS` | `false` |")
    assert render(broken) != broken, "the check notices a hand-edited table"


def _env_example() -> dict[str, str]:
    """``NAME -> value`` for every line of .env.example that sets or shows a variable."""
    lines = (ROOT / ".env.example").read_text().splitlines()
    return {m.group(1): m.group(2) for m in (re.match(r"^#?([A-Z][A-Z0-9_]*)=(.*)$", line) for line in lines) if m}


def test_env_example_is_made_from_the_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (ROOT / ".env.example").read_text() == env_example.render(), "run: python -m devenv.settings_docs"
    # A variable no section holds stops the generator, naming it and the fix.
    monkeypatch.setattr(env_example, "SECTIONS", env_example.SECTIONS[1:])
    with pytest.raises(SystemExit, match=r"BACKUP_SCHEDULE, .*add its group to SECTIONS"):
        env_example.render()


def test_env_example_lists_every_setting_and_only_declared_ones() -> None:
    shown = _env_example()
    wanted = {v.name for v in S.ALL if v.owner != "operator"} | {v.file_name for v in S.ALL if v.file_form}
    assert wanted - set(shown) == set(), "missing from .env.example"
    known = set(S.BY_NAME) | {v.file_name for v in S.ALL if v.file_form} | COMPOSE_STACK
    assert set(shown) - known == set(), "in .env.example but not declared in backup_job/core/settings/"
    assert {name for name, _ in env_example.STACK} == COMPOSE_STACK
    compose = (ROOT / "docker-compose.yml").read_text()
    assert all(f"${{{name}" in compose for name in COMPOSE_STACK)


def test_env_example_comments_show_the_declared_defaults() -> None:
    text = (ROOT / ".env.example").read_text()
    for variable in (v for v in S.ALL if v.default):  # without a default, a comment shows an example
        for value in re.findall(rf"^#{variable.name}=(.+)$", text, re.M):
            assert value == variable.default, f"#{variable.name}={value} but the default is {variable.default!r}"


def _string_literals(path: Path) -> list[str]:
    """Every string constant in a module except docstrings."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def test_each_setting_is_named_once_in_the_code() -> None:
    """Its declaration; every other use goes through the variable (``DATABASES.name``)."""
    sources = [*(ROOT / "backup_job").rglob("*.py"), *(ROOT / "operator").rglob("*.py")]
    literals = [text for path in sources for text in _string_literals(path)]
    wrong: list[str] = []
    for variable in OWN:
        pattern = re.compile(rf"\b{variable.name}\b")
        uses = [text for text in literals if pattern.search(text)]
        wrong.extend(f"{variable.name} in {text!r}" for text in uses if text != variable.name)
        assert variable.name in uses
    assert wrong == []


def test_the_termination_message_fits_kubernetes() -> None:
    long = "3 of 3 backups failed: " + "'bäckup': pg_dump failed (exit 1): ü \"quoted\" " * 400
    names = tuple(f"database_{i}_ü" for i in range(300))
    message = TerminationMessage(
        long,
        command="run",
        ok=False,
        timestamp="20261126T020000Z",
        seconds=83.25,
        stored_bytes=10**12,
        databases_ok=1,
        databases_failed=300,
        failed=names,
    )
    data = message.encode()
    assert len(data) <= LIMIT + 1 < 4096 and data.endswith(b"\n") and data.count(b"\n") == 1
    read = TerminationMessage.decode(data.decode("utf-8"))
    assert (read.command, read.ok, read.timestamp, read.seconds, read.stored_bytes) == (
        "run",
        False,
        "20261126T020000Z",
        83.2,
        10**12,
    )
    assert (read.databases_ok, read.databases_failed) == (1, 300)  # the counts stay exact
    assert read.failed_truncated and 0 < len(read.failed) < 300 and read.failed == names[: len(read.failed)]
    assert read.summary.startswith("3 of 3 backups failed: 'bäckup'") and len(read.summary) < len(long)
    one_line = TerminationMessage("line one\nline two", command="prune", ok=True).encode()
    assert json.loads(one_line) == {"v": 1, "command": "prune", "ok": True, "summary": "line one line two"}


def test_an_older_plain_termination_message_still_reads() -> None:
    read = TerminationMessage.decode("1 of 2 backups failed: 'x': boom\n")
    assert read == TerminationMessage("1 of 2 backups failed: 'x': boom")
    assert TerminationMessage.decode("{not json").summary == "{not json"


def test_the_operator_deployments_set_only_declared_variables() -> None:
    """deploy/operator.yaml and the chart's Deployment set the operator's settings by name."""
    sources = [ROOT / "deploy" / "operator.yaml", ROOT / "charts" / "pgbackup" / "templates" / "deployment.yaml"]
    names = {name for path in sources for name in re.findall(r"name:\s*(PGBACKUP_[A-Z_]+)", path.read_text())}
    assert names and names <= {v.name for v in S.OPERATOR}, names


def test_every_backup_variable_the_repository_mentions_is_known() -> None:
    """A new BACKUP_/PGBACKUP_ variable anywhere outside the tests (code, compose, charts, scripts,
    docs) is a setting or listed in ``ELSEWHERE``, so no one is ever warned about it as a typo.
    ``BACKUP_VERIFY_PG*`` and ``BACKUP_METRICS_*`` name families, not variables."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    mentioned: set[str] = set()
    for name in listed:
        path = ROOT / name
        if name.startswith("tests/") or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        mentioned |= set(re.findall(r"\b((?:PG)?BACKUP_[A-Z0-9_]*[A-Z0-9])\b(?!\*)", text))
    assert {"BACKUP_DESTINATION", "BACKUP_BUCKET", "PGBACKUP_SHARD_INDEX", "PGBACKUP_VENV"} <= mentioned
    assert sorted(mentioned - S.KNOWN) == []


def test_unknown_variables_are_named_with_the_closest_known_one_never_their_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "environ", {"BACKUP_GLOBAL": "true"})  # the environment wins over .env
    (tmp_path / ".env").write_text("BACKUP_GLOBAL=false\nBACKUP_DESTINATION=file:///b\n")
    environ = {
        "BACKUP_RETENTON": "last=7",
        "PGBACKUP_IMAGES": "registry.example/secret-tag",
        "PGHOST": "db",
        "PGBACKUP_SHARD_INDEX": "1",
        "BACKUP_ENCRYPT_RECIPIENTS_FILE": "/run/r",
        "BACKUP_ZQXJ": "v",
    }
    warnings = S.unknown_variables({**S.job_environment(tmp_path / ".env"), **environ})
    assert warnings == [
        "BACKUP_GLOBAL is not a pgbackup setting and is ignored; did you mean BACKUP_GLOBALS?",
        "BACKUP_RETENTON is not a pgbackup setting and is ignored; did you mean BACKUP_RETENTION?",
        "BACKUP_ZQXJ is not a pgbackup setting and is ignored; check its spelling in "
        "docs/configuration.md#configuration",
        "PGBACKUP_IMAGES is not a pgbackup setting and is ignored; did you mean PGBACKUP_IMAGE?",
    ]
    assert not any(value in warning for warning in warnings for value in ("last=7", "secret-tag", "false"))
