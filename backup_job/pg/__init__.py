"""PostgreSQL: the client programs pgbackup runs and the queries it makes.

- ``process``    the child-process base of pg_dump, pg_dumpall and psql: own session,
                 stderr drained into a bounded tail, killed as a group;
- ``dump``       pg_dump / pg_dumpall: the source end of a backup;
- ``psql``       psql: the sink end of a restore, restricted (no meta-command of a dump runs),
                 inside one transaction;
- ``tools``      finding the client programs and their versions;
- ``discovery``  the server version and the databases to back up;
- ``target``     the server a restore or a drill writes into;
- ``databases``  creating, emptying, counting and dropping databases;
- ``dbprops``    database owner, locale, settings and GRANTs: captured, then reapplied;
- ``copycount``  rows per table, counted in the dump's COPY blocks as they pass;
- ``roles``      whether the restoring role is a superuser, a database's owners, a cluster's
                 ``system_identifier``.
"""
