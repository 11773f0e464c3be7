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


# Every object whose owner's code a restore of the database can run: what was created in it
# (object ids from FirstNormalObjectId, 16384, on). The database's owner counts only through
# objects it owns: owning the database itself runs no code during a restore.
OWNERS_SQL = """
SELECT DISTINCT pg_catalog.pg_get_userbyid(owner) FROM (
    SELECT nspowner FROM pg_catalog.pg_namespace WHERE oid OPERATOR(pg_catalog.>=) 16384
    UNION SELECT relowner FROM pg_catalog.pg_class WHERE oid OPERATOR(pg_catalog.>=) 16384
    UNION SELECT proowner FROM pg_catalog.pg_proc WHERE oid OPERATOR(pg_catalog.>=) 16384
    UNION SELECT typowner FROM pg_catalog.pg_type WHERE oid OPERATOR(pg_catalog.>=) 16384
) AS objects(owner) ORDER BY 1
"""


def database_owners(target: Target, database: str) -> list[str]:
    """The roles that own objects in ``database``, whose code (constraints, defaults, index
    expressions, functions) any restore of it runs."""
    with closing(target.connect(database)) as connection, connection.cursor() as cursor:
        cursor.execute(OWNERS_SQL)
        return [str(row[0]) for row in cursor.fetchall()]


def superuser_roles(target: Target, roles: list[str]) -> dict[str, bool]:
    """Which of ``roles`` exist on ``target``, and whether each is a superuser there."""
    with closing(target.connect()) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT rolname, rolsuper FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) ANY (%s)", (roles,)
        )
        return {str(row[0]): bool(row[1]) for row in cursor.fetchall()}
