"""Catalog process: owns Postgres. `python -m services.catalog.server`."""

from __future__ import annotations

import asyncio
import logging

import grpc
from imagegen.catalog.v1 import catalog_pb2, catalog_pb2_grpc

from services.common import metrics
from services.common import server as lifecycle

from .account_store import AccountStore
from .accounts import Accounts
from .config import CatalogConfig
from .db import database_unavailable, migrate, open_pool
from .domain import Catalog
from .metrics import read_gauges
from .notifier import Notifier
from .queue import JobQueue
from .repository import Repository
from .servicer import AccountServicer, CatalogInternalServicer, CatalogServicer, GatewayCheckServicer

log = logging.getLogger("imagegen.catalog")

SERVICE_NAMES = [
    catalog_pb2.DESCRIPTOR.services_by_name["CatalogService"].full_name,
    catalog_pb2.DESCRIPTOR.services_by_name["AccountService"].full_name,
    catalog_pb2.DESCRIPTOR.services_by_name["CatalogInternalService"].full_name,
]


async def create_server(config: CatalogConfig) -> tuple[grpc.aio.Server, int]:
    await migrate(config.database_url)
    pool = await open_pool(config.database_url, config.pool_min, config.pool_max)
    notifier = Notifier(config.database_url)
    await notifier.start()
    repository = Repository(pool, config.sealer)
    resealed = await repository.reseal_secrets()
    if resealed:
        log.info("secrets sealed under the current key", extra={"fields": {"count": resealed}})
    account_store = AccountStore(pool, repository)
    catalog = Catalog(
        repository,
        JobQueue(pool, repository, account_store),
        notifier,
        config.queue,
        outbound=config.outbound,
    )
    accounts = Accounts(account_store, config.key_rate)
    await catalog.bootstrap(config.bootstrap_api_key)

    server = lifecycle.new_server(config.internal_token, database_unavailable)
    catalog_pb2_grpc.add_CatalogServiceServicer_to_server(CatalogServicer(catalog, accounts), server)
    catalog_pb2_grpc.add_AccountServiceServicer_to_server(AccountServicer(catalog, accounts), server)
    catalog_pb2_grpc.add_CatalogInternalServiceServicer_to_server(
        CatalogInternalServicer(catalog, accounts), server
    )
    server.add_generic_rpc_handlers((GatewayCheckServicer(accounts).handler(),))
    port = lifecycle.finish_server(server, SERVICE_NAMES, config.host, config.port)
    gauges = metrics.LoopCollector(asyncio.get_running_loop(), lambda: read_gauges(catalog))
    metrics.REGISTRY.register(gauges)

    async def unregister() -> None:
        metrics.REGISTRY.unregister(gauges)

    lifecycle.on_stop(server, unregister)
    lifecycle.on_stop(server, notifier.stop)
    lifecycle.on_stop(server, pool.close)
    return server, port


def main() -> None:
    lifecycle.run("catalog", CatalogConfig.from_env(), create_server)


if __name__ == "__main__":
    main()
