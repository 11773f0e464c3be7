"""Dead man's switch pings, the healthchecks.io convention (Uptime Kuma's push monitors and
Cronitor take the same requests): ``<url>/start`` when a run starts, ``<url>`` when it
succeeded, ``<url>/fail`` when it failed, each a POST whose body is the run's one-line
summary. Because the monitor alerts when the pings stop, it also catches runs that never
start. Plain ``urllib``: three requests do not need a client library.
"""

from __future__ import annotations

import urllib.request

from ..core.schema import Secret

SUFFIXES = {"start": "/start", "success": "", "fail": "/fail"}


def ping(url: Secret, event: str, body: str, timeout: float) -> None:
    """POST ``body`` to the URL for ``event``; raises on a network error or a non-2xx answer."""
    request = urllib.request.Request(
        url.reveal() + SUFFIXES[event],
        data=body.encode("utf-8")[:10000],
        method="POST",
        headers={"Content-Type": "text/plain; charset=utf-8", "User-Agent": "pgbackup"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read(1024)
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"the monitor answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RuntimeError(f"cannot reach the monitor: {reason}") from None
