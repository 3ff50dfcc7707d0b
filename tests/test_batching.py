"""The worker's Batcher: calls made while a batch is in flight travel together as the next one."""

from __future__ import annotations

import asyncio

import pytest

from services.common.errors import FailedPrecondition, Unavailable
from services.generator.batching import Batcher


def test_an_idle_batcher_sends_at_once_and_a_busy_one_gathers_what_waits():
    sent: list[list[int]] = []

    async def send(items):
        sent.append(items)
        await asyncio.sleep(0.05)
        return [item * 10 for item in items]

    async def scenario():
        batcher = Batcher(send, name="test", max_items=4)
        first = asyncio.create_task(batcher.submit(0))
        await asyncio.sleep(0.01)
        results = await asyncio.gather(first, *(batcher.submit(i) for i in range(1, 7)))
        await batcher.close()
        return results

    assert asyncio.run(scenario()) == [0, 10, 20, 30, 40, 50, 60]
    assert sent == [[0], [1, 2, 3, 4], [5, 6]]


def test_batches_keep_under_their_weight_and_each_caller_gets_its_own_outcome():
    sent: list[list[bytes]] = []

    async def send(items):
        sent.append(items)
        await asyncio.sleep(0.01)
        return [FailedPrecondition(f"{item!r} refused") if item == b"bad" else len(item) for item in items]

    async def scenario():
        batcher = Batcher(send, name="test", max_weight=10, weigh=len)
        blocker = asyncio.create_task(batcher.submit(b"x"))
        await asyncio.sleep(0)
        items = [b"aaaa", b"bbbb", b"bad", b"c" * 12, b"dd"]
        results = await asyncio.gather(*(batcher.submit(i) for i in items), return_exceptions=True)
        await blocker
        await batcher.close()
        return results

    results = asyncio.run(scenario())
    assert results[:3] == [4, 4, results[2]] and isinstance(results[2], FailedPrecondition)
    assert results[3:] == [12, 2]
    # An item heavier than the limit still goes, alone.
    assert sent == [[b"x"], [b"aaaa", b"bbbb"], [b"bad"], [b"c" * 12], [b"dd"]]


def test_a_failed_send_fails_every_caller_in_that_batch_and_the_next_batch_still_goes():
    calls = 0

    async def send(items):
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        if calls == 2:
            raise Unavailable("the catalog service is unavailable")
        return items

    async def scenario():
        batcher = Batcher(send, name="test")
        assert await batcher.submit("a") == "a"
        first = asyncio.create_task(batcher.submit("b"))
        await asyncio.sleep(0)
        second = asyncio.gather(batcher.submit("c"), batcher.submit("d"))
        with pytest.raises(Unavailable):
            await first
        assert await second == ["c", "d"]
        await batcher.close()

    asyncio.run(scenario())
