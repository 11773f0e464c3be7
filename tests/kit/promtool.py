"""Prometheus' own ``promtool`` on our alert rules and our scraped metrics.

``promtool`` is built from the Go module proxy by ``scripts/tools-build promtool`` and cached
outside the repository. ``alert_test`` writes a ``promtool test rules`` file: the given series
held constant, the rules of ``deploy/monitoring/prometheus-rules.yaml``, and for each alert
which label sets must be firing at the evaluation time (with the annotations the rule's
templates give for those labels, so a wrong template fails too).
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from .helpers import ROOT

RULES = ROOT / "deploy" / "monitoring" / "prometheus-rules.yaml"


@cache
def binary() -> Path:
    built = subprocess.run([str(ROOT / "scripts" / "tools-build"), "promtool"], stdout=subprocess.PIPE, text=True)
    if built.returncode != 0:
        raise RuntimeError("scripts/tools-build promtool failed (its output is above)")
    return Path(built.stdout.strip().splitlines()[-1])


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary()), *args], input=stdin, capture_output=True, text=True, timeout=120)


def rules() -> dict[str, dict[str, Any]]:
    """The alerting rules by alert name."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"] if "alert" in rule}


def annotations_for(alert: str, labels: dict[str, str]) -> dict[str, str]:
    """The rule's annotations with ``{{ $labels.x }}`` filled in (the only template they use)."""

    def fill(text: str) -> str:
        return re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels.get(m.group(1), ""), text)

    return {key: fill(value) for key, value in rules()[alert].get("annotations", {}).items()}


def series_from_scrape(text: str, keep: dict[str, str] | None = None) -> dict[str, float]:
    """``name{labels}`` -> value for every sample of a scrape, or those whose labels include ``keep``."""
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if keep and any(sample.labels.get(k) != v for k, v in keep.items()):
                continue
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            found[f"{sample.name}{{{labels}}}"] = float(sample.value)
    return found


def alert_test(
    series: dict[str, float], firing: dict[str, list[dict[str, str]]], minutes: int = 15, workdir: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``promtool test rules`` with ``series`` constant for ``minutes``: exactly the alerts in
    ``firing`` (alert name -> label sets) must fire at the end; every other alert must not."""
    tests = []
    for alert, rule in rules().items():
        expected = []
        for labels in firing.get(alert, []):
            full = {**rule.get("labels", {}), **labels}
            expected.append({"exp_labels": full, "exp_annotations": annotations_for(alert, labels)})
        tests.append({"eval_time": f"{minutes}m", "alertname": alert, "exp_alerts": expected})
    document = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": name, "values": f"{value:g}x{minutes + 1}"} for name, value in series.items()
                ],
                "alert_rule_test": tests,
            }
        ],
    }
    directory = workdir or Path(ROOT / ".pytest_cache")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "promtool-test.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return run("test", "rules", str(path))
