"""How many connections a split backup may open: the rule, and the server's own limit.

A split backup of one database holds ``jobs + 2`` connections: its readers, the leader whose
transaction holds the snapshot, and one pg_dump of the schema at a time. A run dumps up to
``BACKUP_PARALLEL_DATABASES`` databases at once, so it holds at most::

    parallel_databases x (jobs + 2)

That must stay below what the server has free when the run starts: ``max_connections`` minus
the slots reserved for superusers and for ``pg_use_reserved_connections``, minus the
connections open now, minus ``RESERVE`` left for the applications. ``fit`` lowers ``jobs``
(never below 1) until the rule holds, and says so once; with one reader per database it can go
no lower, and the run proceeds as a plain run's connections would.
"""

from __future__ import annotations

from contextlib import closing

from ..core import logs
from .target import Target

RESERVE = 5  # connections left for everyone else, beyond the server's own reserved slots
log = logs.get("run")

_FREE = """
SELECT pg_catalog.current_setting('max_connections')::pg_catalog.int4
     - pg_catalog.current_setting('superuser_reserved_connections')::pg_catalog.int4
     - COALESCE(pg_catalog.current_setting('reserved_connections', true), '0')::pg_catalog.int4
     - (SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_activity
        WHERE backend_type OPERATOR(pg_catalog.=) 'client backend')::pg_catalog.int4
"""


def per_database(jobs: int) -> int:
    return jobs + 2


def fit(target: Target, database: str, wanted: int, parallel_databases: int) -> int:
    """``wanted`` readers per database, lowered to fit the server's free connections."""
    with closing(target.connect(database)) as connection, connection.cursor() as cursor:
        cursor.execute(_FREE)
        row = cursor.fetchone()
    free = int(row[0]) if row else 0
    budget = free - RESERVE
    jobs = max(1, wanted)
    while jobs > 1 and parallel_databases * per_database(jobs) > budget:
        jobs -= 1
    if jobs < wanted:
        log.warning(
            "split backups read each database over %d connections instead of %d: the server has %d free "
            "(max_connections less reserved and open ones), %d are left for others, and %d databases run at once "
            "at %d connections each (readers + leader + pg_dump)",
            jobs,
            wanted,
            free,
            RESERVE,
            parallel_databases,
            per_database(jobs),
            extra=logs.fields(event="run.dump_jobs_lowered", wanted=wanted, jobs=jobs, free=free),
        )
    return jobs
