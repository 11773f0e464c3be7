"""The clean-up of unfinished uploads: by the store's clock, never on dates that cannot be true.

Against moto's server and SeaweedFS through the fault proxy, whose ``rewrite`` redates the
ListMultipartUploads answers: honestly for moto (which dates every upload 2010-11-10), wrongly
for both. The clean-up is called as a run calls it, on pgbackup's real S3 storage, without the
run around it (``test_concurrent_runs.py`` has whole runs, ``test_least_privilege.py`` one that
aborts); the proxy counts its requests. A ``file://`` destination needs no service at all.

The offline tests; those that run pgbackup or real services are in tests/faults/test_sweep.py."""

from __future__ import annotations

import logging
import os
import time
from datetime import timedelta
from pathlib import Path

import pytest

from backup_job.commands.sweep import sweep_unfinished_uploads
from backup_job.core.layout import is_probe, parse_key, probe_key
from backup_job.storage.local import LocalStorage


def partial(root: Path, key: str, age: float) -> Path:
    """A temporary file as an upload to ``key`` leaves it, last written ``age`` seconds ago."""
    final = root / key
    final.parent.mkdir(parents=True, exist_ok=True)
    path = final.with_name(f".{final.name}.partial-0123456789ab")
    path.write_bytes(b"half a dump")
    os.utime(path, (time.time() - age, time.time() - age))
    return path


def test_a_killed_run_s_temporary_file_goes_and_a_live_one_stays(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    killed = partial(tmp_path, "p/shop/20200101T000000Z.sql.gz", age=7200)
    live = partial(tmp_path, "p/shop/20200102T000000Z.sql.gz", age=5)
    foreign = partial(tmp_path, "p/shop/notes.txt", age=7200)

    with caplog.at_level(logging.INFO):
        sweep_unfinished_uploads(LocalStorage(tmp_path), "p", timedelta(hours=1))

    assert not killed.exists() and live.exists() and foreign.exists()
    assert [r.getMessage() for r in caplog.records] == [
        f"aborted an unfinished upload left by an earlier run: file://{tmp_path}/p/shop/20200101T000000Z.sql.gz"
    ]


def test_the_clock_probe_is_the_clean_up_s_alone() -> None:
    key = probe_key("prod", "0123456789abcdef" * 2)
    assert key == "prod/_probe/0123456789abcdef0123456789abcdef.clock"
    assert is_probe("prod", key) and parse_key("prod", key) is None, "listing, retention and restore never see it"
    assert not is_probe("prod", "prod/_probe/backup.sql.gz") and not is_probe("", key)
    assert is_probe("", probe_key("", "f" * 32))
