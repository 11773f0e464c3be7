"""The split format on the operator's side: a PgBackup's ``format`` and ``dumpJobs`` become the
backup pods' variables, checked as the CRD checks them for specs that did not pass the API
server. Pure functions, no cluster."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from backup_job.core import settings as S
from pgbackup_operator import render
from pgbackup_operator.api import RenderError

from ..kit.helpers import ROOT
from .test_render_day_two import body, env, pod_of

FORMAT, DUMP_JOBS = S.DumpSettings.format, S.DumpSettings.dump_jobs


def backup_env(**spec: Any) -> dict[str, Any]:
    cronjob = render.render_all(body(**spec))["backup"]
    assert cronjob is not None
    return env(pod_of(cronjob["spec"]["jobTemplate"]["spec"]))


def schema(crd: str) -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "deploy" / crd).read_text())
    return dict(document["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"])


# --- PgBackup: format and dumpJobs --------------------------------------------------------------


def test_a_split_backup_tells_its_pods_the_format_and_the_connections() -> None:
    split = backup_env(format="split", dumpJobs=8, parallelism=1)
    assert (split["BACKUP_FORMAT"], split["BACKUP_DUMP_JOBS"]) == ("split", "8")
    assert FORMAT.parse(split["BACKUP_FORMAT"]) == "split" and DUMP_JOBS.parse(split["BACKUP_DUMP_JOBS"]) == 8
    automatic = backup_env(format="split", dumpJobs=0)
    assert automatic["BACKUP_DUMP_JOBS"] == "0", "0 is the job's automatic, rendered as given"
    assert "BACKUP_DUMP_JOBS" not in backup_env(format="split")


def test_a_plain_backup_renders_as_before_the_split_format() -> None:
    """``format: plain`` is what the API server fills in for every PgBackup: the pods of those
    written before stay as they were (no new variable, so no CronJob changes)."""
    assert backup_env(format="plain") == backup_env()
    assert "BACKUP_FORMAT" not in backup_env() and "BACKUP_DUMP_JOBS" not in backup_env()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"dumpJobs": 4}, r"^spec.dumpJobs: only a split backup .* spec.format is 'plain'; set spec.format to split"),
        ({"format": "plain", "dumpJobs": 0}, r"^spec.dumpJobs: only a split backup"),
        ({"format": "tar"}, r"^spec.format: 'tar' must be one of plain \| split$"),
        ({"format": "SPLIT"}, r"^spec.format: 'SPLIT' must be written 'split'$"),
        ({"format": "split", "dumpJobs": 65}, r"^spec.dumpJobs: 65 is out of range: it must be from 0 to 64$"),
        ({"format": "split", "dumpJobs": -1}, r"^spec.dumpJobs: -1 is out of range"),
        ({"format": "split", "dumpJobs": "8"}, r"^spec.dumpJobs: must be an integer$"),
    ],
)
def test_what_the_crd_refuses_of_format_and_dump_jobs_the_operator_refuses(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(RenderError, match=message) as caught:
        render.render_all(body(**spec))
    assert caught.value.reason in ("InvalidFormat", "InvalidSpec")


def test_the_crd_declares_what_the_job_reads() -> None:
    spec = schema("crd.yaml")
    fields = spec["properties"]
    assert fields["format"]["enum"] == ["plain", "split"] and fields["format"]["default"] == FORMAT.default_value
    assert [FORMAT.parse(choice) for choice in fields["format"]["enum"]] == fields["format"]["enum"]
    assert (fields["dumpJobs"]["minimum"], fields["dumpJobs"]["maximum"]) == (0, 64)
    for edge in (0, 64):
        assert DUMP_JOBS.parse(str(edge)) == edge
    [rule] = [r["rule"] for r in spec["x-kubernetes-validations"] if "dumpJobs" in r["rule"]]
    assert "self.format == 'split'" in rule
