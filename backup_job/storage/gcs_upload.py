"""One GCS resumable upload: chunks in order through the part pool, the last one finalizing.

A resumable session takes its bytes in order, one request at a time, each chunk but the last a
multiple of 256 KiB (the pipeline's parts are whole MiBs, doubled as they grow): so the part
pool runs with one slot (``parts``), and the object's size is given only with the last chunk.
The pipeline says which part is the last only at ``complete``, so each part is held back until
the next one arrives and the held one is sent as the final chunk then. Memory: the part held
back and the one on the wire, two parts (plus the one the pipeline is filling).

The final chunk carries the total size and ``x-goog-hash: crc32c=...`` of the whole object (a
running CRC32C of the parts as they came, ``crc32c.Running``): GCS refuses to finalize an object
whose bytes differ. fake-gcs-server does not check that header (it checks only a CRC32C given
when the session starts, which a stream cannot know), so the CRC32C of the finished object,
which GCS and the emulator both return, is also compared with ours: an object that differs, or
whose size does, is deleted by its generation (it is ours: it answered our own final chunk) and
the upload fails.

The session was created with ``ifGenerationMatch=0``: a final chunk refused with 412 (the name
was taken meanwhile), a final chunk whose answer was lost (a reset, a 5xx) and one whose session
is gone (404: a retried chunk that had finalized it) are settled by reading the object: our
``pgbackup-run-id`` metadata and our size mean it is ours, anything else is another run's and
is never touched.

A chunk before the last whose answer is lost is not resumed: asking a session how much it holds
(``Content-Range: bytes */*``) would finalize it on fake-gcs-server, the store the tests stand
on, so the upload fails there and the run's next attempt starts anew. Abort cancels the session
(a DELETE of its URI); a session left by a killed run is no object and expires after a week.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import requests

from ..core import stopping
from ..core.errors import AccessDeniedError, BackupExistsError, StorageError
from . import crc32c
from .gcs_http import denied, failed, message, send, unreachable
from .parts import PooledUpload
from .settle import unconfirmed, written_by_another_run

if TYPE_CHECKING:  # the storage creates its uploads; an upload only calls back into it
    from .gcs import GcsStorage

CHUNK = 256 * 1024  # every chunk of a resumable upload but the last is a multiple of this
Resource = dict[str, Any] | None  # the object resource the final chunk yields; None for the others


class GcsUpload(PooledUpload[Resource]):
    """One resumable session, its chunks sent one at a time in order (``parts``, one slot)."""

    def __init__(self, storage: GcsStorage, key: str, session: str, metadata: dict[str, str]) -> None:
        super().__init__(key, storage.describe(key), 1, "gcs-chunk")
        self.storage = storage
        self.session = session  # the session URI: the session's only name, and its credential
        self.metadata = metadata
        self._whole = crc32c.Running()  # of every part handed over, in order
        self._held: tuple[int, bytes] | None = None  # the latest part: the last one, if complete comes next
        self._final: int | None = None  # the number of the part that finalizes the object
        self._offset = 0  # bytes the session holds (the worker's)

    def send_part(self, number: int, data: bytes) -> None:
        self.sent += len(data)
        self._whole.add(data)
        held, self._held = self._held, (number, data)
        if held is not None:
            self.pool.submit(*held)

    def complete(self) -> None:
        number, data = self._held or (1, b"")  # no part at all: an empty object
        self._held = None
        self._final = number
        self.pool.submit(number, data)
        super().complete()

    def send_block(self, number: int, data: bytes) -> Resource:
        if number == self._final:
            return self._finish(data)
        self._chunk(number, data)
        return None

    def _chunk(self, number: int, data: bytes) -> None:
        if len(data) % CHUNK:
            raise StorageError(f"part {number} of {self.where} is {len(data)} bytes, not a multiple of 256 KiB")
        stopping.refuse_writes(f"GCS chunk {number} of {self.where}")
        end = self._offset + len(data) - 1
        response = self.storage.request(
            f"chunk {number}",
            self.key,
            "PUT",
            self.session,
            data=data,
            headers={"Content-Range": f"bytes {self._offset}-{end}/*"},
        )
        if response.status_code in (401, 403):
            raise denied("write", self.where, response)
        if response.status_code != 308:
            raise failed(f"chunk {number}", self.where, response)
        kept = response.headers.get("Range", "")
        if kept != f"bytes=0-{end}":
            raise StorageError(f"GCS kept {kept or 'nothing'} of {self.where} after chunk {number}, not bytes=0-{end}")
        self._offset = end + 1

    def _finish(self, data: bytes) -> Resource:
        """Send the final chunk with the size and CRC32C of the whole object; the object resource."""
        stopping.refuse_writes(f"GCS final chunk of {self.where}")
        span = f"{self._offset}-{self._offset + len(data) - 1}" if data else "*"
        headers = {"Content-Range": f"bytes {span}/{self.sent}", "x-goog-hash": f"crc32c={self._whole.encoded()}"}
        try:
            response = send(self.storage.session, "PUT", self.session, data=data, headers=headers)
        except requests.RequestException as exc:
            return self._settle(unreachable("final chunk", self.where, exc))
        status = response.status_code
        if status in (200, 201):
            found: dict[str, Any] = response.json()
            return found
        if status == 412:
            return self._settle(BackupExistsError(f"{self.where} exists already; pgbackup never overwrites a backup"))
        if status == 404 or status >= 500:
            return self._settle(failed("final chunk", self.where, response))
        if status in (401, 403):
            raise denied("write", self.where, response)
        raise StorageError(f"GCS refused to finalize {self.where}: {message(response)}")

    def _settle(self, failure: StorageError) -> Resource:
        """The object under our key if this upload made it (our metadata, our size); else raise:
        ``UnconfirmedError`` when it cannot be read, the failure when there is no object, a
        conflict when it is another run's."""
        try:
            found = self.storage.resource(self.key)
        except AccessDeniedError as exc:
            raise unconfirmed(self.where, f"finalized (GCS answered '{failure}')") from exc
        if found is None:
            raise failure
        if int(found.get("size", -1)) != self.sent or found.get("metadata") != self.metadata:
            raise written_by_another_run(self.where) from failure
        return found

    def commit(self, results: list[Resource]) -> None:
        stored = results[-1]
        assert stored is not None, "the final chunk yields the object"
        ours, got = self._whole.encoded(), stored.get("crc32c")
        if int(stored.get("size", -1)) == self.sent and got in (None, ours):
            return
        self.storage.discard(self.key, str(stored["generation"]))  # ours, and not what we sent
        raise StorageError(
            f"{self.where} was altered on its way: GCS holds {stored.get('size')} bytes with CRC32C {got}, "
            f"pgbackup sent {self.sent} with CRC32C {ours}"
        )

    def drop(self) -> None:
        """Cancel the session (GCS answers 499); whatever happens, it expires within a week."""
        try:
            send(self.storage.session, "DELETE", self.session).close()
        except requests.RequestException:
            pass
