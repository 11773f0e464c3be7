"""A custom resource's strings reach the job as written: the kubelet's ``$(VAR)`` expansion
never turns one into another variable's value (a Secret's), and ``$`` and ``$$`` survive.

Each rendered pod goes through the stand-in kubelet's own expansion (``tests/kit/kubelet.py``:
``Kubelet.environment`` resolves every variable in order, Secrets included, and ``expand`` is
what it applies to the command), with a bucket secret key and a password defined before any CR
value, as in every real pod. The one expansion the operator means, ``BACKUP_SHARD``, still
expands."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from pgbackup_operator import render, restores
from pgbackup_operator.literal import Expansion, literal

from ..kit.fakekube import FakeKube
from ..kit.kubelet import Kubelet, expand
from .test_render import BODY

SECRETS = {
    "s3": {"AWS_ACCESS_KEY_ID": "AKIA-TEST", "AWS_SECRET_ACCESS_KEY": "the-bucket-secret"},
    "pg": {"password": "the-pg-password"},
    "scratch": {"password": "the-scratch-password"},
}
TEXTS = ["$", "$$", "$(X)", "$(AWS_SECRET_ACCESS_KEY)", "a$b$$c$(PGPASSWORD)d$(", "$(PGBACKUP_SHARD_INDEX)"]


def _hostile(text: str) -> dict[str, Any]:
    """A PgBackup whose every free-text field the pods carry holds ``text``."""
    body = copy.deepcopy(BODY)
    spec = body["spec"]
    spec["postgres"] = {
        "host": f"h{text}",
        "database": text,
        "user": text,
        "sslMode": "disable",
        "passwordSecretRef": {"name": "pg"},
    }
    spec["databases"] = {"include": [text]}
    spec["destination"]["s3"]["prefix"] = f"p{text}"
    spec["destination"]["s3"]["endpoint"] = f"http://s3{text}"
    spec["pod"] = {"env": [{"name": "MY_SETTING", "value": text}]}
    spec["parallelism"] = 3
    spec["verify"] = {
        "schedule": "0 5 * * 0",
        "server": {"host": text, "user": text, "sslMode": "disable", "passwordSecretRef": {"name": "scratch"}},
    }
    spec["retention"] = {"last": 3, "schedule": "0 4 * * *"}
    return body


def _as_the_kubelet_runs_it(pod_spec: dict[str, Any], tmp_path: Path) -> tuple[dict[str, str], list[str]]:
    """The environment and argv the container gets."""
    pod = {
        "metadata": {
            "name": "p",
            "namespace": "db",
            "uid": "u",
            "labels": {"batch.kubernetes.io/job-name": "j"},
            "annotations": {"batch.kubernetes.io/job-completion-index": "1"},
        },
        "spec": pod_spec,
    }
    defined = Kubelet(FakeKube(secrets=SECRETS), Path("/nonexistent"), tmp_path).environment(pod)  # type: ignore[arg-type]
    container = pod_spec["containers"][0]
    return defined, [expand(word, defined) for word in container["command"] + container.get("args", [])]


def _pods(text: str) -> dict[str, dict[str, Any]]:
    body = _hostile(text)
    rendered = render.render_all(body, "img:1")
    pods = {
        name: cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        for name, cronjob in rendered.items()
        if cronjob is not None
    }
    restore = {
        "metadata": {"name": "r", "namespace": "db", "uid": "r-uid"},
        "spec": {
            "backupRef": {"name": "prod"},
            "database": text,
            "at": "2026-11-26",  # must parse
            "target": {
                "database": text,
                "server": {"host": text, "sslMode": "disable", "passwordSecretRef": {"name": "pg"}},
            },
        },
    }
    pods["restore"] = restores.render_restore_job(restore, body, "img:1")["spec"]["template"]["spec"]
    return pods


@pytest.mark.parametrize("text", TEXTS)
def test_every_cr_string_reaches_the_job_as_written(text: str, tmp_path: Path) -> None:
    for name, pod_spec in _pods(text).items():
        env, argv = _as_the_kubelet_runs_it(pod_spec, tmp_path)
        server = {
            "restore": {"PGHOST": text},
            "verify": {"BACKUP_VERIFY_PGHOST": text, "BACKUP_VERIFY_PGUSER": text},
            "backup": {"PGHOST": f"h{text}", "PGDATABASE": text, "PGUSER": text, "BACKUP_DATABASES": text},
            "prune": {},
        }[name]
        wanted = {
            "MY_SETTING": text,
            "BACKUP_DESTINATION": f"s3://backups/p{text}",
            "AWS_ENDPOINT_URL_S3": f"http://s3{text}",
            **server,
        }
        assert {key: env.get(key) for key in wanted} == wanted, f"the {name} pod"
        assert "the-bucket-secret" not in " ".join(argv) + "".join(
            v for k, v in env.items() if k != "AWS_SECRET_ACCESS_KEY"
        )
        if name == "restore":
            assert argv[2:5] == [f"--database={text}", "--at=2026-11-26", f"--target={text}"], argv
        if name == "backup":
            assert env["BACKUP_SHARD"] == "1/3", "the operator's own $(PGBACKUP_SHARD_INDEX) still expands"


def test_the_issue_s_pgrestore_gets_its_target_literally(tmp_path: Path) -> None:
    restore = {
        "metadata": {"name": "r", "namespace": "db", "uid": "r-uid"},
        "spec": {
            "backupRef": {"name": "prod"},
            "database": "app",
            "target": {"database": "$(AWS_SECRET_ACCESS_KEY)", "create": True},
        },
    }
    pod_spec = restores.render_restore_job(restore, BODY, "img:1")["spec"]["template"]["spec"]
    pod_spec["containers"][0]["volumeMounts"] = []  # the certificates are beside the point here
    pod_spec["volumes"] = []
    _env, argv = _as_the_kubelet_runs_it(pod_spec, tmp_path)
    assert argv == ["pgbackup", "restore", "--database=app", "--target=$(AWS_SECRET_ACCESS_KEY)", "--create"]


def test_only_the_operator_s_own_expansion_is_left_to_the_kubelet() -> None:
    assert literal("$(PGBACKUP_SHARD_INDEX)/3") == "$$(PGBACKUP_SHARD_INDEX)/3", "written by a CR, it is literal"
    assert literal(Expansion("$(PGBACKUP_SHARD_INDEX)/3")) == "$(PGBACKUP_SHARD_INDEX)/3"
    assert literal("$$") == "$$$$" and literal("no dollar") == "no dollar"
