"""Coalesces many small calls into few batched ones, without a timer.

Whatever is submitted while a batch is in flight goes out together as the next batch. An idle worker
therefore answers at once, and a busy one pays one round trip (and one database transaction, or one
round of fsyncs) for many.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class Batcher(Generic[Item, Result]):
    def __init__(
        self,
        send: Callable[[list[Item]], Awaitable[list[Result | Exception]]],
        name: str,
        max_items: int = 64,
        max_weight: int | None = None,
        weigh: Callable[[Item], int] = lambda item: 0,
    ):
        """`send` answers one result or exception per item, in order; if it raises, every item does.
        A batch holds at most `max_items`, and at most `max_weight` in all unless one item alone is heavier.
        """
        self._send = send
        self._name = name
        self._max_items = max_items
        self._max_weight = max_weight
        self._weigh = weigh
        self._pending: deque[tuple[Item, asyncio.Future]] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def submit(self, item: Item) -> Result:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self._name)
        future = asyncio.get_running_loop().create_future()
        # Marks the outcome as seen even when its caller stopped waiting, so asyncio does not warn.
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._pending.append((item, future))
        self._wake.set()
        # Shielded: a caller that stops waiting does not pull its item out of a batch being sent.
        return await asyncio.shield(future)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while self._pending:
            self._pending.popleft()[1].cancel()

    def _next_batch(self) -> list[tuple[Item, asyncio.Future]]:
        batch = [self._pending.popleft()]
        weight = self._weigh(batch[0][0])
        while self._pending and len(batch) < self._max_items:
            extra = self._weigh(self._pending[0][0])
            if self._max_weight is not None and weight + extra > self._max_weight:
                break
            batch.append(self._pending.popleft())
            weight += extra
        return batch

    async def _run(self) -> None:
        while True:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = self._next_batch()
            try:
                results = await self._send([item for item, _ in batch])
            except asyncio.CancelledError:
                for _, future in batch:
                    future.cancel()
                raise
            except Exception as exc:
                results = [exc] * len(batch)
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)
