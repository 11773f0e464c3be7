"""Namespaces that come and go never stall the operator.

An operator watching a namespace glob starts a watch per matching namespace. Namespaces are
deleted all the time (a CI's preview environments, a tenant tidying up), and some are being
deleted just as the operator starts or as it starts watching them. Whatever it saw of a
namespace that is gone, the operator must go on serving the others: here PgBackups in
namespaces deleted while it starts, and in namespaces made and deleted at once while it runs,
and then a new namespace's PgBackup must get its CronJob.
"""

from __future__ import annotations

import os
from typing import Any

from devenv.wait import wait_for

from ..kit.kubeenv import KubeEnv, OperatorProcess

PROBE: dict[str, Any] = {
    "schedule": "0 0 1 1 *",
    "postgres": {"host": "db", "user": "backup", "passwordSecretRef": {"name": "db"}},
    "destination": {"s3": {"bucket": "backups"}},
}


def _gone(kube: KubeEnv, namespaces: list[str]) -> bool:
    existing = {n.metadata.name for n in kube.core.list_namespace().items}
    return not existing & set(namespaces)


def test_namespaces_deleted_while_it_starts_and_runs_never_stall_the_operator(kube: KubeEnv) -> None:
    prefix = f"churn-{os.getpid()}-"
    churned: list[str] = []

    def come_and_go(name: str, delete: bool) -> None:
        kube.core.create_namespace({"metadata": {"name": name}})
        kube.create_pgbackup(name, "brief", PROBE)
        churned.append(name)
        if delete:
            kube.core.delete_namespace(name)

    for round_ in range(3):
        starting = [f"{prefix}{round_}-old-{i}" for i in range(4)]
        for name in starting:
            come_and_go(name, delete=False)
        with OperatorProcess(kube, namespaces=[f"{prefix}*"]) as operator:
            if round_ == 0:  # once, deleted after the operator has shown them in its metrics
                wait_for(
                    lambda names=starting: all(_series_in(operator.scrape(), [n]) for n in names),  # type: ignore[misc]
                    timeout=60,
                    what="series of the PgBackups present at the start",
                )
            for name in starting:  # deleted while the operator lists and starts watching them
                kube.core.delete_namespace(name)
            for i in range(4):  # and made and deleted at once while it runs
                come_and_go(f"{prefix}{round_}-brief-{i}", delete=True)
            operator.wait_for_namespace_watch(f"{prefix}{round_}-")  # a new namespace is served
            wait_for(lambda: _gone(kube, churned), timeout=120, what="the churned namespaces deleted")
            # Its watch of a namespace can end before the namespace's PgBackups are deleted, so
            # no deletion is seen: their series must go all the same, or an alert on a backup's
            # age would fire for ever for a PgBackup that no longer exists.
            wait_for(
                lambda: _series_in(operator.scrape(), churned) == [],
                timeout=30,
                what="no series left of the deleted namespaces' PgBackups",
            )
            assert "Traceback" not in operator.output()


def _series_in(scrape: str, namespaces: list[str]) -> list[str]:
    return [line for line in scrape.splitlines() if any(f'namespace="{n}"' in line for n in namespaces)]
