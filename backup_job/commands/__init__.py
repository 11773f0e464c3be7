"""The commands: each wires settings, PostgreSQL, the pipeline and storage for one use.

- ``run``       one backup run: discovery, every database in isolation, summary, retention;
- ``outcome``   what a run did, per database and as a whole;
- ``shards``    one shard's part of a run (``BACKUP_SHARD``), and whether the whole run is stored;
- ``restore``   one backup (or the globals) back into a database;
- ``verify``    the restore drill in scratch databases;
- ``prune``     the retention plan, and deleting what it does not keep;
- ``listing``   ``pgbackup list``;
- ``schedule``  compose mode: validate the schedule, then exec Supercronic;
- ``destination``  the destination opened, the signing key read, the keys a catalog trusts;
- ``keygen``    ``pgbackup keygen``: a signing key pair.
"""
