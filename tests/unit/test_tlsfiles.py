"""The TLS files libpq will read are checked first, so an unreadable one is named in one line
(libpq's own reason for it is OpenSSL's, empty or garbled for "permission denied")."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from backup_job.pg import tlsfiles

from ..kit import anyuid


def test_missing_files_system_roots_and_disabled_tls_are_left_to_libpq(tmp_path: Path) -> None:
    assert tlsfiles.unreadable({"PGSSLROOTCERT": "system", "PGSSLCERT": str(tmp_path / "absent.crt")}) is None
    assert tlsfiles.unreadable({"PGSSLMODE": "disable", "PGSSLKEY": str(tmp_path)}) is None  # never read
    assert tlsfiles.unreadable({"PGSSLKEY": str(tmp_path)}) is not None  # a directory: open fails


def test_a_file_the_process_cannot_read_is_named_with_its_mode_and_owner(tmp_path: Path) -> None:
    """Run as an assigned uid with GID 0: a root-owned 0440 file is readable, a 0400 one is not."""
    directory = Path("/tmp") / f"pgbackup-tlsfiles-{tmp_path.name}"  # reachable by any uid
    directory.mkdir(mode=0o755)
    try:
        for name, mode in (("ok.crt", 0o440), ("locked.key", 0o400)):
            (directory / name).write_text("x")
            (directory / name).chmod(mode)
        env = {"PGSSLCERT": str(directory / "ok.crt"), "PGSSLKEY": str(directory / "locked.key")}
        code = (
            "import json, sys; from backup_job.pg import tlsfiles; "
            "print(json.dumps([tlsfiles.unreadable(json.loads(sys.argv[1])), "
            "tlsfiles.unreadable({'PGSSLCERT': json.loads(sys.argv[1])['PGSSLCERT']})]))"
        )
        result = subprocess.run(
            [str(anyuid.command_dir() / "python"), "-c", code, json.dumps(env)],
            cwd="/",
            user=anyuid.ANY_UID,
            group=0,
            extra_groups=[0],
            capture_output=True,
            text=True,
        )
        locked, ok = json.loads(result.stdout or "null") or (result.stderr, None)
        assert locked == (
            f"PGSSLKEY {directory}/locked.key cannot be read: Permission denied (mode 0400, owner 0:0; "
            f"pgbackup runs as uid {anyuid.ANY_UID}, groups 0)"
        )
        assert ok is None
    finally:
        for path in directory.iterdir():
            path.unlink()
        directory.rmdir()
