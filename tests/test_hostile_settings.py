"""Hostile or mistaken settings and arguments, given to the real ``pgbackup`` command: each is
refused before anything is attempted, in one line that names the setting and the fix, and
never echoes a credential or a control character."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from devenv.postgres import Cluster

from .helpers import job_env, run_pgbackup


def one_line_refusal(result: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a run refused for its settings or arguments (exit 2)."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    return result.stderr.strip()


@pytest.mark.parametrize("suffix", ["?x#y", "?", "#", "?versionId=3"])
def test_a_file_destination_with_a_query_or_fragment_is_refused(
    suffix: str, pg18: Cluster, bindir18: Path, dbname: str, tmp_path: Path
) -> None:
    """``file:///d?x#y`` used to back up into ``/d``, silently dropping what followed."""
    pg18.sql(f"CREATE DATABASE {dbname}")
    result = run_pgbackup(job_env(pg18, f"file://{tmp_path}/d{suffix}", bindir18, BACKUP_DATABASES=dbname,
                                  BACKUP_GLOBALS="false"))
    line = one_line_refusal(result)
    assert "BACKUP_DESTINATION" in line and "must not contain '?' or '#'" in line, line
    assert not (tmp_path / "d").exists(), "nothing was backed up"


@pytest.mark.parametrize("destination", ["file://{tmp}/d\nx", "file://{tmp}/d\tx", "s3://bucket/pre\rfix"])
def test_a_destination_with_a_control_character_is_refused(destination: str, tmp_path: Path) -> None:
    """URL parsing drops tabs and line breaks without a word: the directory or prefix used
    would not be the one written."""
    result = run_pgbackup({"BACKUP_DESTINATION": destination.format(tmp=tmp_path)})
    line = one_line_refusal(result)
    assert "BACKUP_DESTINATION" in line and "control character" in line, line
    assert not any(tmp_path.iterdir())
