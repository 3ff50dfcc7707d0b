"""Deletes blobs the catalog says no image row has used for its grace period, with their variants, and
now and then walks storage for blobs nobody knows (a worker that died between storing its images and
answering for them leaves such), which the catalog then notes as unused: storage and catalog end up
agreeing."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from google.protobuf import timestamp_pb2

from services.common.errors import Aborted, DomainError
from services.common.vocabulary import original_key, variant_keys

from .background import BackgroundLoop
from .clients import CatalogClient, StorageClient

log = logging.getLogger("imagegen.sweeper")
BATCH = 500
# First pause between asking whether a sweep still holds a blob; it doubles up to 2 s.
SWEEP_POLL_SECONDS = 0.1
Recorded = TypeVar("Recorded")


class BlobSweeper(BackgroundLoop):
    name = "blob-sweeper"

    def __init__(
        self,
        catalog: CatalogClient,
        storage: StorageClient,
        interval_seconds: float,
        reconcile_seconds: float = 3600.0,
        orphan_age_seconds: float = 600.0,
    ):
        super().__init__()
        self.catalog = catalog
        self.storage = storage
        self.interval = interval_seconds
        self.reconcile_seconds = reconcile_seconds
        # Younger blobs may belong to a job about to answer for them.
        self.orphan_age = orphan_age_seconds
        self._next_reconcile = time.monotonic() + reconcile_seconds
        # Sweeps done in storage whose end the catalog has not taken yet: (deleted, kept).
        self._unended: list[tuple[dict[str, timestamp_pb2.Timestamp], list[str]]] = []

    async def _loop(self) -> None:
        while True:
            try:
                if time.monotonic() >= self._next_reconcile:
                    self._next_reconcile = time.monotonic() + self.reconcile_seconds
                    await self.reconcile()
                while await self.sweep() == BATCH:
                    pass
            except DomainError as exc:
                log.warning("blob sweep failed", extra={"fields": {"error": exc.message}})
            await asyncio.sleep(self.interval)

    async def reconcile(self) -> int:
        """Walks storage; blobs older than the orphan age that nothing knows become unused. Answers
        how many were found."""
        found, start_after = 0, ""
        while True:
            page = await self.storage.list(start_after, BATCH)
            cutoff = time.time() - self.orphan_age
            # A variant belongs to its original: it is an orphan when the original is one.
            old = sorted(
                {original_key(o.key) for o in page.objects if o.written_at.ToNanoseconds() / 1e9 < cutoff}
            )
            if old:
                found += len(await self.catalog.adopt_orphan_blobs(old))
            if not page.next_start_after:
                break
            start_after = page.next_start_after
        if found:
            log.info("orphan blobs found", extra={"fields": {"count": found}})
        return found

    async def sweep(self) -> int:
        """Deletes one batch; answers how many blobs it took. Until it reports back, the catalog holds
        off anything recording their keys (see `record_around_sweeps`)."""
        await self._end_sweeps()
        claimed = await self.catalog.claim_unused_blobs(BATCH)
        if not claimed.unused_since:
            return 0
        since = dict(claimed.unused_since)
        try:
            # Bytes stored again since their blob became unused are a job's about to record them (keys
            # are content hashes): storage keeps those.
            kept = await self.storage.delete([], unless_written_since=since)
        except DomainError:
            # Claimed but not deleted: back on the list, to be tried after another grace period.
            self._unended.append(({}, list(since)))
            await self._end_sweeps()
            raise
        gone = [key for key in since if key not in kept]
        # Kept ones start another grace period (an erasure's: the next pass) in case the job that stored
        # them never records them.
        self._unended.append(({key: since[key] for key in gone}, kept))
        try:
            # An image's variants go with it (deleting one never made is harmless; ones a failure here
            # leaves, the reconcile walk finds).
            await self.storage.delete([variant for key in gone for variant in variant_keys(key)])
        finally:
            await self._end_sweeps()
        log.info("unused blobs deleted", extra={"fields": {"count": len(gone), "kept": len(kept)}})
        return len(since)

    async def _end_sweeps(self) -> None:
        """Reports the sweeps this sweeper has not reported yet, oldest first. One the catalog could not
        take (its database away) is tried again at the next pass; until then writers of its keys wait,
        so it is not dropped for the claim to run out."""
        while self._unended:
            deleted, kept = self._unended[0]
            await self.catalog.end_blob_sweep(deleted, kept)
            self._unended.pop(0)


async def record_around_sweeps(
    catalog: CatalogClient,
    keys: list[str],
    record: Callable[[bool], Awaitable[Recorded]],
    store_again: Callable[[], Awaitable[object]],
) -> Recorded:
    """`record(stored_again)` names stored keys. The catalog refuses it (ABORTED) while a sweep that
    claimed one of them may be deleting its bytes, or when one deleted them since they were stored:
    then this waits until no sweep holds them, stores the bytes again (a put before the sweep's delete
    could be deleted by it) and records again, saying so."""
    delay, again = SWEEP_POLL_SECONDS, False
    while True:
        try:
            return await record(again)
        except Aborted as refused:
            log.info("recording waits for a blob sweep", extra={"fields": {"why": refused.message}})
        while await catalog.blobs_being_swept(keys):
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
        await store_again()
        again = True
