"""Compression: every format and level reads back with the reference tools, threads are what
was asked for, and the CPU count follows the cgroup quota a Kubernetes CPU limit sets.

The input is a real pg_dump of a real database; the reference readers are the system's
``gzip`` and ``zstd`` (Debian's), and the output must equal pg_dump's bytes exactly.

The offline tests; those that run pgbackup or real services are in tests/integration/test_compression.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from backup_job.core import cpus
from backup_job.pipeline.cpushare import CpuShare


def cgroup(tmp_path: Path, files: dict[str, str], own: str = "0::/\n") -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    root.mkdir(exist_ok=True)
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text(own)
    return root, proc


@pytest.mark.parametrize(
    ("files", "own", "expected"),
    [
        ({"cpu.max": "150000 100000\n"}, "0::/\n", 2),  # a pod limit of 1.5 CPUs: 2 threads share it
        ({"cpu.max": "max 100000\n"}, "0::/\n", 8),  # no limit: the affinity mask
        (
            {"kubepods/cpu.max": "200000 100000\n", "kubepods/pod1/c1/cpu.max": "max 100000\n"},
            "0::/kubepods/pod1/c1\n",
            2,
        ),  # a parent's limit binds the container below it
        ({"cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n"}, "4:cpu,cpuacct:/\n", 3),  # v1
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, "4:cpu,cpuacct:/\n", 8),
        ({}, "", 8),  # nothing readable: no limit from there
    ],
    ids=["v2-limit", "v2-max", "v2-parent", "v1-limit", "v1-none", "none"],
)
def test_usable_cpus_follow_the_cgroup_quota(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, str], own: str, expected: int
) -> None:
    monkeypatch.setattr(cpus, "affinity", lambda: 8)
    root, proc = cgroup(tmp_path, files, own)
    assert cpus.usable(root, proc) == expected


def test_the_cpus_are_shared_among_the_streams_running_at_once() -> None:
    share = CpuShare(8)
    with share.stream():
        assert share.threads() == 8
        with share.stream(), share.stream():
            assert share.threads() == 2
        assert share.threads() == 8, "the big stream gets the CPUs back when the others end"
    assert CpuShare(8, fixed=3).threads() == 3
    many = CpuShare(2)
    with many.stream(), many.stream(), many.stream():
        assert many.threads() == 1


def test_the_compression_libraries_load_only_when_a_stream_needs_them() -> None:
    """A gzip run never loads zstandard, and importing the pipeline loads neither library:
    part of the memory bound."""
    import subprocess
    import sys

    probe = (
        "import sys; import backup_job.cli, backup_job.commands.run, backup_job.commands.restore; "
        "import backup_job.pipeline.compress as c; from backup_job.core.settings import Compression; "
        "before = {m for m in ('isal', 'zstandard') if m in sys.modules}; "
        "g = c.open_compressor(Compression('gzip', 6), lambda: 1, 1); g.compress(b'x'); g.finish(); g.close(); "
        "print(sorted(before), 'zstandard' in sys.modules, 'isal' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout.split()
    assert out == ["[]", "False", "True"]
