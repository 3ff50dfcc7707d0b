"""Deletes blobs the catalog says no image row has used for its grace period."""

from __future__ import annotations

import asyncio
import logging

from services.common.errors import DomainError

from .background import BackgroundLoop
from .clients import CatalogClient, StorageClient

log = logging.getLogger("imagegen.sweeper")
BATCH = 500


class BlobSweeper(BackgroundLoop):
    name = "blob-sweeper"

    def __init__(self, catalog: CatalogClient, storage: StorageClient, interval_seconds: float):
        super().__init__()
        self.catalog = catalog
        self.storage = storage
        self.interval = interval_seconds

    async def _loop(self) -> None:
        while True:
            try:
                while await self.sweep() == BATCH:
                    pass
            except DomainError as exc:
                log.warning("blob sweep failed", extra={"fields": {"error": exc.message}})
            await asyncio.sleep(self.interval)

    async def sweep(self) -> int:
        """Deletes one batch; answers how many blobs it took."""
        keys = await self.catalog.claim_unused_blobs(BATCH)
        if not keys:
            return 0
        try:
            await self.storage.delete(keys)
        except DomainError:
            # Claimed but not deleted: back on the list, to be tried after another grace period.
            await self.catalog.report_unused_blobs(keys)
            raise
        log.info("unused blobs deleted", extra={"fields": {"count": len(keys)}})
        return len(keys)
