"""Reading a spec into the typed objects: a malformed field is refused by its path, under the
reason the status shows, before anything renders; what passes through is the pod's own copy."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pgbackup_operator import api, render, restores

from .test_render import BODY, _Reconciled, pod_of, with_spec

RESTORE: dict[str, Any] = {
    "metadata": {"name": "back", "namespace": "db", "uid": "r-1"},
    "spec": {"backupRef": {"name": "prod"}, "database": "shop"},
}


@pytest.mark.parametrize(
    ("fields", "message", "reason"),
    [
        ({"destination": {"s3": {"bucket": 123}}}, r"^spec.destination.s3.bucket: must be a string$", "InvalidSpec"),
        ({"postgres": {"passwordSecretRef": {"name": "pg"}}}, r"^spec.postgres.host: is required$", "InvalidSpec"),
        (
            {"postgres": {**BODY["spec"]["postgres"], "port": True}},
            r"^spec.postgres.port: must be an integer$",
            "InvalidSpec",
        ),
        ({"databases": {"include": "app*"}}, r"^spec.databases.include: must be a list$", "InvalidSpec"),
        ({"retention": {"daily": "7"}}, r"^spec.retention.daily: must be an integer$", "InvalidRetention"),
        ({"pod": {"tolerations": ["any"]}}, r"^spec.pod.tolerations\[0\]: must be an object$", "InvalidSpec"),
    ],
)
def test_a_malformed_pgbackup_field_is_refused_by_its_path(fields: dict[str, Any], message: str, reason: str) -> None:
    with pytest.raises(api.RenderError, match=message) as caught:
        render.render_all(with_spec(**fields), "img:1")
    assert caught.value.reason == reason


def test_a_malformed_pgrestore_field_is_refused_by_its_path() -> None:
    restore = copy.deepcopy(RESTORE)
    restore["spec"]["target"] = {"create": "yes"}
    with pytest.raises(api.RenderError, match=r"^spec.target.create: must be true or false$"):
        restores.render_restore_job(restore, BODY, "img:1")


def test_a_pgbackup_that_cannot_be_read_is_not_ready_naming_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    written = _Reconciled(monkeypatch)(with_spec(destination={"s3": {"bucket": ["backups"]}}))
    ready = {c["type"]: c for c in written["conditions"]}["Ready"]
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "False",
        "InvalidSpec",
        "spec.destination.s3.bucket: must be a string",
    )


def test_what_passes_through_is_each_pod_s_own_copy() -> None:
    body = with_spec(
        pod={"resources": {"limits": {"memory": "256Mi"}}, "tolerations": [{"key": "db"}]},
        verify={"schedule": "@weekly", "onBackupServer": True},
    )
    rendered = render.render_all(body, "img:1")
    backup, verify = (pod_of(rendered[kind]) for kind in ("backup", "verify"))  # type: ignore[arg-type]
    backup["containers"][0]["resources"]["limits"]["memory"] = "1Gi"
    backup["tolerations"][0]["key"] = "other"
    assert verify["containers"][0]["resources"] == {"limits": {"memory": "256Mi"}}
    assert verify["tolerations"] == [{"key": "db"}] and isinstance(verify["tolerations"], list)
    assert body["spec"]["pod"] == {"resources": {"limits": {"memory": "256Mi"}}, "tolerations": [{"key": "db"}]}
