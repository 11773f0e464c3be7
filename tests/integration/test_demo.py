"""``scripts/demo``, the first command of docs/getting-started.md: the embedded default backs up,
restores and explains itself."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ..kit.helpers import ROOT


def test_demo_backs_up_sample_databases_and_proves_a_restore(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AWS_", "BACKUP_"))}
    result = subprocess.run(
        [sys.executable, "-m", "devenv.demo", "--output", str(tmp_path / "out")],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for database in ("shop", "analytics", "inventory", "postgres"):
        assert len(list((tmp_path / "out" / database).glob("*.sql.gz"))) == 1
        assert len(list((tmp_path / "out" / database).glob("*.manifest.json"))) == 1
    assert "verify: 5 of 5 backups verified" in result.stdout, "4 databases and the globals"
    assert "restore of 'shop' into 'shop_restored' finished" in result.stdout
    assert "50000 of 50000 orders present" in result.stdout
    assert "gunzip -c " in result.stdout and "psql -X -1 -v ON_ERROR_STOP=1 -d shop_restored" in result.stdout
    assert result.stdout.count("complete, signed (") == 5 and "on the scratch server at" in result.stdout
    assert (tmp_path / "out-signing-key.pem").stat().st_mode & 0o777 == 0o600
