"""The generator's background loops (webhooks, Arweave, the blob sweeper): each one task, started with
the server and cancelled when it stops."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp

from services.common.outbound import OutboundPolicy, guarded_session


class BackgroundLoop:
    name = "background"

    def __init__(self) -> None:
        self._task: asyncio.Task | None = None
        self._session: aiohttp.ClientSession | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._session is not None:
            await self._session.close()

    def http(self, user_agent: str, policy: OutboundPolicy | None = None) -> aiohttp.ClientSession:
        """The loop's HTTP session, made on first use (inside the running loop) and closed at stop;
        with a policy, it reaches only where that allows (services/common/outbound.py)."""
        if self._session is None:
            headers = {"User-Agent": user_agent}
            if policy is None:
                self._session = aiohttp.ClientSession(headers=headers)
            else:
                self._session = guarded_session(policy, headers=headers)
        return self._session

    async def _loop(self) -> None:
        raise NotImplementedError
