"""Generator process: the public front door for generations. `python -m services.generator.server`."""

from __future__ import annotations

import importlib.metadata

import grpc
from imagegen.generator.v1 import generator_pb2, generator_pb2_grpc

from services.common import server as lifecycle
from services.common.outbound import OutboundClient

from .archiver import ArweaveArchiver
from .arweave import Wallet
from .clients import CatalogClient, StorageClient, close_channels
from .config import GeneratorConfig
from .console import ConsoleFiles
from .credentials import load_identity
from .domain import Generator
from .images import Images
from .inputs import InputImages
from .provenance import ContentCredentials
from .providers import Http, build_providers
from .servicer import ConsoleServicer, GeneratorServicer, ImageServicer
from .surfaces.openai_images import OpenAIImagesServicer
from .surfaces.recoup import RecoupServicer
from .sweeper import BlobSweeper
from .webhooks import WebhookDispatcher
from .worker import Worker

SERVICE_NAMES = [
    generator_pb2.DESCRIPTOR.services_by_name[name].full_name
    for name in ("GeneratorService", "ImageService", "RecoupService", "OpenAIImagesService", "ConsoleService")
]


def content_credentials(config: GeneratorConfig) -> ContentCredentials:
    identity, trust_anchors = load_identity(config.credentials, config.var_dir)
    try:
        version = importlib.metadata.version("imagegen")
    except importlib.metadata.PackageNotFoundError:
        version = "dev"
    return ContentCredentials(identity, trust_anchors, config.credentials.include_prompt, version)


async def create_server(config: GeneratorConfig) -> tuple[grpc.aio.Server, int]:
    catalog_channel = lifecycle.insecure_channel(config.catalog_target)
    storage_channel = lifecycle.insecure_channel(config.storage_target)
    catalog = CatalogClient(catalog_channel)
    storage = StorageClient(storage_channel)
    credentials = content_credentials(config)
    http = Http(config.outbound)
    worker = None
    if config.worker_enabled:
        worker = Worker(catalog, storage, build_providers(http), config.worker, credentials)
    outbound = OutboundClient(config.outbound)
    generator = Generator(catalog, storage, worker, InputImages(catalog, storage, outbound))
    images = Images(catalog, storage, credentials)
    # Loaded first, so a bad wallet stops the start with its reason.
    wallet = Wallet.load(config.arweave.wallet) if config.arweave.enabled else None

    server = lifecycle.new_server(config.internal_token)
    generator_pb2_grpc.add_GeneratorServiceServicer_to_server(
        GeneratorServicer(generator, catalog, config), server
    )
    generator_pb2_grpc.add_ImageServiceServicer_to_server(ImageServicer(images, catalog), server)
    generator_pb2_grpc.add_RecoupServiceServicer_to_server(
        RecoupServicer(generator, images, catalog, storage, config), server
    )
    generator_pb2_grpc.add_ConsoleServiceServicer_to_server(
        ConsoleServicer(ConsoleFiles(config.console_dir, config.console_image_origins)), server
    )
    generator_pb2_grpc.add_OpenAIImagesServiceServicer_to_server(
        OpenAIImagesServicer(generator, catalog, storage, config), server
    )
    port = lifecycle.finish_server(server, SERVICE_NAMES, config.host, config.port)
    if worker is not None:
        callbacks = config.outbound if config.allow_private_callbacks else config.outbound.without_private()
        webhooks = WebhookDispatcher(
            catalog, generator, config.webhook_timeout_seconds, config.public_url, callbacks
        )
        sweeper = BlobSweeper(
            catalog,
            storage,
            config.blob_sweep_interval_seconds,
            config.reconcile_interval_seconds,
            config.orphan_age_seconds,
        )
        worker.start()
        webhooks.start()
        sweeper.start()
        if wallet is not None:
            archiver = ArweaveArchiver(catalog, storage, wallet, config.arweave)
            archiver.start()
            lifecycle.on_stop(server, archiver.stop)
        # After the drain: sync callers still waiting need this worker to finish their jobs.
        lifecycle.on_stop(server, lambda: worker.stop(config.shutdown_grace_seconds))
        lifecycle.on_stop(server, webhooks.stop)
        lifecycle.on_stop(server, sweeper.stop)
        lifecycle.on_stop(server, http.close)
    lifecycle.on_stop(server, outbound.close)
    lifecycle.on_stop(server, lambda: close_channels(catalog_channel, storage_channel))
    return server, port


def main() -> None:
    lifecycle.run("generator", GeneratorConfig.from_env(), create_server)


if __name__ == "__main__":
    main()
