"""The TLS files libpq is told to read, checked before a connection is opened.

When libpq cannot read a certificate or key it names the file, but the reason is OpenSSL's,
which for a system error such as "permission denied" comes out empty or garbled; psycopg2
then reports a bare ``OperationalError``. That is the usual failure of a pod whose uid the
cluster assigned (OpenShift) reading a Secret mounted without group read. So the files named
in ``PGSSLROOTCERT``, ``PGSSLCERT``, ``PGSSLKEY`` and ``PGSSLCRL`` are opened here first, and
one that exists but cannot be read fails with the variable, the file, its owner and mode,
and who pgbackup runs as. A missing file is left to libpq, which treats it in its own way
(a client certificate that does not exist is simply not sent).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping

FILE_VARIABLES = ("PGSSLROOTCERT", "PGSSLCERT", "PGSSLKEY", "PGSSLCRL")
HINT = (
    "mount the Secret with defaultMode 0440: its files are root's with group root (or the pod's "
    "fsGroup), and the pod runs with GID 0 unless its securityContext sets another runAsGroup"
)


def _owner(path: str) -> str:
    st = os.stat(path)
    return f"mode {stat.S_IMODE(st.st_mode):04o}, owner {st.st_uid}:{st.st_gid}"


def unreadable(env: Mapping[str, str]) -> str | None:
    """Why a TLS file named in ``env`` (libpq's variables) cannot be read, or None."""
    if env.get("PGSSLMODE") == "disable":
        return None
    for name in FILE_VARIABLES:
        path = env.get(name, "")
        if not path or path == "system" or not os.path.exists(path):
            continue
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            groups = ",".join(str(g) for g in sorted({os.getegid(), *os.getgroups()}))
            return (
                f"{name} {path} cannot be read: {exc.strerror} ({_owner(path)}; pgbackup runs as uid "
                f"{os.geteuid()}, groups {groups})"
            )
    return None
