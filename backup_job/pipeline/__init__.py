"""The byte paths between PostgreSQL and storage, and the catalog of what they left there.

- ``stream``      pg_dump -> compressor -> (sealer) -> parts -> storage: one byte's path (start here);
- ``backup``      one run's backups: each source streamed, then its manifest;
- ``compress``    the compression stage: block-parallel gzip on ISA-L, or zstd;
- ``cpushare``    the run's CPUs shared among the streams running at once;
- ``sidecar``     work beside the byte path (the COPY row counter);
- ``progress``    progress lines while bytes flow;
- ``load``        storage -> sha256 -> (age) -> gunzip/unzstd -> psql, committed only when verified;
- ``proof``       a backup's stored bytes read whole and checked, before retention deletes older ones;
- ``seal``        age encryption of the compressed stream, on its own thread;
- ``unseal``      the identity, and age decryption inside the checked read;
- ``decompress``  gzip or zstd back, in bounded steps;
- ``catalog``     the backups under a prefix: listing + manifests, complete or not.
"""
