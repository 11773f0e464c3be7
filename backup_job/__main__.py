"""The ``pgbackup`` command (``python -m backup_job`` too): stop requests are heard first.

Importing the CLI takes a while (boto3, psycopg2, cryptography). A SIGTERM in that time would
kill the process with its default action: no line, no termination message, exit 143. So the
entry point listens for stop requests before it imports anything heavy (``core.stopping``
imports only the standard library), and the CLI reports one that came early as soon as its
logging is set up. After a stop the process ends at once (``stopping.leave``): a thread left
in a call to a stalled store is not waited for.
"""

from __future__ import annotations

from .core import stopping


def main() -> int:
    stopping.listen()
    from .cli import main as command

    return stopping.leave(command())


if __name__ == "__main__":
    raise SystemExit(main())
