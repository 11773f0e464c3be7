"""The pgbackup operator: PgBackup resources in, CronJobs that run ``pgbackup run`` (and, with
``spec.verify``, ``pgbackup verify``) out.

It lives in ``operator/pgbackup_operator/``. ``operator/`` itself is deliberately not a
package: a package named ``operator`` on ``sys.path`` (the repository root, whenever
``python -m`` runs from it) would shadow the standard library module of that name.

- ``api``       the PgBackup vocabulary: group, version, labels, ``Body``, ``RenderError``;
- ``pod``       pure functions: a PgBackup to the pod its CronJobs run (environment from the
                job's settings schema, certificates, hardening);
- ``render``    pure functions: a PgBackup to its backup and verify CronJobs (and a backup-now Job);
- ``status``    pure functions: observed Jobs, Pods and conditions to status fields;
- ``kube``      the few Kubernetes API calls kopf does not make for us;
- ``handlers``  the kopf handlers tying them together;
- ``cli``       the ``pgbackup-operator`` command.
"""
