"""``python -m backup_job`` is the ``pgbackup`` command."""

from .cli import main

raise SystemExit(main())
