"""A short seeded fault soak on both stores (``devenv/soak.py``): random data changes, runs
under faults and signals, overlapping runs, prunes, restores, drills and listings, every
invariant checked after every step. The long run is ``python -m devenv.soak``
(docs/development.md#tests)."""

from __future__ import annotations

from pathlib import Path

from devenv.postgres import Cluster
from devenv.s3 import S3Server
from devenv.seaweed import SeaweedServer
from devenv.soak import soak

# Seed 24 draws, per store, runs under ambiguous writes, 5xx bursts, resets and a flipped
# download, SIGKILLs and a SIGTERM mid-run, a prune, a restore and a listing through faults:
# 40 to 60 s on 2 cores shared with other work (load 4-6), less on a quiet machine.
SEED = 24
STEPS = 6  # per store


def test_a_short_seeded_soak_finds_no_violation_on_either_store(
    pg18: Cluster, bindir18: Path, s3server: S3Server, seaweed: SeaweedServer
) -> None:
    figures = soak(pg18, bindir18, {"moto": s3server, "seaweedfs": seaweed}, SEED, STEPS)

    facts = figures.as_dict()
    assert not figures.violations, figures.text()
    assert facts["steps"] == 2 * STEPS
    # A soak that stopped injecting, signalling or checking would pass the line above by doing nothing.
    assert facts["faults_hit"] >= 4, figures.text()
    assert sum(figures.signals.values()) >= 1, figures.text()
    assert figures.checks["restore-equals-truth"] >= 4, figures.text()
    assert facts["invariant_checks"] >= 100, figures.text()
