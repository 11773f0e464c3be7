"""One run's backups: each source (a database, or the globals) becomes a dump object, then its manifest.

``BackupRun.store`` streams a source through ``pipeline.stream`` (pg_dump -> compressor ->
parts -> storage; start there to follow a byte) and writes the manifest only after the
object is complete::

    Storage.put(manifest)  the proof that the object is a complete backup

Several sources may stream at once (``commands.parallel``), sharing the run's CPUs
(``cpushare``); ``BackupRun.stop`` ends them all. After a stop request (``core.stopping``) no
backup starts, no manifest is written, and a manifest PUT already on its way when the stop
came is not waited for and not reported as finished: the run's stopped line names it. Every
object carries the run's id (dump: object metadata; manifest: ``run_id``) and the attempt's,
so a write whose answer was lost is recognised as ours when the retry meets it, and nothing
is ever deleted because of a conflict: an object a manifest may point at stays.

Why an attempt nonce beside the run id: the run id is random unless ``BACKUP_RUN_ID`` gives
it, and then every attempt of the run shares it (the pods of a Kubernetes Job retried after a
failure, or an old pod still running beside its replacement). The storage recognises its own
lost write by what it finds under the key: a dump by its metadata and size
(``storage.s3_multipart``), a manifest by its exact bytes (``storage.s3``). With the run id
alone, an earlier attempt's dump of the same size would pass for this attempt's completion,
and this attempt would then write a manifest vouching for bytes it never sent. Each process
draws its own ``attempt`` (``RunFacts``), which goes into the dump's metadata and the
manifest, so only the very process that made an object can take it for its own write.

With ``BACKUP_FORMAT=split`` a database's source carries a ``SplitPlan``: ``pipeline.split``
then stores it as many objects, each through ``_stream`` like a plain dump, and the manifest
lists them all.

A retried attempt meets the earlier one's objects at the start instead (``_stored_earlier``):
a complete backup of this run (same run id and timestamp, its dump there with the recorded
size) counts as done and nothing is written; a dump without a manifest cannot be completed
without overwriting, so that database fails; another run's objects are the usual conflict.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from ..core import logs, signals, stopping
from ..core.errors import BackupExistsError, NotFoundError, StorageError, UnconfirmedError
from ..core.layout import backup_keys, display_name, split_directory
from ..core.manifest import SPLIT_FORMAT_VERSION, Manifest, RunFacts, shrink_alarm
from ..core.settings import DATABASE_TIMEOUT, Compression, DumpSettings, EncryptionSettings, RunSettings, UploadSettings
from ..core.signing import SigningKey
from ..pg.copycount import CopyRowCounter
from ..pg.dump import PgDump
from ..pg.target import backup_server
from ..storage.base import Storage, Upload
from .catalog import MANIFEST_LIMIT
from .compress import CONTENT_TYPES, open_compressor
from .cpushare import CpuShare
from .progress import ProgressReporter
from .seal import seal_bytes
from .split import SplitDump, SplitPlan, SplitResult
from .stream import Progress, StreamStats, stream_backup

log = logs.get("run")
RUN_ID_METADATA = "pgbackup-run-id"  # on every dump object: which run wrote it
ATTEMPT_METADATA = "pgbackup-attempt"  # and which process of that run


@dataclass
class Source:
    """What one backup object is made from, and what its manifest says about it."""

    database: str  # layout.GLOBALS for the roles and tablespaces
    make_dump: Callable[[], PgDump]  # a new process per attempt
    properties: dict[str, Any] | None = None
    previous: Manifest | None = None  # the last complete backup, for the shrink alarm
    role_passwords: bool | None = None
    count_rows: bool = True
    owners: list[str] | None = None  # the roles owning objects in the database (None: unknown)
    split: SplitPlan | None = None  # store it as a split backup (``pipeline.split``)


@dataclass
class Stored:
    """One complete backup: its dump key and what the stream measured."""

    key: str
    stats: StreamStats
    shrunk: str = ""  # the shrink alarm's warning, when it went off
    earlier: bool = False  # stored by an earlier attempt of this run, nothing written now


def rate(count: int, seconds: float) -> str:
    return f"{logs.human_bytes(count / seconds if seconds > 0 else 0)}/s"


class BackupRun:
    """The writer of one run's backups: each source becomes a dump object, then its manifest."""

    def __init__(
        self,
        prefix: str,
        storage: Storage,
        facts: RunFacts,
        *,
        dump: DumpSettings,
        compression: Compression,
        encryption: EncryptionSettings,
        run: RunSettings,
        upload: UploadSettings,
        cpus: CpuShare | None = None,
        listed: frozenset[str] | None = None,
        signer: SigningKey | None = None,
    ) -> None:
        self.prefix = prefix  # the destination's prefix
        self.dump = dump
        self.compression = compression
        self.encryption = encryption
        self.run_settings = run
        self.upload = upload
        self.storage = storage
        self.facts = facts
        self.signer = signer  # signs every manifest (core.signing); None: unsigned
        # The keys a listing at the start of the run found: what is there already is known
        # without a HEAD per object (None: not listed, so ask). Both only catch a clash early;
        # the conditional writes settle a run that writes the same key meanwhile.
        self.listed = listed
        self.cpus = cpus or CpuShare(1, compression.threads)
        self._active: dict[int, tuple[PgDump, Upload]] = {}  # the streams running, to stop them all
        self._stopped: StorageError | None = None
        self._finishing: set[str] = set()  # the databases whose manifest is on its way
        self._lock = threading.Lock()

    def stop(self) -> None:
        """Stop every stream of this run now (from the main thread, on SIGTERM or SIGINT): kill
        each pg_dump and cancel each upload; each stream then aborts on its own thread."""
        with self._lock:
            self._stopped = StorageError("stopped: the run was interrupted")
            for dump, upload in self._active.values():
                dump.kill()
                upload.cancel(self._stopped)

    def finishing(self) -> set[str]:
        """The databases whose manifest PUT was sent and not known to have failed."""
        with self._lock:
            return set(self._finishing)

    def keys(self, database: str) -> tuple[str, str]:
        keys = backup_keys(
            self.prefix,
            database,
            self.facts.run_timestamp,
            self.compression.format,
            encrypted=bool(self.encryption.encrypt_to),
        )
        return keys.dump, keys.manifest

    def target_key(self, source: Source) -> str:
        """Where ``source`` goes: its dump object's key, or a split backup's directory."""
        if source.split is not None:
            return split_directory(self.prefix, source.database, self.facts.run_timestamp)
        return self.keys(source.database)[0]

    def store(self, source: Source) -> Stored:
        """Stream ``source`` to its object, then write its manifest; raises on any failure."""
        name = display_name(source.database)
        manifest_key = self.keys(source.database)[1]
        dump_key = self.target_key(source)
        where = self.storage.describe(dump_key)
        fields = {"database": source.database, "key": dump_key}
        stopping.refuse_writes(f"the backup of {name!r}")
        with stopping.abandonable():  # reads only: a stop need not wait for them
            if self._exists(dump_key) or self._exists(manifest_key) or self._members_exist(dump_key, source):
                earlier = self._stored_earlier(name, dump_key, manifest_key)
                if earlier is not None:
                    return earlier
                raise BackupExistsError(f"{where} exists already; pgbackup never overwrites a backup")
        stopping.refuse_writes(f"the backup of {name!r}")
        log.info("backup of %r started -> %s", name, where, extra=logs.fields(event="backup.started", **fields))
        started_at = datetime.now(UTC)
        counter = CopyRowCounter()

        moved = [-1, 0.0]  # raw bytes at the last report that saw them change, and when

        def progress(stats: StreamStats) -> None:
            if stats.raw_bytes != moved[0]:
                moved[:] = [stats.raw_bytes, stats.seconds]
                log.info(
                    "backup of %r in progress: %s read, %s written, %s",
                    name,
                    logs.human_bytes(stats.raw_bytes),
                    logs.human_bytes(stats.compressed_bytes),
                    rate(stats.raw_bytes, stats.seconds),
                    extra=logs.fields(
                        event="backup.progress",
                        raw_bytes=stats.raw_bytes,
                        compressed_bytes=stats.compressed_bytes,
                        **fields,
                    ),
                )
                return
            log.warning(
                "backup of %r stalled: no byte has moved for %.0f s, waiting on %s (%s read, %s written)",
                name,
                stats.seconds - moved[1],
                stats.waiting_on,
                logs.human_bytes(stats.raw_bytes),
                logs.human_bytes(stats.compressed_bytes),
                extra=logs.fields(
                    event="backup.stalled",
                    waiting_on=stats.waiting_on,
                    seconds=round(stats.seconds - moved[1]),
                    **fields,
                ),
            )

        split: SplitResult | None = None
        if source.split is not None:
            stats, split = self._split(source, progress)
        else:
            with self.cpus.stream():
                stats = self._stream(source.make_dump, dump_key, progress, counter.feed if source.count_rows else None)
        shrink = shrink_alarm(
            self.run_settings.shrink_alarm,
            source.previous,
            stats.compressed_bytes,
            stats.raw_bytes,
            self.compression.format,
        )
        manifest = self._manifest(source, dump_key, stats, started_at, counter, shrink, split)
        # No clean-up if this fails: the manifest may have been written although the answer
        # was lost, and then the dump is a complete backup. A dump left without its manifest
        # is an incomplete leftover that retention removes after a day.
        stopping.refuse_writes(f"the manifest of {name!r}")
        with self._lock:
            self._finishing.add(source.database)
        try:
            with stopping.abandonable():  # a stalled PUT cannot be interrupted; a stop walks away from it
                self.storage.put(manifest_key, manifest.to_json(), "application/json")
        except UnconfirmedError as exc:
            raise UnconfirmedError(
                f"the backup is probably complete but unconfirmed: {exc.message}", hint=exc.hint
            ) from exc
        except BaseException:
            with self._lock:
                self._finishing.discard(source.database)
            raise
        if stopping.requested():  # it landed as the stop came: the stopped line speaks for it, nothing else
            raise StorageError(f"the manifest of {name!r} landed as the run was stopped by {stopping.requested()}")
        if split is not None:
            counter.counts = split.row_counts
        shrunk = self._finished(name, source, stats, counter, fields, manifest_key, where, shrink, split)
        return Stored(dump_key, stats, shrunk)

    def _members_exist(self, directory: str, source: Source) -> bool:
        """Whether the listing at the start found objects of this split backup already."""
        if source.split is None or self.listed is None:
            return False
        head = directory + "/"
        return any(key.startswith(head) for key in self.listed)

    def _split(self, source: Source, progress: Progress) -> tuple[StreamStats, SplitResult]:
        """Store ``source`` as a split backup; its objects' totals, and what the manifest lists."""
        assert source.split is not None
        started = time.monotonic()
        running: dict[int, StreamStats] = {}
        done = StreamStats()
        engine: list[dict[str, Any] | None] = [None]

        def stream(key: str, make: Callable[[], Any], observe: Callable[[bytes], None] | None) -> StreamStats:
            def seen(stats: StreamStats) -> None:
                running[id(stats)] = stats

            with self.cpus.stream():
                stats = self._stream(make, key, seen, observe, quiet=True)
            running.pop(id(stats), None)
            done.raw_bytes += stats.raw_bytes
            done.compressed_bytes += stats.compressed_bytes
            engine[0] = stats.engine
            return stats

        def report(seconds: float) -> None:
            live = list(running.values())
            progress(
                StreamStats(
                    raw_bytes=done.raw_bytes + sum(s.raw_bytes for s in live),
                    compressed_bytes=done.compressed_bytes + sum(s.compressed_bytes for s in live),
                    seconds=seconds,
                    waiting_on="the database or storage",
                )
            )

        dump = SplitDump(
            source.split,
            backup_server(),
            source.database,
            self.prefix,
            self.facts.run_timestamp,
            self.compression.format,
            bool(self.encryption.encrypt_to),
            stream,
        )
        try:
            with ProgressReporter(report, self.dump.progress_interval):
                result = dump.run()
        except BaseException:
            self._remove_stored(source.database, [o["key"] for o in dump.result.objects])
            raise
        return result.stats(time.monotonic() - started, engine[0]), result

    def _remove_stored(self, database: str, keys: list[str]) -> None:
        """The objects a failed split backup stored before it failed: this attempt's own writes,
        confirmed, and no manifest points at them (it was never written), so they go, and a
        retry of the run (a Job's next pod, same run id and timestamp) can store the backup.
        After a stop nothing is written or deleted: they stay, an incomplete leftover that
        prune removes after a day. A delete that fails leaves the same."""
        if not keys or stopping.requested():
            return
        removed = 0
        for key in keys:
            try:
                self.storage.delete(key)
                removed += 1
            except StorageError as exc:
                log.warning(
                    "could not remove %s of the failed backup of %r (%s); prune removes it after a day",
                    self.storage.describe(key),
                    display_name(database),
                    exc,
                    extra=logs.fields(event="backup.leftover", database=database, key=key),
                )
        log.info(
            "removed the %d objects the failed split backup of %r had stored",
            removed,
            display_name(database),
            extra=logs.fields(event="backup.cleaned", database=database, objects=removed),
        )

    def _manifest(
        self,
        source: Source,
        dump_key: str,
        stats: StreamStats,
        started_at: datetime,
        counter: CopyRowCounter,
        shrink: dict[str, Any] | None,
        split: SplitResult | None = None,
    ) -> Manifest:
        """The manifest of a finished stream (or of a split backup's objects): the database
        properties sealed like the dump when it is sealed, and signed when the run holds a
        signing key."""
        properties, sealed = source.properties, None
        if self.encryption.encrypt_to and properties is not None:
            sealed = base64.b64encode(
                seal_bytes(json.dumps(properties, sort_keys=True).encode(), self.encryption.encrypt_to)
            ).decode("ascii")
            properties = None
        manifest = self.facts.manifest(
            source.database,
            dump_key,
            stats,
            started_at=started_at,
            finished_at=datetime.now(UTC),
            row_counts=split.row_counts if split is not None else counter.counts,
            properties=properties,
            role_passwords=source.role_passwords,
            shrink=shrink,
            engine=stats.engine,
            sealed_properties=sealed,
            owners=source.owners,
        )
        if split is not None:
            manifest = replace(
                manifest,
                format="split",
                format_version=SPLIT_FORMAT_VERSION,
                objects=split.objects,
                relations=split.relations,
                encoding=split.encoding,
                block_bytes=0,
                block_sha256="",
            )
        if self.signer is not None:
            manifest = replace(manifest, signature=self.signer.sign(manifest.values()))
        return manifest

    def _exists(self, key: str) -> bool:
        return key in self.listed if self.listed is not None else self.storage.exists(key)

    def _stored_earlier(self, name: str, dump_key: str, manifest_key: str) -> Stored | None:
        """This run's own complete backup under these keys, left by an earlier attempt (same
        run id, given by ``BACKUP_RUN_ID``, and same timestamp); None when what is there is
        another run's (the caller's conflict). Raises when it is this run's and incomplete."""
        if self.run_settings.run_id is None:
            return None
        try:
            found = Manifest.from_json(self.storage.read_all(manifest_key, MANIFEST_LIMIT))
        except NotFoundError:
            if not self._exists(dump_key):
                return None
            raise BackupExistsError(
                f"{self.storage.describe(dump_key)} exists without its manifest (an attempt stopped between its "
                "two writes, or another one is finishing it now): it cannot be completed without overwriting, "
                "and pgbackup never overwrites a backup",
                hint="`pgbackup prune` removes such incomplete leftovers once they are a day old; the next run "
                "backs the database up again",
            ) from None
        except (StorageError, ValueError):
            return None  # unreadable: not known to be ours
        if found.run_id != self.facts.run_id or found.run_timestamp != self.facts.run_timestamp:
            return None
        if found.split:
            stored = {o.key: o.size for o in self.storage.list_objects(found.key)}
            short = [o["key"] for o in found.objects if stored.get(o["key"]) != o["compressed_bytes"]]
            if short or found.key != dump_key:
                raise BackupExistsError(
                    f"{self.storage.describe(manifest_key)} of this run lists {len(short)} objects that are "
                    "missing or of another size: damaged, and pgbackup never overwrites a backup"
                )
            sizes = {found.key: found.compressed_bytes}
        else:
            sizes = {o.key: o.size for o in self.storage.list_objects(dump_key.rsplit("/", 1)[0])}
        if sizes.get(found.key) != found.compressed_bytes:
            raise BackupExistsError(
                f"{self.storage.describe(manifest_key)} of this run names {found.key}, which "
                f"{'is missing' if found.key not in sizes else f'holds {sizes[found.key]} bytes'} instead of "
                f"{found.compressed_bytes}: damaged, and pgbackup never overwrites a backup"
            )
        log.info(
            "backup of %r already stored by an earlier attempt of this run (%s) -> %s",
            name,
            logs.human_bytes(found.compressed_bytes),
            self.storage.describe(found.key),
            extra=logs.fields(
                event="backup.already_stored",
                database=found.database,
                key=found.key,
                compressed_bytes=found.compressed_bytes,
                manifest=manifest_key,
            ),
        )
        stats = StreamStats(
            raw_bytes=found.raw_bytes,
            compressed_bytes=found.compressed_bytes,
            parts=found.parts,
            sha256=found.sha256,
            engine=found.compression_engine,
        )
        return Stored(found.key, stats, earlier=True)

    def _stream(
        self,
        make_dump: Callable[[], Any],
        dump_key: str,
        progress: Progress,
        observe: Callable[[bytes], None] | None,
        quiet: bool = False,
    ) -> StreamStats:
        compression = self.compression
        dump = make_dump()
        try:
            upload = self.storage.start_upload(
                dump_key,
                CONTENT_TYPES[compression.format],
                {RUN_ID_METADATA: self.facts.run_id, ATTEMPT_METADATA: self.facts.attempt},
            )
        except BaseException:
            dump.kill()
            dump.close()
            raise
        with self._lock:
            self._active[id(dump)] = (dump, upload)
            stopped = self._stopped
        if stopped is not None:
            dump.kill()
            upload.cancel(stopped)
        deadline = self._deadline(upload)
        try:
            compressor = open_compressor(compression, self.cpus.threads, self.cpus.most)
        except BaseException:
            dump.kill()
            dump.close()
            upload.abort()
            raise
        try:
            return stream_backup(
                dump,
                compressor,
                upload,
                base_part_size=self.upload.part_size,
                limits=self.storage.limits,
                progress=progress,
                progress_interval=1.0 if quiet else self.dump.progress_interval,
                observe=observe,
                seal_to=self.encryption.encrypt_to,
            )
        finally:
            if deadline is not None:
                deadline.cancel()
            with self._lock:
                self._active.pop(id(dump), None)

    def _deadline(self, upload: Upload) -> threading.Timer | None:
        """The per-database timeout on the storage side (pg_dump's own watchdog stops the dump):
        an upload still waiting then is cancelled, whatever its requests are doing."""
        seconds = self.dump.database_timeout
        if not seconds:
            return None
        error = StorageError(
            f"the backup exceeded {DATABASE_TIMEOUT.name} ({seconds} s) while waiting on storage and was stopped",
            hint=f"check the S3 endpoint, or raise {DATABASE_TIMEOUT.name}",
        )
        timer = threading.Timer(seconds, upload.cancel, args=(error,))
        timer.daemon = True
        signals.start(timer)
        return timer

    def _finished(
        self,
        name: str,
        source: Source,
        stats: StreamStats,
        counter: CopyRowCounter,
        fields: dict[str, str],
        manifest_key: str,
        where: str,
        shrink: dict[str, Any] | None,
        split: SplitResult | None = None,
    ) -> str:
        """Log the backup's end; returns the shrink alarm's warning, or "" when it stayed quiet."""
        rows = sum(counter.counts.values())
        objects = f", {len(split.objects)} objects read over {split.jobs} connections" if split else ""
        log.info(
            "backup of %r finished: %s compressed (%s raw%s%s) in %.1f s, %s, sha256 %s -> %s",
            name,
            logs.human_bytes(stats.compressed_bytes),
            logs.human_bytes(stats.raw_bytes),
            f", {len(counter.counts)} tables, {rows} rows" if source.count_rows else "",
            objects,
            stats.seconds,
            rate(stats.raw_bytes, stats.seconds),
            stats.sha256[:12],
            where,
            extra=logs.fields(
                event="backup.finished",
                raw_bytes=stats.raw_bytes,
                compressed_bytes=stats.compressed_bytes,
                seconds=round(stats.seconds, 3),
                sha256=stats.sha256,
                manifest=manifest_key,
                tables=len(counter.counts),
                rows=rows,
                **fields,
            ),
        )
        if source.count_rows and split is None and counter.lost:
            log.warning(
                "row counts of %r are partial: the dump holds a statement too long for the counter to follow, "
                "so `pgbackup verify` checks the %d tables counted before it and not the rest",
                name,
                len(counter.counts),
                extra=logs.fields(event="backup.counts_partial", **fields),
            )
        if shrink is None:
            return ""
        raw = shrink.get("compared") == "raw_bytes"  # the compression changed since the last backup
        now, before = (
            (stats.raw_bytes, shrink["previous_raw_bytes"])
            if raw
            else (stats.compressed_bytes, shrink["previous_compressed_bytes"])
        )
        warning = (
            f"backup of {name!r} SHRANK: {logs.human_bytes(now)} {'raw' if raw else 'compressed'} is below "
            f"{round(self.run_settings.shrink_alarm * 100)}% of the previous backup ({shrink['previous_timestamp']}, "
            f"{logs.human_bytes(before)}); check that data was not lost"
        )
        log.warning("%s", warning, extra=logs.fields(event="backup.shrunk", **fields, **shrink))
        return warning
