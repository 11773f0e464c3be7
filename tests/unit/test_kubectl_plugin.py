"""``kubectl pgbackup`` without a cluster: the status table, the arguments it refuses, how a
refusal by RBAC reads, and the operator's side of ``list`` (the listing Job it renders, and
what it makes of a listing from a hostile bucket). The commands themselves run end to end in
tests/k8s/test_kubectl_plugin.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from kubernetes.client import ApiException

from backup_job.core.errors import ClusterError, ForbiddenError
from pgbackup_operator import listings
from pgbackup_operator.api import RenderError
from pgbackup_operator.kubectl import cli, views
from pgbackup_operator.kubectl.cluster import Cluster
from pgbackup_operator.spec import parse_pgbackup

from .test_render_day_two import body, credentials, env

NOW = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


def pgbackup(name: str, namespace: str = "db", **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace}, "spec": {"schedule": "0 3 * * *"}, "status": status}


def test_the_status_table_reads_like_kubectl_get() -> None:
    healthy = pgbackup(
        "prod",
        lastRun={
            "result": "Succeeded",
            "jobName": "j",
            "startTime": "2026-05-04T03:00:00Z",
            "completionTime": "2026-05-04T03:05:00Z",
        },
        lastSuccessfulTime="2026-05-04T03:05:00Z",
        conditions=[{"type": "Fresh", "status": "True"}],
        lastVerify={"result": "Failed", "time": "2026-05-02T04:00:00Z", "job": "v"},
        nextScheduleTime="2026-05-05T03:00:00Z",
    )
    silent = pgbackup("legacy", conditions=[{"type": "Fresh", "status": "False"}])
    silent["spec"]["suspend"] = True
    new = pgbackup("new")
    assert views.table([healthy, silent, new], NOW, all_namespaces=False) == (
        "NAME     LAST RUN           LAST SUCCESS   FRESH   LAST DRILL      NEXT RUN\n"
        "legacy   -                  never          STALE   -               suspended\n"
        "new      -                  never          -       -               -\n"
        "prod     Succeeded 8h ago   8h ago         fresh   Failed 2d ago   in 15h\n"
    )
    wide = views.table([healthy, pgbackup("a", "other")], NOW, all_namespaces=True).splitlines()
    assert wide[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert [line.split()[:2] for line in wide[1:]] == [["db", "prod"], ["other", "a"]]


def test_ages_take_the_largest_unit_as_kubectl_does() -> None:
    assert [views.age(s) for s in (5, 59, 60, 3599, 7199, 7200, 172799, 172800, -3)] == [
        "5s",
        "59s",
        "1m",
        "59m",
        "119m",
        "2h",
        "47h",
        "2d",
        "0s",
    ]


def test_json_and_yaml_carry_the_status_times_for_scripts() -> None:
    item = pgbackup("prod", lastSuccessfulTime="2026-05-04T11:00:00Z", nextScheduleTime="2026-05-05T03:00:00Z")
    found = json.loads(views.document([item], NOW, "json"))
    assert found == [
        {
            "namespace": "db",
            "name": "prod",
            "lastRun": None,
            "lastSuccessfulTime": "2026-05-04T11:00:00Z",
            "lastSuccessAge": "60m",
            "freshness": "-",
            "lastDrill": None,
            "nextScheduleTime": "2026-05-05T03:00:00Z",
            "suspended": False,
        }
    ]
    assert views.document([item], NOW, "yaml").startswith("- namespace: db\n  name: prod\n")


@pytest.mark.parametrize(
    "argv",
    [
        ["restore", "prod"],  # --database is required
        ["status", "-o", "xml"],
        ["logs", "prod", "--verify", "--prune"],
        ["backup"],
        ["unknown"],
    ],
)
def test_wrong_arguments_exit_2_with_usage(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2
    assert "usage: kubectl pgbackup" in capsys.readouterr().err


def _cluster() -> Cluster:
    cluster = object.__new__(Cluster)
    cluster.namespace = "prod"
    return cluster


def test_a_refusal_by_rbac_names_the_verb_and_resource() -> None:
    def refused() -> None:
        raise ApiException(status=403, reason="Forbidden")

    with pytest.raises(ForbiddenError) as caught:
        _cluster().call("patch", "pgbackups.pgbackup.io", "prod", refused)
    assert str(caught.value) == (
        "you may not patch pgbackups.pgbackup.io in namespace prod (RBAC); ask your cluster admin for that right"
    )

    def missing() -> None:
        raise ApiException(status=404, reason="Not Found")

    with pytest.raises(ClusterError, match=r"^get configmaps in namespace prod: Not Found$"):
        _cluster().call("get", "configmaps", "prod", missing)


def test_without_a_kubeconfig_one_line_and_no_traceback(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "kubectl-pgbackup"
    environment = {**os.environ, "KUBECONFIG": str(tmp_path / "absent"), "HOME": str(tmp_path)}
    found = subprocess.run([str(script), "status"], env=environment, capture_output=True, text=True, timeout=60)
    assert found.returncode == 1
    assert found.stdout == ""
    assert found.stderr.startswith("kubectl pgbackup: cannot read your kubeconfig: ")
    assert found.stderr.count("\n") == 1 and "Traceback" not in found.stderr


# -- the operator's side of `list` -------------------------------------------------------------


def asked(database: str | None = None, **extra: Any) -> dict[str, Any]:
    found = body(**extra)
    annotations = {"pgbackup.io/list-requested": "r1"}
    if database is not None:
        annotations["pgbackup.io/list-database"] = database
    found["metadata"]["annotations"] = annotations
    return found


def test_a_listing_job_reads_with_the_drills_identity_and_nothing_else() -> None:
    verify = {"schedule": "@weekly", "credentialsSecretRef": {"name": "s3-read"}, "serviceAccountName": "reader"}
    owner = asked("app", verify=verify)
    request = listings.request(owner)
    assert request == ("r1", "app")
    job = listings.render_list_job(owner, parse_pgbackup(owner), *request, "pgbackup:test")
    assert job["metadata"]["name"].startswith("pgbackup-prod-l")
    assert job["metadata"]["labels"]["app.kubernetes.io/component"] == "list"
    assert job["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["command"] == ["pgbackup", "list", "--database=app"]
    assert credentials(pod) == "s3-read" and pod["serviceAccountName"] == "reader"
    assert not any(name.startswith("PG") for name in env(pod)), "no server: a listing reads the bucket only"
    plain = asked()
    job = listings.render_list_job(plain, parse_pgbackup(plain), "r1", None, "pgbackup:test")
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["command"] == ["pgbackup", "list"]
    assert pod["automountServiceAccountToken"] is False and credentials(pod) == "s3-write"


def test_a_request_is_acted_on_once_and_a_bad_database_is_refused() -> None:
    done = asked()
    done["status"] = {"lastListRequest": "r1"}
    assert listings.request(done) is None
    with pytest.raises(RenderError, match="list-database"):
        listings.request(asked("bad\nname"))
    with pytest.raises(RenderError, match="list-database"):
        listings.request(asked("x" * 64))


def test_a_hostile_listing_is_escaped_and_bounded() -> None:
    hostile = "DATABASE  TIMESTAMP\nevil\x1b[2J\u202e  20260504T030000Z\r\nforged line\n"
    assert listings.sanitize(hostile) == (
        "DATABASE  TIMESTAMP\nevil\\x1b[2J\\u202e  20260504T030000Z\\r\nforged line\n"
    )
    line = "db  20260504T030000Z  1.0 MiB  complete\n"
    huge = line * (listings.MAX_LISTING // len(line) + 10)
    cut = listings.sanitize(huge)
    assert len(cut.encode()) < listings.MAX_LISTING + 100
    assert cut.endswith(f"... cut at {listings.MAX_LISTING} bytes: list fewer with --database\n")
    assert cut.removesuffix(cut.splitlines(keepends=True)[-1]).count(line) == len(cut.splitlines()) - 1


def test_the_namespace_may_come_before_or_after_the_command() -> None:
    parse = cli.parser().parse_args
    assert parse(["-n", "a", "status"]).namespace == "a"
    assert parse(["status", "-n", "b"]).namespace == "b"
    assert parse(["--context", "c", "logs", "x"]).context == "c"
    assert parse(["status"]).namespace is None


class Run:
    """What ``backup --wait`` sees of a run that ends with ``exit_code``: the PgBackup, the Job
    named after the request, its one pod and its log."""

    namespace = "prod"

    def __init__(self, exit_code: int, started: bool = True) -> None:
        self.exit_code = exit_code
        self.started = started  # False: the pod failed before its container ran (no status of it)
        self.job: str | None = None

    def pgbackup(self, name: str) -> dict[str, Any]:
        status: dict[str, Any] = {"cronJobName": "pgbackup-prod"}
        if self.job is not None:
            status["lastRun"] = {"jobName": self.job, "result": "Failed" if self.exit_code else "Succeeded"}
        return {"metadata": {"name": name}, "spec": {}, "status": status}

    def annotate(self, name: str, annotations: dict[str, str | None]) -> None:
        self.job = cli.manual_job_name("pgbackup-prod", str(annotations[cli.RUN_NOW_ANNOTATION]))

    def job_pods(self, job: str) -> list[dict[str, Any]]:
        assert job == self.job, "it follows the Job the operator makes for its own request"
        terminated = {"exitCode": self.exit_code}
        state = {"containerStatuses": [{"state": {"terminated": terminated}}]} if self.started else {}
        return [{"metadata": {"name": f"{job}-x"}, "status": {"phase": "Failed", **state}}]

    def log(self, pod: str, follow: bool = False) -> Iterator[bytes]:
        assert follow
        yield f"log of {pod}\n".encode()


@pytest.mark.parametrize("exit_code", [0, 3])
def test_backup_wait_prints_the_run_s_log_and_exits_with_its_code(
    exit_code: int, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "POLL", 0)
    run = Run(exit_code)
    args = cli.parser().parse_args(["backup", "prod", "--wait"])
    assert cli.backup(cast(Cluster, run), args) == exit_code
    out, err = capsys.readouterr()
    assert out == f"log of {run.job}-x\n"
    assert err.splitlines()[-1] == (
        "backup of prod succeeded"
        if exit_code == 0
        else "kubectl pgbackup: backup of prod failed: see kubectl describe pgbackup prod"
    )


def test_a_pgbackup_the_operator_cannot_render_is_refused_before_any_request(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run = Run(0)
    broken = run.pgbackup("prod")
    broken["status"]["conditions"] = [
        {"type": "Ready", "status": "False", "reason": "InvalidSchedule", "message": "spec.schedule: bad"}
    ]
    monkeypatch.setattr(run, "pgbackup", lambda name: broken)
    for command in (["backup", "prod"], ["list", "prod"]):
        with pytest.raises(ClusterError, match=r"^prod is not Ready \(InvalidSchedule: spec.schedule: bad\)"):
            cli.COMMANDS[command[0]](cast(Cluster, run), cli.parser().parse_args(command))
    assert run.job is None, "nothing was asked of the operator"


def test_backup_wait_ends_when_the_pod_failed_before_its_container_ran(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "POLL", 0)
    run = Run(1, started=False)
    assert cli.backup(cast(Cluster, run), cli.parser().parse_args(["backup", "prod", "--wait"])) == 1
    assert "backup of prod failed" in capsys.readouterr().err
