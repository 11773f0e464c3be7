"""``python -m pgbackup_operator`` is the ``pgbackup-operator`` command."""

from .cli import main

raise SystemExit(main())
