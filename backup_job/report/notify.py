"""Notifications through Apprise: one library for Slack, Teams, Discord, Matrix, ntfy, email
and plain JSON or form webhooks, each named by a URL (``BACKUP_NOTIFY_URLS``).

Each URL is sent to on its own, so one broken receiver does not hide the others, and each
outcome is logged by its position and scheme only (``URL 2 of 3, slack://``): the rest of a
URL is a token. Apprise's own log lines can name the service's real endpoint with the token
in it, so its logger is kept out of ours; only an HTTP status it reports (``error=404``) is
passed on. The message itself is built from already redacted text (``core.logs.redact``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..core import logs
from ..core.schema import Secret

log = logs.get("report")
KINDS = ("success", "warning", "failure")
_STATUS = re.compile(r"error=(\d{3})")


@dataclass(frozen=True)
class Notification:
    title: str
    body: str
    kind: str  # one of KINDS


def scheme(url: Secret) -> str:
    return url.reveal().split("://", 1)[0] + "://"


class _Collect(logging.Handler):
    """Keeps Apprise's log records for this send, never printing them."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def send(urls: Sequence[Secret], notification: Notification) -> None:
    """Send to every URL; log one line per URL that failed (raises nothing of its own)."""
    import apprise  # only runs that notify load it

    apprise_log = logging.getLogger("apprise")
    apprise_log.propagate = False
    collected = _Collect()
    apprise_log.handlers = [collected]
    apprise_log.setLevel(logging.INFO)
    kind = {
        "success": apprise.NotifyType.SUCCESS,
        "warning": apprise.NotifyType.WARNING,
        "failure": apprise.NotifyType.FAILURE,
    }[notification.kind]
    sent = 0
    for position, url in enumerate(urls, 1):
        where = f"notification to URL {position} of {len(urls)} ({scheme(url)})"
        collected.messages.clear()
        target = apprise.Apprise()
        if not target.add(url.reveal()):
            log.warning(
                "%s: Apprise does not understand this URL; see https://github.com/caronc/apprise/wiki",
                where,
                extra=logs.fields(event="notify.failed", url=position),
            )
            continue
        if target.notify(title=notification.title, body=notification.body, notify_type=kind):
            sent += 1
            continue
        status = next((m.group(1) for text in collected.messages if (m := _STATUS.search(text))), "")
        log.warning(
            "%s failed%s",
            where,
            f" (HTTP {status})" if status else "",
            extra=logs.fields(event="notify.failed", url=position),
        )
    if sent:
        log.info(
            "notification sent to %d of %d URLs",
            sent,
            len(urls),
            extra=logs.fields(event="notify.sent", sent=sent, urls=len(urls)),
        )
