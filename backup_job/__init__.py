"""pgbackup: logical backups of every database on a PostgreSQL server, streamed to S3.

Where things live:

- ``cli``        the ``pgbackup`` command: parses arguments, maps errors to exit codes;
- ``config``     environment (+ ``.env``, + ``*_FILE`` secrets) to validated ``Settings``;
- ``runner``     one run: discovery, then every database in isolation, then the summary;
- ``schedule``   compose mode: validate the schedule, then exec Supercronic;
- ``cron``       five-field cron expressions and their next run time;
- ``discovery``  which databases exist and which server version they are on;
- ``pipeline``   the byte path: ``dump`` -> ``compress`` -> parts -> ``storage``;
- ``manifest``   the proof of a complete backup, written after the object;
- ``layout``     object keys: database names and run timestamps, both ways;
- ``storage``    S3 and local-directory destinations behind one interface;
- ``logs``       one event per line on stdout, with secret redaction;
- ``errors``     the error hierarchy the CLI turns into exit codes.
"""

__version__ = "0.1.0"
