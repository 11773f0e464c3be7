"""Copy the CRDs, the operator's RBAC rules, the admission policy, the alert rules and the
Grafana dashboard from deploy/ into the Helm chart, and generate its Chart.yaml and README.md
(devenv/chart_meta.py); see scripts/sync-chart."""

from __future__ import annotations

from pathlib import Path

import yaml

from . import chart_meta

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
CHART = ROOT / "charts" / "pgbackup"
FILES = CHART / "files"
HEADER = "# Generated from deploy/{} by scripts/sync-chart: edit that file, then run the script.\n"


def rbac_rules() -> list[dict[str, object]]:
    documents = yaml.safe_load_all((DEPLOY / "rbac.yaml").read_text())
    role = next(d for d in documents if d and d["kind"] == "ClusterRole")
    return list(role["rules"])


def expected() -> dict[Path, str]:
    """The chart files as they must be."""
    return {
        CHART / "crds" / "pgbackups.pgbackup.io.yaml": HEADER.format("crd.yaml") + (DEPLOY / "crd.yaml").read_text(),
        CHART / "crds" / "pgrestores.pgbackup.io.yaml": HEADER.format("crd-pgrestore.yaml")
        + (DEPLOY / "crd-pgrestore.yaml").read_text(),
        FILES / "rbac-rules.yaml": HEADER.format("rbac.yaml") + yaml.safe_dump(rbac_rules(), sort_keys=False),
        FILES / "prometheus-rules.yaml": HEADER.format("monitoring/prometheus-rules.yaml")
        + (DEPLOY / "monitoring" / "prometheus-rules.yaml").read_text(),
        FILES / "grafana-dashboard.json": (DEPLOY / "monitoring" / "grafana-dashboard.json").read_text(),
        FILES / "admission-policy.yaml": HEADER.format("admission-policy.yaml")
        + (DEPLOY / "admission-policy.yaml").read_text(),
        **chart_meta.expected(),
    }


def main() -> None:
    for path, text in expected().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
