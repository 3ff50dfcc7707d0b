"""How far running jobs got, from the providers to the catalog: the latest report of each job is sent a
few times a second, all of a worker's jobs in one call, previews shrunk to a few KB first."""

from __future__ import annotations

import asyncio
import io
import logging

from imagegen.catalog.v1 import catalog_pb2
from PIL import Image, UnidentifiedImageError

from services.common.errors import DomainError

from .clients import CatalogClient
from .providers import Progress

log = logging.getLogger("imagegen.generator.progress")

# A preview's longest side and JPEG quality: a few KB, enough to see the picture take shape.
PREVIEW_SIDE = 192
PREVIEW_QUALITY = 70


def shrink_preview(data: bytes) -> bytes | None:
    """The image as a small JPEG; None when the server's bytes are no image Pillow reads."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.draft("RGB", (PREVIEW_SIDE, PREVIEW_SIDE))
            small = image.convert("RGB")
            small.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
            out = io.BytesIO()
            small.save(out, "JPEG", quality=PREVIEW_QUALITY)
            return out.getvalue()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None


class ProgressReporter:
    def __init__(self, catalog: CatalogClient, worker_id: str, interval_seconds: float):
        self.catalog = catalog
        self.worker_id = worker_id
        self.interval = interval_seconds
        self._jobs: dict[str, Progress] = {}
        self._task: asyncio.Task | None = None

    def track(self, generation_id: str) -> Progress:
        progress = self._jobs[generation_id] = Progress()
        return progress

    def forget(self, generation_id: str) -> None:
        self._jobs.pop(generation_id, None)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="progress-loop")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            reports = [await self._report(gid, p) for gid, p in list(self._jobs.items()) if p.changed]
            if not reports:
                continue
            try:
                await self.catalog.report_progress(self.worker_id, reports)
            except DomainError as exc:
                log.info("progress not recorded", extra={"fields": {"error": exc.message}})

    async def _report(self, generation_id: str, progress: Progress) -> catalog_pb2.JobProgress:
        progress.changed = False
        report = catalog_pb2.JobProgress(
            generation_id=generation_id, progress=progress.fraction, step=progress.step, steps=progress.steps
        )
        if progress.preview is not None:
            raw, progress.preview = progress.preview, None
            preview = await asyncio.to_thread(shrink_preview, raw)
            if preview is not None:
                report.preview, report.preview_content_type = preview, "image/jpeg"
        return report
