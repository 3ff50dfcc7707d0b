"""Storage process: owns object bytes. `python -m services.storage.server`."""

from __future__ import annotations

import grpc
from imagegen.storage.v1 import storage_pb2, storage_pb2_grpc

from services.common import server as lifecycle

from .backends import LocalFolderBackend, S3Backend
from .config import StorageConfig
from .domain import Storage, UrlSigner
from .servicer import StorageInternalServicer, StorageServicer

SERVICE_NAMES = [
    storage_pb2.DESCRIPTOR.services_by_name["StorageService"].full_name,
    storage_pb2.DESCRIPTOR.services_by_name["StorageInternalService"].full_name,
]


async def build_storage(config: StorageConfig) -> Storage:
    signer = UrlSigner(config.url_signing_key, config.public_url, config.url_ttl_seconds)
    if config.backend == "s3":
        backend = S3Backend(
            config.s3_endpoint,
            config.s3_public_endpoint,
            config.s3_access_key,
            config.s3_secret_key,
            config.s3_bucket,
            config.s3_region,
            config.s3_secure,
            config.url_ttl_seconds,
        )
        await backend.ensure_bucket()
    else:
        backend = LocalFolderBackend(config.local_root, signer)
    return Storage(backend, signer)


async def create_server(config: StorageConfig) -> tuple[grpc.aio.Server, int]:
    storage = await build_storage(config)
    server = lifecycle.new_server(config.internal_token)
    storage_pb2_grpc.add_StorageServiceServicer_to_server(StorageServicer(storage), server)
    storage_pb2_grpc.add_StorageInternalServiceServicer_to_server(StorageInternalServicer(storage), server)
    return server, lifecycle.finish_server(server, SERVICE_NAMES, config.host, config.port)


def main() -> None:
    lifecycle.run("storage", StorageConfig.from_env(), create_server)


if __name__ == "__main__":
    main()
