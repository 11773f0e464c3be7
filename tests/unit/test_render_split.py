"""The split format on the operator's side: a PgBackup's ``format`` and ``dumpJobs`` become the
backup pods' variables, and a PgRestore's ``tables``, ``jobs`` and ``into`` words of the
restore's command, checked as the CRD checks them for specs that did not pass the API server.
Pure functions, no cluster; the same attacks on the API server are in
tests/k8s/test_operator_hostile.py."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from backup_job.core import settings as S
from pgbackup_operator import render, restores
from pgbackup_operator.api import RenderError
from pgbackup_operator.spec.pgrestore import MAX_JOBS, MAX_TABLES, TABLE, TABLE_LENGTH

from ..kit.helpers import ROOT
from .test_render_day_two import body, env, pod_of, restore

FORMAT, DUMP_JOBS = S.DumpSettings.format, S.DumpSettings.dump_jobs


def backup_env(**spec: Any) -> dict[str, Any]:
    cronjob = render.render_all(body(**spec))["backup"]
    assert cronjob is not None
    return env(pod_of(cronjob["spec"]["jobTemplate"]["spec"]))


def command(**spec: Any) -> list[str]:
    job = restores.render_restore_job(restore(**spec), body(), "img:1")
    return list(pod_of(job["spec"])["containers"][0]["command"])


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


@pytest.mark.parametrize("option", ["--data-only", "--inser", "--section=data"])
def test_pg_dump_options_a_split_backup_cannot_honour_are_refused_before_any_pod(option: str) -> None:
    """The CRD admits any option starting with ``-``; the job refuses these with split only
    (``SPLIT_REFUSED``), and so does the operator, however they are spelled."""
    with pytest.raises(
        RenderError, match=r"^spec.pgDumpOptions: must not contain --\S+ with spec.format split: "
    ) as caught:
        render.render_all(body(format="split", pgDumpOptions=["--no-owner", option]))
    assert caught.value.reason == "InvalidPgDumpOptions"
    assert backup_env(pgDumpOptions=["--no-owner", option])["BACKUP_PG_DUMP_OPTIONS"].endswith(option), "plain: fine"
    assert backup_env(format="split", pgDumpOptions=["--no-owner"])["BACKUP_PG_DUMP_OPTIONS"] == "--no-owner"


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


# --- PgRestore: tables, jobs, into --------------------------------------------------------------


def test_tables_jobs_and_into_become_words_of_the_restore_command() -> None:
    assert command(tables=["public.orders", '"Sales"."Q1 ""big"" orders"'], jobs=8) == [
        "pgbackup",
        "restore",
        "--database=orders",
        "--table=public.orders",
        '--table="Sales"."Q1 ""big"" orders"',
        "--jobs=8",
    ]
    assert command(tables=["public.orders"], into="public.orders_back")[-2:] == [
        "--table=public.orders",
        "--into=public.orders_back",
    ]
    assert command() == ["pgbackup", "restore", "--database=orders"]


HOSTILE = [
    "--table=x;DROP",  # an option of its own
    "-x.y",
    "public.orders\n--clean",  # a newline: another line of whatever reads it
    "public.orders --clean",
    "public.orders;DROP TABLE x",
    "public.$(AWS_SECRET_ACCESS_KEY)",
    'public."a\tb"',  # a control character inside quotes
    'public."a"b"',  # a quote that ends the identifier early
    "public",
    "Public.Orders",  # unquoted upper case would be folded: quote it
    "a.b.c",
    'public.""',
    "public.orders\n",  # a trailing newline: the pattern's $ must not let it through
]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_a_hostile_table_is_refused_naming_its_place_before_any_job(hostile: str) -> None:
    with pytest.raises(RenderError, match=r"^spec.tables\[1\]: .* is not a table as schema.name") as caught:
        command(tables=["public.orders", hostile])
    assert caught.value.reason == "InvalidSpec"
    assert "\n" not in str(caught.value), "the value is shown quoted, on one line"
    with pytest.raises(RenderError, match=r"^spec.into: "):
        command(tables=["public.orders"], into=hostile)


def test_a_table_too_long_is_refused_without_being_shown() -> None:
    long = "public." + "a" * TABLE_LENGTH
    with pytest.raises(RenderError, match=r"^spec.tables\[0\]: longer than 130 characters") as caught:
        command(tables=[long])
    assert long not in str(caught.value)
    assert command(tables=["public." + "a" * (TABLE_LENGTH - 7)])[-1].endswith("a")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"tables": [f"public.t{i}" for i in range(MAX_TABLES + 1)]}, r"^spec.tables: 101 tables, .* at most 100"),
        ({"tables": ["public.t", "public.u", "public.t"]}, r"^spec.tables\[2\]: 'public.t' is listed twice"),
        ({"jobs": 0}, r"^spec.jobs: 0 is out of range: it must be from 1 to 64$"),
        ({"jobs": MAX_JOBS + 1}, r"^spec.jobs: 65 is out of range"),
        ({"into": "public.t_back"}, r"^spec.into: .* exactly that table \(0 given\)$"),
        ({"tables": ["public.t", "public.u"], "into": "public.t_back"}, r"\(2 given\)$"),
        ({"tables": "public.t"}, r"^spec.tables: must be a list$"),
    ],
)
def test_what_the_crd_refuses_of_tables_jobs_and_into_the_operator_refuses(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(RenderError, match=message):
        restores.render_restore_job(restore(**spec), body(), "img:1")


def test_the_crd_s_pattern_and_limits_are_the_operator_s() -> None:
    fields = schema("crd-pgrestore.yaml")["properties"]
    items = fields["tables"]["items"]
    assert items["pattern"] == fields["into"]["pattern"] == TABLE.pattern
    assert items["maxLength"] == fields["into"]["maxLength"] == TABLE_LENGTH
    assert fields["tables"]["maxItems"] == MAX_TABLES and fields["tables"]["x-kubernetes-list-type"] == "set"
    assert (fields["jobs"]["minimum"], fields["jobs"]["maximum"]) == (1, MAX_JOBS)
