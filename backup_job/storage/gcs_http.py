"""Requests to GCS's JSON API, and what their failures mean to a user.

pgbackup talks to the JSON API itself, through the authorized session of the
google-cloud-storage ``Client`` (``client._http``: a ``requests`` session that signs with the
client's credentials and refreshes them), because a streamed backup needs what the library's
upload helpers do not give: a resumable session whose size is known only at its last chunk,
chunks handed over one at a time by the part pool, and the CRC32C of the whole object sent
with the last one.

Every request has a connect and a read timeout (``TIMEOUT``). Reads, listings, metadata reads
and deletes are idempotent and are tried ``ATTEMPTS`` times when the connection fails or GCS
answers 429 or 5xx; writes are tried once and their ambiguous outcomes settled by their
callers (by reading back), which is what keeps a repeated write from meeting itself.

A 403 names the IAM permission the refused request needs and points at the least-privilege
roles (``denied``); a 404 on a write or a listing is the bucket itself missing, said in one
line naming it.
"""

from __future__ import annotations

import time
from typing import Any

import requests

from ..core.errors import AccessDeniedError, StorageError
from ..core.settings import DESTINATION

TIMEOUT = (10.0, 60.0)  # seconds: to connect, and between bytes of an answer
ATTEMPTS = 3  # for idempotent requests, the first one included
BACKOFF = 0.5  # seconds before the second attempt, doubled for each further one
RETRIED = frozenset({408, 429, 500, 502, 503, 504})
HINT = "see docs/gcs.md#least-privilege"
# What each kind of request needs: the IAM permission, and what it does to the object named.
PERMISSIONS = {
    "write": "storage.objects.create",
    "read": "storage.objects.get",
    "list": "storage.objects.list",
    "delete": "storage.objects.delete",
}


def message(response: requests.Response) -> str:
    """GCS's own words for a failed request: its JSON error's message, else the status."""
    try:
        text = str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        text = response.reason or ""
    return f"{response.status_code} {text}".strip()


def denied(verb: str, where: str, response: requests.Response) -> AccessDeniedError:
    """The error for a 401 or 403: what the credentials may not do, GCS's words, the permission."""
    return AccessDeniedError(
        f"the credentials may not {verb} {where} ({message(response)}); that needs {PERMISSIONS[verb]}",
        hint=HINT,
    )


def no_bucket(bucket: str) -> StorageError:
    return StorageError(f"the bucket gs://{bucket} does not exist; create it or correct {DESTINATION.name}")


def failed(what: str, where: str, response: requests.Response) -> StorageError:
    return StorageError(f"GCS {what} of {where} failed: {message(response)}")


def unreachable(what: str, where: str, exc: Exception) -> StorageError:
    return StorageError(f"GCS {what} of {where} failed: {type(exc).__name__}: {exc}")


def send(session: Any, method: str, url: str, *, attempts: int = 1, **kwargs: Any) -> requests.Response:
    """One request (``attempts`` tries when it is idempotent); a connection failure raises
    ``requests.RequestException`` once the tries are spent, an HTTP answer is returned."""
    for attempt in range(1, attempts + 1):
        try:
            response: requests.Response = session.request(method, url, timeout=TIMEOUT, **kwargs)
        except requests.RequestException:
            if attempt == attempts:
                raise
        else:
            if response.status_code not in RETRIED or attempt == attempts:
                return response
            response.close()
        time.sleep(BACKOFF * 2 ** (attempt - 1))
    raise AssertionError("unreachable")  # the loop returns or raises
