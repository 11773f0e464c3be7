"""Who a connection to a server is: whether the restoring role is a superuser, which cluster it is.

Restore asks before loading a dump that does not set each object's owner (``manifest.
loads_as_owner`` false): loaded by a superuser, such a dump runs its owners' functions
(CHECK constraints, defaults, index expressions) with superuser rights. Verify tells the
scratch server from the backed-up one by ``system_identifier`` (a run records the backed-up
server's in each manifest), so a drill never runs a tenant's dump on the tenant's own server
by accident.
"""

from __future__ import annotations

from contextlib import closing

from .target import Target


def is_superuser(target: Target, database: str | None = None) -> bool:
    """Whether the role ``target`` connects as is a superuser (``is_superuser``, as the server
    reports it for the session)."""
    with closing(target.connect(database)) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT pg_catalog.current_setting('is_superuser')")
        row = cursor.fetchone()
    return row is not None and row[0] == "on"


def system_identifier(target: Target, database: str | None = None) -> str:
    """The server's ``system_identifier`` (``pg_control_system()``: one per cluster, kept by
    its replicas and copies), or "" when the role may not read it."""
    try:
        with closing(target.connect(database)) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT system_identifier::text FROM pg_catalog.pg_control_system()")
            row = cursor.fetchone()
    except Exception:  # psycopg2's errors: not allowed, or not there; unknown counts as "the same"
        return ""
    return str(row[0]) if row is not None else ""
