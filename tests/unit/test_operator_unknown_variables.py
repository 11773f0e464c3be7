"""The operator's start warns about a ``PGBACKUP_*`` variable it does not read, as the job does
about ``BACKUP_*`` ones: by name, with the closest known one, never the value."""

from __future__ import annotations

import os

import pytest

from pgbackup_operator import cli


def test_the_operator_names_a_misspelt_variable_and_the_right_one_never_its_value(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("BACKUP_", "PGBACKUP_"))}
    monkeypatch.setattr(os, "environ", {**environ, "PGBACKUP_NAMESPACE": "prod-payments-7f3a"})
    # A port out of range stops the start with code 2 just after the warnings, before kopf runs.
    assert cli.main(["--metrics-port", "70000"]) == 2
    stderr = capsys.readouterr().err
    warnings = [line for line in stderr.splitlines() if "warning" in line]
    assert warnings == [
        "pgbackup-operator: warning: PGBACKUP_NAMESPACE is not a pgbackup setting and is ignored; "
        "did you mean PGBACKUP_NAMESPACES?"
    ]
    assert "prod-payments-7f3a" not in stderr
