"""The byte paths between PostgreSQL and storage, and the catalog of what they left there.

- ``backup``    pg_dump -> compress -> parts -> storage, then the manifest (start here);
- ``compress``  the compression stage;
- ``progress``  progress lines while bytes flow;
- ``load``      storage -> sha256 -> gunzip -> psql, committed only when verified;
- ``catalog``   the backups under a prefix: listing + manifests, complete or not.
"""
