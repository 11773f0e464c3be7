"""One block blob being written: blocks through the shared part pool, then one committed list.

The waiting (bounded parts in flight, the first error kept, cancel, a bounded abort) is the
part pool's (``parts``); this module says how a part is sent (Put Block), how the blob is
committed (Put Block List) and dropped (nothing to send: see below).

Block ids. Every id of one blob, committed or not, must have the same length (the service
refuses a block whose id differs in length: 400 InvalidBlobOrBlock), and a retried pod
writes the same key as the run that was killed before it, whose uncommitted blocks are still
there. So an id is always ``<16 hex digits of this upload's nonce>-<part number, 5 digits>``
(base64-encoded by the SDK): the same length for every run of every version, and this
upload's own, so a commit names exactly the blocks this upload sent, never a killed run's
block of the same number. Put Block List commits those and the service drops every other
uncommitted block of the blob.

Each block carries ``Content-MD5`` (the service refuses a block that differs: 400
Md5Mismatch); an MD5 the service returns for the block is compared too (Azure's blob service
returns it, Azurite does not). The commit carries ``If-None-Match: *``, the run's metadata,
the content type, and the MD5 of all the bytes in order as the blob's stored ``Content-MD5``.

A commit that failed ambiguously (a conflict: the SDK's retry of a commit the service had
applied; no answer; a 5xx after the last attempt) is settled by the blob's properties: our
metadata and our size mean it is ours (``_settle``); no blob means the failure stands;
anything else is another writer's blob, left alone. A commit already sent when a stop comes
is not waited for (``core.stopping.abandonable``): it lands or not, and no manifest follows.

``drop`` sends nothing: uncommitted blocks cannot be deleted without a blob to delete, are
invisible to listings, and the service drops them 7 days after they were written.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import TYPE_CHECKING

from azure.core import MatchConditions
from azure.core.exceptions import AzureError
from azure.storage.blob import BlobBlock, ContentSettings

from ..core import stopping
from ..core.errors import AccessDeniedError, StorageError
from .azure_checks import MAX_BLOCKS, ambiguous, check_md5, content_md5
from .parts import PooledUpload
from .settle import unconfirmed, written_by_another_run

if TYPE_CHECKING:  # the storage creates its uploads; an upload only calls back into it
    from .azure import AzureStorage


def block_id(nonce: str, number: int) -> str:
    """The id of part ``number`` of the upload ``nonce``: one length for every block of every run."""
    return f"{nonce}-{number:05d}"


class AzureUpload(PooledUpload[str]):
    """One block blob; its blocks go through the shared part pool (``parts``)."""

    def __init__(self, storage: AzureStorage, key: str, content_type: str, metadata: dict[str, str]) -> None:
        super().__init__(key, storage.describe(key), storage.concurrency, "azure-block")
        self.storage = storage
        self.content_type = content_type
        self.metadata = metadata  # names as stored (``azure.metadata_name``)
        self.nonce = uuid.uuid4().hex[:16]
        self._whole: hashlib._Hash | None = hashlib.md5(usedforsecurity=False)  # of the parts so far, in order
        self._next = 1

    def send_part(self, number: int, data: bytes) -> None:
        if number > MAX_BLOCKS:
            raise StorageError(f"{self.where} would need more than {MAX_BLOCKS} blocks")
        super().send_part(number, data)

    def accept(self, number: int, data: bytes) -> None:
        if self._whole is not None:
            if number == self._next:
                self._whole.update(data)
            else:  # not in order: no whole-blob MD5 is stored
                self._whole = None
            self._next = number + 1

    def send_block(self, number: int, data: bytes) -> str:
        identifier = block_id(self.nonce, number)
        md5 = content_md5(data)
        response = self.storage.call(
            "Put Block",
            self.key,
            lambda: self.storage.blob(self.key).stage_block(
                identifier, data, length=len(data), transactional_content_md5=md5
            ),
        )
        check_md5(f"block {number}", self.where, response.get("content_md5"), md5)
        return identifier

    def commit(self, results: list[str]) -> None:
        whole = bytearray(self._whole.digest()) if self._whole is not None else None
        settings = ContentSettings(content_type=self.content_type, content_md5=whole)
        blob = self.storage.blob(self.key)
        try:
            with stopping.abandonable():  # a stalled commit cannot be interrupted; a stop walks away from it
                blob.commit_block_list(
                    [BlobBlock(identifier) for identifier in results],
                    content_settings=settings,
                    metadata=self.metadata,
                    match_condition=MatchConditions.IfMissing,  # If-None-Match: *
                )
        except AzureError as exc:
            failure = self.storage.error("Put Block List", self.key, exc)
            if not ambiguous(exc, failure):
                raise failure from exc
            self._settle(failure)

    def _settle(self, failure: StorageError) -> None:
        """Return if the blob under our key is the one this upload made (our metadata, our size);
        else raise: the failure when there is no blob or it cannot be read, the conflict when
        it is another writer's."""
        try:
            found = self.storage.properties(self.key)
        except AccessDeniedError as exc:
            raise unconfirmed(self.where, f"committed (the service answered '{failure}')") from exc
        if found is None:
            raise failure
        metadata = {name.lower(): value for name, value in (found.metadata or {}).items()}
        if int(found.size) != self.sent or any(metadata.get(name) != value for name, value in self.metadata.items()):
            raise written_by_another_run(self.where) from failure

    def drop(self) -> None:
        """Nothing to send: uncommitted blocks are invisible and expire after 7 days."""
