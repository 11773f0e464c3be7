"""pgbackup: logical backups of every database on a PostgreSQL server, streamed to S3.

Rooms, each a package; imports go one way only (``commands`` -> ``pipeline`` -> ``pg`` |
``storage`` | ``report`` -> ``core``), which ``tests/unit/test_layers.py`` checks:

- ``cli``        the ``pgbackup`` command: parses arguments, maps errors to exit codes;
- ``commands``   one module per command: ``run``, ``restore``, ``verify``, ``prune``,
                 ``listing``, ``schedule``;
- ``pipeline``   the byte paths: ``backup`` (pg_dump -> compress -> (seal) -> parts ->
                 storage, then the manifest: start here), ``load`` (storage -> sha256 ->
                 (age) -> gunzip -> psql), and the ``catalog`` of what is stored;
- ``pg``         PostgreSQL: the client programs as child processes, discovery, restore
                 targets, database properties, COPY row counting;
- ``storage``    S3 and local-directory destinations behind one interface, with their limits;
- ``report``     notifications, healthcheck pings and metrics files/pushes about an outcome;
- ``core``       what everything shares: the settings schema (every variable declared once),
                 errors, logs, signals, the object layout, the manifest, cron, the
                 termination message, age keys.
"""

__version__ = "0.1.0"
