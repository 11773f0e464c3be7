"""The pgbackup operator: PgBackup resources in, CronJobs that run ``pgbackup run`` (and, with
``spec.verify``, ``pgbackup verify``; with ``spec.retention.schedule``, ``pgbackup prune``) out;
PgRestore resources in, one ``pgbackup restore`` Job each out.

It lives in ``operator/pgbackup_operator/``. ``operator/`` itself is deliberately not a
package: a package named ``operator`` on ``sys.path`` (the repository root, whenever
``python -m`` runs from it) would shadow the standard library module of that name.

- ``api``       the PgBackup and PgRestore vocabulary: group, version, labels, ``Body``, ``RenderError``;
- ``spec``      each PgBackup and PgRestore spec read once into frozen dataclasses, which every
                module below reads instead of the body's dicts;
- ``env``       pure functions: each job's settings as the pod's environment (from the job's
                settings schema), credentials per job, the run's identity for shards;
- ``pod``       pure functions: the hardened pod each job runs (command, certificates, security);
- ``literal``   every CR string in a pod's env and command kept out of the kubelet's ``$(VAR)`` expansion;
- ``render``    pure functions: a PgBackup to its backup, verify and prune CronJobs (and a
                backup-now Job, the prune Job after a sharded run);
- ``status``    pure functions: observed Jobs, Pods and conditions to status fields, shards added up;
- ``trust``     pure functions: what the spec says about signing and drill isolation, as conditions;
- ``kube``      the few Kubernetes API calls kopf does not make for us;
- ``handlers``  the kopf handlers of PgBackups, their CronJobs and Jobs;
- ``runs``      what a backup, verify or prune Job means for its PgBackup's status;
- ``restores``  PgRestore: its Job, rendered once, and its status;
- ``listings``  the bucket listed on request, published in a ConfigMap;
- ``alerting``, ``freshness``, ``metrics``  silence as a failure, and /metrics;
- ``cli``       the ``pgbackup-operator`` command.
"""
