"""The alert rules, checked and unit-tested with Prometheus' own promtool (built from the Go
module proxy), and the chart renders exactly those rules.

The offline tests; those that run pgbackup or real services are in tests/integration/test_alert_rules.py."""

from __future__ import annotations

import yaml

from ..kit import promtool as tool
from ..kit.helpers import ROOT


def test_the_chart_ships_the_same_rules_and_dashboard() -> None:
    files = ROOT / "charts" / "pgbackup" / "files"
    shipped = yaml.safe_load((files / "prometheus-rules.yaml").read_text())
    assert shipped == yaml.safe_load(tool.RULES.read_text())
    dashboard = (ROOT / "deploy" / "monitoring" / "grafana-dashboard.json").read_text()
    assert (files / "grafana-dashboard.json").read_text() == dashboard
    for metric in ("pgbackup_last_success_timestamp_seconds", "pgbackup_last_run_success", "pgbackup_last_run_bytes"):
        assert metric in dashboard
