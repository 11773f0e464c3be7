"""The attacks: pgbackup run for real against real PostgreSQL and S3 by its most hostile users.

Whoever can write the bucket (forged dumps and manifests, backups dated in 2099, decompression
bombs), whoever owns a database (functions that shadow pg_catalog's, names that read as COPY
headers, code that runs when a dump is restored) and whoever writes the settings (credentials
and control characters where a name belongs) each get nothing: every boundary of the security
model (docs/security.md) has a test here that performs its attack. The Kubernetes ones, where a
custom resource's author is the attacker, need the control plane and are in ``tests/k8s``.
"""
