"""Deletes blobs the catalog says no image row has used for its grace period, with their variants, and
now and then walks storage for blobs nobody knows (a worker that died between storing its images and
answering for them leaves such), which the catalog then notes as unused: storage and catalog end up
agreeing."""

from __future__ import annotations

import asyncio
import logging
import time

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
        keys = await self.catalog.claim_unused_blobs(BATCH)
        if not keys:
            return 0
        try:
            # An image's variants go with it (deleting one never made is harmless).
            await self.storage.delete([*keys, *(variant for key in keys for variant in variant_keys(key))])
        except DomainError:
            # Claimed but not deleted: back on the list, to be tried after another grace period.
            await self.catalog.report_unused_blobs(keys)
            raise
        log.info("unused blobs deleted", extra={"fields": {"count": len(keys)}})
        return len(keys)
