"""The pgbackup operator: PgBackup resources in, CronJobs that run ``pgbackup run`` out.

Imported as ``pgbackup_operator`` (the folder is ``operator/``; a package of that name would
shadow the standard library's ``operator`` module).

- ``render``    pure functions: a PgBackup to its CronJob (and a backup-now Job);
- ``status``    pure functions: observed Jobs, Pods and conditions to status fields;
- ``kube``      the few Kubernetes API calls kopf does not make for us;
- ``handlers``  the kopf handlers tying them together;
- ``cli``       the ``pgbackup-operator`` command.
"""
