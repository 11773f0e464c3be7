"""Where a run's outcome goes besides the log and the termination message (``backup_job.report``).

The URLs carry tokens: they are parsed into ``Secret``s, each registered with the log
redaction, and no complaint about one repeats any part of it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ..printable import control_character
from ..schema import Invalid, Secret, Variable, choice, duration, format_optional, optional_path
from .group import Group


def _urls(value: str) -> tuple[Secret, ...]:
    urls = tuple(value.split())
    bad = [url for url in urls if "://" not in url]
    if bad:
        raise Invalid("holds an entry that is not a URL (scheme://...)", "slack://TokenA/TokenB/TokenC")
    return tuple(Secret(url) for url in urls)


def _format_urls(urls: tuple[Secret, ...]) -> str:
    return " ".join(url.reveal() for url in urls)


def _http_url(value: str) -> str | None:
    """An http(s) URL urllib can reach as written. These variables are secret: no message
    here repeats any part of the value."""
    example = "https://hc-ping.com/<uuid>"
    if not value:
        return None
    if not value.startswith(("http://", "https://")):
        raise Invalid("must be an http:// or https:// URL", example)
    if control_character(value) or " " in value:  # urlsplit drops some; a request line breaks on the rest
        raise Invalid("contains a space or a control character; percent-encode or remove it", example)
    parts = urlsplit(value)
    if "@" in parts.netloc:  # urllib sends no credentials from a URL: it resolves "user:pass@host" as a name
        raise Invalid(
            "must not contain user:password@: pgbackup sends no credentials from a URL; use one that "
            "needs none, or whose path carries its token",
            example,
        )
    if not parts.hostname:
        raise Invalid("names no host", example)
    try:
        _ = parts.port  # urlsplit checks the port only when it is read
    except ValueError as exc:
        raise Invalid("has an invalid port (1-65535)", example) from exc
    return value


def _healthcheck(value: str) -> Secret | None:
    url = _http_url(value)
    return Secret(url.rstrip("/")) if url else None


def _pushgateway(value: str) -> Secret | None:
    url = _http_url(value)
    return Secret(url) if url else None


def _secret_url(value: Secret | None) -> str:
    return "" if value is None else value.reveal()


def _notify_always(value: str) -> bool:
    return choice("failure", "always")(value) == "always"


def _format_notify_on(always: bool) -> str:
    return "always" if always else "failure"


def _timeout(value: str) -> int:
    return max(1, duration(value))


class ReportSettings(Group):
    """Notifications, the dead man's switch, and metrics."""

    notify_urls = Variable(
        "BACKUP_NOTIFY_URLS",
        _urls,
        "Where to send notifications: Apprise URLs separated by spaces or newlines (Slack, "
        "Teams, Discord, Matrix, ntfy, email, JSON webhooks...). They carry tokens: use the "
        "`_FILE` form.",
        example="/run/secrets/notify_urls",
        note="Apprise URLs, separated by spaces; they hold tokens, so prefer the _FILE form.",
        shown_default="none",
        secret=True,
        file_form=True,
        format=_format_urls,
    )
    notify_always = Variable(
        "BACKUP_NOTIFY_ON",
        _notify_always,
        "`failure`: failed runs, failed verify drills and shrink alarms; `always`: every run too.",
        default="failure",
        example="always",
        note="failure: failed runs, failed drills and shrink alarms; always: every run too.",
        format=_format_notify_on,
    )
    healthcheck_url = Variable(
        "BACKUP_HEALTHCHECK_URL",
        _healthcheck,
        "A dead man's switch (healthchecks.io convention): `<url>/start` when a run starts, "
        "`<url>` on success, `<url>/fail` on failure; the monitor alerts when pings stop.",
        example="/run/secrets/healthcheck_url",
        note="healthchecks.io-style pings: <url>/start, <url> on success, <url>/fail on failure.",
        shown_default="none",
        secret=True,
        file_form=True,
        format=_secret_url,
    )
    metrics_textfile = Variable(
        "BACKUP_METRICS_TEXTFILE",
        optional_path,
        "Write the last run's metrics here, atomically, for node_exporter's textfile collector.",
        example="/var/lib/node_exporter/pgbackup.prom",
        note="The last run's metrics for node_exporter's textfile collector, and/or a Pushgateway.",
        format=format_optional,
    )
    pushgateway_url = Variable(
        "BACKUP_METRICS_PUSHGATEWAY_URL",
        _pushgateway,
        "Push the last run's metrics to this Prometheus Pushgateway (job `pgbackup`, grouped by destination).",
        example="/run/secrets/pushgateway_url",
        shown_default="none",
        secret=True,
        file_form=True,
        format=_secret_url,
    )
    timeout = Variable(
        "BACKUP_NOTIFY_TIMEOUT",
        _timeout,
        "The most time notifications, pings and metric pushes may take together at each "
        "step; they never change the run's exit code.",
        default="10s",
        example="5s",
    )

    @property
    def wanted(self) -> bool:
        return bool(self.notify_urls or self.healthcheck_url or self.metrics_textfile or self.pushgateway_url)
