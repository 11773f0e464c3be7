"""The alert rules, checked and unit-tested with Prometheus' own promtool (built from the Go
module proxy), and the chart renders exactly those rules.

The tests that run pgbackup or real services; the offline ones are in tests/unit/test_alert_rules.py."""

from __future__ import annotations

from pathlib import Path

from ..kit import promtool as tool
from ..kit.helpers import ROOT

A = {"namespace": "db", "name": "shop"}
B = {"namespace": "db", "name": "billing"}


def series(labels: dict[str, str], **values: float) -> dict[str, float]:
    text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return {f"{name}{{{text}}}": value for name, value in values.items()}


OPERATOR_UP = {'pgbackup_operator_info{version="0.1.0"}': 1.0}


def test_the_rule_file_is_valid_and_every_alert_documented(promtool: Path) -> None:
    checked = tool.run("check", "rules", str(tool.RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    rules = tool.rules()
    assert sorted(rules) == ["PgBackupLastRunFailed", "PgBackupOperatorDown", "PgBackupStale", "PgBackupVerifyFailed"]
    runbook = (ROOT / "docs" / "alerts.md").read_text()
    for name, rule in rules.items():
        assert {"summary", "description"} <= set(rule["annotations"]) and rule["labels"]["severity"]
        assert f"\n### {name}\n" in runbook  # its runbook
        assert f"docs/alerts.md#{name.lower()}" in rule["annotations"]["description"].replace("\n", " ")


def test_each_alert_fires_for_its_failure_and_only_then(promtool: Path, tmp_path: Path) -> None:
    healthy = {
        **series(A, pgbackup_last_run_success=1, pgbackup_stale=0, pgbackup_last_verify_success=1),
        **OPERATOR_UP,
    }
    result = tool.alert_test(healthy, {}, workdir=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr

    broken = {
        **series(A, pgbackup_last_run_success=0, pgbackup_stale=1, pgbackup_last_verify_success=0),
        **series(B, pgbackup_last_run_success=1, pgbackup_stale=0, pgbackup_last_verify_success=1),
        **OPERATOR_UP,
    }
    result = tool.alert_test(
        broken, {"PgBackupLastRunFailed": [A], "PgBackupStale": [A], "PgBackupVerifyFailed": [A]}, workdir=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr

    # A wrong expectation fails: the test can tell firing from silent.
    wrong = tool.alert_test(broken, {"PgBackupLastRunFailed": [A, B]}, workdir=tmp_path)
    assert wrong.returncode != 0


def test_an_operator_gone_for_ten_minutes_fires(promtool: Path, tmp_path: Path) -> None:
    nothing_scraped = series(A, some_other_metric=1)
    late = tool.alert_test(nothing_scraped, {"PgBackupOperatorDown": [{}]}, minutes=11, workdir=tmp_path)
    assert late.returncode == 0, late.stdout + late.stderr
    early = tool.alert_test(nothing_scraped, {}, minutes=9, workdir=tmp_path)
    assert early.returncode == 0, early.stdout + early.stderr
