"""Deletes blobs the catalog says no image row has used for its grace period, with their variants, and
now and then walks storage for blobs nobody knows (a worker that died between storing its images and
answering for them leaves such), which the catalog then notes as unused: storage and catalog end up
agreeing."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

from services.common.errors import DomainError
from services.common.vocabulary import original_key, variant_keys

from .background import BackgroundLoop
from .clients import CatalogClient, StorageClient

log = logging.getLogger("imagegen.sweeper")
BATCH = 500


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
        """Deletes one batch; answers how many blobs it took."""
        claimed = await self.catalog.claim_unused_blobs(BATCH)
        if not claimed.unused_since:
            return 0
        try:
            # Bytes stored again since their blob became unused are a job's about to record them (keys
            # are content hashes): storage keeps those.
            kept = await self.storage.delete([], unless_written_since=dict(claimed.unused_since))
            # An image's variants go with it when it goes (deleting one never made is harmless).
            gone = [key for key in claimed.unused_since if key not in kept]
            await self.storage.delete([variant for key in gone for variant in variant_keys(key)])
        except DomainError:
            # Claimed but not deleted: back on the list, to be tried after another grace period.
            await self._report_again(list(claimed.unused_since), claimed.at_once)
            raise
        # Noted again: swept after another grace period (an erasure's at the next pass) if the job that
        # stored them never records them.
        await self._report_again(kept, claimed.at_once)
        log.info("unused blobs deleted", extra={"fields": {"count": len(gone), "kept": len(kept)}})
        return len(claimed.unused_since)

    async def _report_again(self, keys: list[str], at_once: Iterable[str]) -> None:
        erased = set(at_once).intersection(keys)
        if erased:
            await self.catalog.report_unused_blobs(sorted(erased), at_once=True)
        if rest := [key for key in keys if key not in erased]:
            await self.catalog.report_unused_blobs(rest)
