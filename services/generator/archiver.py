"""Copies stored images to Arweave, where a wallet is configured: the catalog's Arweave outbox, worked.

An archive is `pending` until a node accepts its transaction, then `posted` until it has enough
confirmations, then `confirmed`. Nothing here can fail a generation: every failure is recorded on the
archive and retried with backoff, for as long as some generation uses the image.
"""

from __future__ import annotations

import asyncio
import json
import logging
import pathlib
from dataclasses import dataclass

import aiohttp
from imagegen.catalog.v1 import catalog_pb2

from services.common.errors import DomainError

from .arweave import ArweaveNode, NodeError, Transaction, Wallet, signed_transaction, transaction_chunks
from .background import BackgroundLoop
from .clients import CatalogClient, StorageClient

log = logging.getLogger("imagegen.generator.arweave")

APP_NAME = "imagegen"
MAX_RETRY_SECONDS = 3600.0


@dataclass(frozen=True)
class ArweaveConfig:
    # A JWK file; archiving is on when it is set.
    wallet: pathlib.Path | None = None
    # The node transactions are posted to.
    node_url: str = "https://arweave.net"
    # Where a transaction's data is served; image URLs are `<gateway_url>/<transaction id>`.
    gateway_url: str = ""
    # Blocks on top of a transaction's before it counts as confirmed.
    confirmations: int = 10
    # The first retry's delay; it doubles with each failed attempt, up to an hour.
    retry_seconds: float = 5.0
    # How often a posted transaction is looked up for confirmations.
    check_seconds: float = 120.0
    # How long Recoup's synchronous answer waits for the image's transaction.
    wait_seconds: float = 10.0
    timeout_seconds: float = 60.0
    # Archives worked at once by one generator.
    parallel: int = 4

    @property
    def enabled(self) -> bool:
        return self.wallet is not None

    @property
    def public_gateway(self) -> str:
        return (self.gateway_url or self.node_url).rstrip("/")


def transaction_url(gateway: str, transaction_id: str) -> str:
    return f"{gateway}/{transaction_id}"


class ArweaveArchiver(BackgroundLoop):
    name = "arweave"

    def __init__(self, catalog: CatalogClient, storage: StorageClient, wallet: Wallet, config: ArweaveConfig):
        super().__init__()
        self.catalog = catalog
        self.storage = storage
        self.wallet = wallet
        self.config = config
        self.lease_seconds = config.timeout_seconds * 3 + 30

    def start(self) -> None:
        log.info(
            "archiving images to Arweave",
            extra={"fields": {"wallet": self.wallet.address, "node": self.config.node_url}},
        )
        super().start()

    async def _loop(self) -> None:
        session = self.http(f"{APP_NAME}-arweave/1")
        node = ArweaveNode(self.config.node_url, session, self.config.timeout_seconds)
        while True:
            try:
                archives = await self.catalog.claim_arweave_archives(
                    self.config.parallel, self.lease_seconds, 1.0
                )
            except DomainError as exc:
                log.warning("arweave claim failed", extra={"fields": {"error": exc.message}})
                await asyncio.sleep(1)
                continue
            await asyncio.gather(*(self._work(node, archive) for archive in archives))

    async def _work(self, node: ArweaveNode, archive: catalog_pb2.ArweaveArchive) -> None:
        transaction = None
        if archive.transaction_json:
            transaction = Transaction.from_json(json.loads(archive.transaction_json))
        try:
            if archive.state == "posted":
                report = await self._check(node, archive, transaction)
            else:
                report = await self._post(node, archive, transaction)
        except (NodeError, DomainError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            if isinstance(exc, TimeoutError):
                message = f"the Arweave node did not answer within {self.config.timeout_seconds:.0f} s"
            # A transaction the node judged cannot succeed later; one whose fate is unknown is kept, so the
            # next attempt asks the node about it before paying for another.
            if isinstance(exc, NodeError) and exc.rejected:
                transaction = None
            report = catalog_pb2.ReportArweaveArchiveRequest(
                storage_key=archive.storage_key,
                state=archive.state if archive.state == "posted" else "pending",
                transaction_json=_json(transaction),
                url=archive.url if archive.state == "posted" else "",
                error=message,
                retry_in_seconds=self._backoff(archive.attempts),
            )
            log.info(
                "arweave attempt failed",
                extra={"fields": {"key": archive.storage_key, "error": message, "attempt": archive.attempts}},
            )
        try:
            await self.catalog.report_arweave_archive(report)
        except DomainError as exc:
            # Unreported, the lease runs out and the archive is taken up again.
            log.warning("arweave result not recorded", extra={"fields": {"error": exc.message}})

    async def _post(
        self, node: ArweaveNode, archive: catalog_pb2.ArweaveArchive, transaction: Transaction | None
    ) -> catalog_pb2.ReportArweaveArchiveRequest:
        if transaction is not None and await self._known(node, transaction):
            return self._posted(archive, transaction)
        data = await self.storage.read_all(archive.storage_key)
        if transaction is None:
            anchor, reward = await asyncio.gather(node.anchor(), node.price(len(data)))
            tags = [("Content-Type", archive.content_type), ("App-Name", APP_NAME)]
            transaction, chunks = await asyncio.to_thread(
                signed_transaction, self.wallet, data, tags, anchor, reward
            )
            # Remembered before posting: if the answer is lost, the next attempt finds it by id.
            await self.catalog.report_arweave_archive(
                catalog_pb2.ReportArweaveArchiveRequest(
                    storage_key=archive.storage_key,
                    state="pending",
                    transaction_json=_json(transaction),
                    retry_in_seconds=self.lease_seconds,
                )
            )
        else:
            _, chunks = await asyncio.to_thread(transaction_chunks, data)
        try:
            await node.post(transaction, data, chunks)
        except NodeError:
            # Some nodes refuse a transaction they already hold rather than answer 208; that is success.
            if not await self._known(node, transaction):
                raise
        log.info(
            "image posted to arweave",
            extra={"fields": {"key": archive.storage_key, "transaction": transaction.id}},
        )
        return self._posted(archive, transaction)

    async def _known(self, node: ArweaveNode, transaction: Transaction) -> bool:
        try:
            return (await node.status(transaction.id)).state != "unknown"
        except (NodeError, aiohttp.ClientError, TimeoutError, OSError):
            return False

    def _posted(
        self, archive: catalog_pb2.ArweaveArchive, transaction: Transaction
    ) -> catalog_pb2.ReportArweaveArchiveRequest:
        return catalog_pb2.ReportArweaveArchiveRequest(
            storage_key=archive.storage_key,
            state="posted",
            transaction_json=_json(transaction),
            url=transaction_url(self.config.public_gateway, transaction.id),
            retry_in_seconds=self.config.check_seconds,
        )

    async def _check(
        self, node: ArweaveNode, archive: catalog_pb2.ArweaveArchive, transaction: Transaction | None
    ) -> catalog_pb2.ReportArweaveArchiveRequest:
        if transaction is None:
            raise NodeError("a posted archive lost its transaction; signing a new one", 400)
        status = await node.status(transaction.id)
        if status.state == "unknown":
            # Nodes drop transactions that were never mined; post it again, or a new one if it is stale.
            return catalog_pb2.ReportArweaveArchiveRequest(
                storage_key=archive.storage_key,
                state="pending",
                transaction_json=_json(transaction),
                error=f"the node no longer knows transaction {transaction.id}; posting it again",
            )
        confirmed = status.state == "mined" and status.confirmations >= self.config.confirmations
        return catalog_pb2.ReportArweaveArchiveRequest(
            storage_key=archive.storage_key,
            state="confirmed" if confirmed else "posted",
            transaction_json=_json(transaction),
            url=archive.url,
            retry_in_seconds=self.config.check_seconds,
        )

    def _backoff(self, attempts: int) -> float:
        return min(self.config.retry_seconds * 2 ** max(attempts - 1, 0), MAX_RETRY_SECONDS)


def _json(transaction: Transaction | None) -> str:
    return json.dumps(transaction.to_json(), separators=(",", ":")) if transaction is not None else ""
