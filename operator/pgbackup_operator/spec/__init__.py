"""The typed spec: each PgBackup and PgRestore read once, into frozen dataclasses.

A handler reads its resource's ``spec`` once (``parse_pgbackup``, ``parse_pgrestore``) and
hands the result down: ``render``, ``env``, ``pod``, ``podrules``, ``trust`` and ``restores``
read attributes, never string keys, so a misspelt field is a type error and every field the
operator honours is listed here. A malformed spec (a spec that did not pass the API server's
schema: an older CRD, a test, a client that skips validation) is a ``RenderError`` naming the
field's path, reported like every other spec the operator cannot honour.

What the CRD's schema cannot say (cron fields, time zones, pg_dump options, keys) stays with
``render.validate`` and ``restores.validate``: this package checks shapes only.

- ``read``       the reader: dataclass fields to CRD names, JSON values to typed values;
- ``parts``      Secret references and the PostgreSQL server block both kinds share;
- ``pgbackup``   ``PgBackupSpec`` and its parts, with the CRD's defaults;
- ``pgrestore``  ``PgRestoreSpec`` and its target.

``tests/unit/test_spec_walk.py`` holds these classes against ``deploy/crd.yaml`` and
``deploy/crd-pgrestore.yaml``: every declared field is read, every read field is declared.
"""

from .parts import NameRef as NameRef
from .parts import SecretKey as SecretKey
from .parts import Server as Server
from .pgbackup import PgBackupSpec as PgBackupSpec
from .pgbackup import PodSettings as PodSettings
from .pgbackup import parse_pgbackup as parse_pgbackup
from .pgrestore import PgRestoreSpec as PgRestoreSpec
from .pgrestore import parse_pgrestore as parse_pgrestore
from .read import plain as plain
