"""The vocabulary every other room uses; imports nothing from them.

- ``settings``     every environment variable, declared once (``schema`` is the machinery);
- ``dumpoptions``  pg_dump's command line, read the way pg_dump reads it;
- ``errors``       the error hierarchy the CLI turns into exit codes;
- ``logs``         one event per line on stdout, with secret redaction;
- ``signals``      stop requests reach the main thread only, and wait where they must;
- ``stopping``     a stop request: heard from the first instant, bounded, no write after it, said once;
- ``layout``       object keys <-> (database, timestamp): the only judge of what is ours;
- ``manifest``     the proof of a complete backup, and how one is built;
- ``retention``    the retention policy as a value;
- ``cron``         cron expressions and their next run time;
- ``shard``        the stable hash that spreads databases over shards (``BACKUP_SHARD=i/N``);
- ``runkey``       a run's key timestamp and id, the same in every pod of the run;
- ``termination``  the one-line JSON outcome the job leaves for Kubernetes and the operator;
- ``datavalues``   the data values a PostgreSQL error quotes, kept out of summaries;
- ``keys``         age recipients (checked as settings) and identities (read only to decrypt);
- ``signing``      ed25519 signatures on manifests: the job's private key, the public keys trusted;
- ``moments``      ``--at`` read into a moment, every bad value one line;
- ``printable``    control and format characters escaped for people's screens;
- ``credentials``  values that look like keys, never echoed in a message.
"""
