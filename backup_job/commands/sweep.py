"""A run's clean-up of unfinished uploads: abort what killed runs left, never a live run's.

A process killed outright (SIGKILL, node loss) cannot abort its multipart upload, whose parts
are billed until someone does. So each run, before it writes, aborts the unfinished uploads
under its prefix that have pgbackup's layout (and clock probes, below) and that began more
than ``BACKUP_ABANDONED_UPLOAD_AGE`` ago with nothing written to them since.

Age is measured by the store's clock, not this machine's: an upload's start (``Initiated``)
against the time the store gave when it listed it. And a store's dates are used only when
they hold up; where they do not, nothing is aborted and one WARNING per run names the store
and the remedy, the bucket's lifecycle rule:

- no upload may have begun after the store's own "now" (beyond ``TOLERANCE``);
- no two uploads of different runs that are old enough to go may carry the very same start:
  the uploads of one run start together and a store that keeps whole seconds (SeaweedFS)
  dates them alike, but old uploads of different runs agreeing to the instant is what a
  store with a fixed date (moto's server) looks like;
- before anything is aborted, a probe upload the run starts itself (``layout.probe_key``)
  must be dated within ``TOLERANCE`` of the store's clock. This is what catches a lone upload
  with a wrong fixed date, which its date cannot tell from an old one, nor its parts when
  none was sent yet (a run whose pg_dump waits on a table lock). The probe is aborted at
  once; one left by a killed run is swept like any abandoned upload.

Requests: one ListMultipartUploads per 1,000 unfinished uploads, every run (as before the
checks existed); only when some upload is old enough to go, three more for the probe (create,
list, abort), then a ListParts and an abort per upload that goes.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from ..core import logs
from ..core.errors import AccessDeniedError, DatabaseError
from ..core.layout import READABLE_SUFFIXES, is_probe, parse_key, parse_member, probe_key
from ..storage.base import OpenUpload, OpenUploads, Storage

TOLERANCE = timedelta(seconds=60)  # the store's one-second Date, a little clock drift between its nodes
log = logs.get("run")


def sweep_unfinished_uploads(storage: Storage, prefix: str, age: timedelta) -> None:
    """Abort the abandoned uploads under ``prefix``, logging each; never raises."""
    if not storage.keeps_unfinished:
        return  # the store drops them itself
    where = storage.describe(f"{prefix}/" if prefix else "")
    try:
        listing = storage.open_uploads(prefix)
        old = _old(prefix, listing, age)
        doubt = _doubt(prefix, listing, old)
        if doubt is None and old:
            doubt = _probe(storage, prefix)
        if doubt is None and listing.clock is not None:
            for upload in old:
                if not storage.written_since(upload, listing.clock - age):
                    storage.abort_upload(upload)
                    log.warning(
                        "aborted an unfinished upload left by an earlier run: %s",
                        storage.describe(upload.key),
                        extra=logs.fields(event="sweep.aborted"),
                    )
    except AccessDeniedError as exc:  # the write-only policy, by design: the lifecycle rule cleans up
        log.info("unfinished uploads of earlier runs not swept: %s", exc)
        return
    except DatabaseError as exc:
        log.warning("could not clean up unfinished uploads: %s", exc)
        return
    if doubt is not None:
        log.warning(
            "unfinished uploads in %s not swept: the store's upload dates cannot be trusted (%s), so a live "
            "run's upload could look abandoned; let the bucket's lifecycle rule abort abandoned uploads "
            "(AbortIncompleteMultipartUpload, see docs/failures.md#unfinished-uploads)",
            where,
            doubt,
            extra=logs.fields(event="sweep.untrusted"),
        )


def _ours(prefix: str, key: str) -> bool:
    """A dump's upload, or a split backup member's."""
    parsed = parse_key(prefix, key)
    return (parsed is not None and parsed[2] in READABLE_SUFFIXES) or parse_member(prefix, key) is not None


def _run_of(prefix: str, key: str) -> str:
    """Which run an upload belongs to, as far as its key tells: its timestamp, else the key."""
    parsed = parse_key(prefix, key) or parse_member(prefix, key)
    return parsed[1] if parsed is not None else key


def _old(prefix: str, listing: OpenUploads, age: timedelta) -> list[OpenUpload]:
    """Our uploads (and clock probes) that began more than ``age`` before the store's time."""
    if listing.clock is None:
        return []
    threshold = listing.clock - age
    return [
        upload
        for upload in listing.uploads
        if upload.initiated < threshold and (_ours(prefix, upload.key) or is_probe(prefix, upload.key))
    ]


def _doubt(prefix: str, listing: OpenUploads, old: list[OpenUpload]) -> str | None:
    """Why the listing's dates cannot be trusted, or None."""
    if listing.clock is None:
        return "its answer carries no Date"
    for upload in listing.uploads:
        if upload.initiated > listing.clock + TOLERANCE:
            ahead = (upload.initiated - listing.clock).total_seconds()
            return f"an upload began {ahead:.0f} s after the store's own time, {listing.clock:%Y-%m-%dT%H:%M:%SZ}"
    seen: dict[object, str] = {}
    for upload in old:  # only what would go: live uploads of two runs may start in the same second
        run = _run_of(prefix, upload.key)
        if seen.setdefault(upload.initiated, run) != run:
            return f"uploads of two different runs began at the same instant, {upload.initiated:%Y-%m-%dT%H:%M:%S.%fZ}"
    return None


def _probe(storage: Storage, prefix: str) -> str | None:
    """Start, list and abort an upload of our own; why its date is wrong, or None."""
    skew = storage.probe_upload_clock(probe_key(prefix, secrets.token_hex(16)))
    if skew is None:
        return "an upload started just now is missing from its listing, or the listing carries no Date"
    if abs(skew) > TOLERANCE:
        return f"an upload started just now is dated {skew.total_seconds():+.0f} s from the store's own time"
    return None
