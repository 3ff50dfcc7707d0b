"""`make bench-floor`: the least a sync generation can cost in the platform's shape, with none of its rules.

The same parts as `bench.rest_sync` measures, each doing the least its place in a sync generation asks:
the real Envoy with the real gateway config, in front of three bare gRPC servers (uvloop, grpc.aio) on
the real protos. The generator's create calls the catalog's enqueue (one INSERT, committed durably on
its own), the storage's put (which keeps nothing) and the catalog's completion (one UPDATE, the same),
then answers. No authentication, limits, queue, rendering, signing, metrics,
logs or interceptors. The Postgres is durable, as the benchmarks' is.

Beside it, in this process, the work the built-in model does for each 64x64 generation whatever the
shape: render, PNG encode and Content Credentials signing.

The two added are a floor: what `bench.rest_sync` measures cannot go below it while the platform keeps
its processes, its calls between them and its two commits per generation.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator

from .load import figures, load_generator, measured_load, print_figures, run_load
from .rest_sync import BODY

# The targets for procedural 64x64 through REST (issue 14), printed beside the floor.
TARGETS = {"p50_ms_c1": 8.0, "requests_per_s_c16": 250.0, "p99_ms_c16": 150.0, "cpu_ms_per_generation": 6.0}


# -- the bare servers (run as `python -m bench.floor`, one role per process) -------------------------


def _serve(role: str) -> None:
    """One bare server, with the services' own lifecycle (health, port file, SIGTERM drain), which costs
    a call nothing."""
    import grpc
    import uvloop

    from services.common import server as lifecycle

    async def main() -> None:
        server = grpc.aio.server(options=lifecycle.SERVER_OPTIONS)
        names, closing = await _ROLES[role](server)
        lifecycle.on_stop(server, closing)
        port = lifecycle.finish_server(
            server, names, "127.0.0.1", int(os.environ[f"IMAGEGEN_{role.upper()}_PORT"])
        )
        await lifecycle.serve_until_signal(server, port, role, grace=1)

    uvloop.run(main())


async def _catalog(server):
    from imagegen.catalog.v1 import catalog_pb2, catalog_pb2_grpc
    from psycopg_pool import AsyncConnectionPool

    pool = AsyncConnectionPool(os.environ["IMAGEGEN_DATABASE_URL"], min_size=4, max_size=8, open=False)
    await pool.open()
    async with pool.connection() as conn:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS floor_generations (id text PRIMARY KEY, prompt text NOT NULL,"
            " status text NOT NULL, storage_key text, created_at timestamptz NOT NULL DEFAULT now())"
        )
        await conn.commit()

    class Catalog(catalog_pb2_grpc.CatalogInternalServiceServicer):
        async def EnqueueGeneration(self, request, context):
            # One statement on its own is its own transaction: the least a durable write costs.
            async with pool.connection() as conn:
                await conn.execute(
                    "INSERT INTO floor_generations (id, prompt, status) VALUES (%s, %s, 'processing')",
                    (request.generation_id, request.spec.prompt),
                )
            return catalog_pb2.EnqueueGenerationResponse(
                generation=catalog_pb2.GenerationRecord(id=request.generation_id, status="processing")
            )

        async def CompleteJobs(self, request, context):
            async with pool.connection() as conn:
                await conn.execute(
                    "UPDATE floor_generations f SET status = 'succeeded', storage_key = j.key"
                    " FROM unnest(%s::text[], %s::text[]) AS j(id, key) WHERE f.id = j.id",
                    (
                        [job.generation_id for job in request.jobs],
                        [job.images[0].storage_key for job in request.jobs],
                    ),
                )
            return catalog_pb2.CompleteJobsResponse(
                results=[catalog_pb2.CompletedJob(generation_id=job.generation_id) for job in request.jobs]
            )

    catalog_pb2_grpc.add_CatalogInternalServiceServicer_to_server(Catalog(), server)
    return ["imagegen.catalog.v1.CatalogService"], pool.close


async def _storage(server):
    from imagegen.storage.v1 import storage_pb2, storage_pb2_grpc

    class Storage(storage_pb2_grpc.StorageInternalServiceServicer):
        async def PutSmallObjects(self, request, context):
            return storage_pb2.PutSmallObjectsResponse(
                objects=[storage_pb2.PutObjectResponse(key=f"floor/{i}") for i in range(len(request.objects))]
            )

    storage_pb2_grpc.add_StorageInternalServiceServicer_to_server(Storage(), server)

    async def nothing() -> None:
        return None

    return ["imagegen.storage.v1.StorageService"], nothing


async def _generator(server):
    import grpc
    from imagegen.catalog.v1 import catalog_pb2, catalog_pb2_grpc
    from imagegen.generator.v1 import generator_pb2, generator_pb2_grpc
    from imagegen.storage.v1 import storage_pb2, storage_pb2_grpc

    from services.common.server import CLIENT_CHANNEL_OPTIONS

    catalog_channel, storage_channel = (
        grpc.aio.insecure_channel(os.environ[f"IMAGEGEN_{name}_TARGET"], options=CLIENT_CHANNEL_OPTIONS)
        for name in ("CATALOG", "STORAGE")
    )
    catalog = catalog_pb2_grpc.CatalogInternalServiceStub(catalog_channel)
    storage = storage_pb2_grpc.StorageInternalServiceStub(storage_channel)
    image = b"\x89PNG\r\n\x1a\n" + secrets.token_bytes(2000)  # about a 64x64 procedural PNG's size

    class Generator(generator_pb2_grpc.GeneratorServiceServicer):
        async def CreateGenerationFromBody(self, request, context):
            body = json.loads(request.data)
            generation_id = "gen_" + secrets.token_hex(12)
            await catalog.EnqueueGeneration(
                catalog_pb2.EnqueueGenerationRequest(
                    generation_id=generation_id, spec=catalog_pb2.GenerationSpec(prompt=body["prompt"])
                )
            )
            stored = await storage.PutSmallObjects(
                storage_pb2.PutSmallObjectsRequest(objects=[storage_pb2.SmallObject(data=image)])
            )
            await catalog.CompleteJobs(
                catalog_pb2.CompleteJobsRequest(
                    jobs=[
                        catalog_pb2.CompleteJobRequest(
                            generation_id=generation_id,
                            images=[catalog_pb2.ImageRecord(storage_key=stored.objects[0].key)],
                        )
                    ]
                )
            )
            return generator_pb2.Generation(id=generation_id, status="succeeded")

    generator_pb2_grpc.add_GeneratorServiceServicer_to_server(Generator(), server)

    async def close() -> None:
        await catalog_channel.close()
        await storage_channel.close()

    return ["imagegen.generator.v1.GeneratorService"], close


_ROLES = {"catalog": _catalog, "storage": _storage, "generator": _generator}


# -- the run ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def bare_platform() -> Iterator[tuple[str, dict[str, int]]]:
    from tools.embedded_pg import EmbeddedPostgres
    from tools.supervisor import Platform

    with tempfile.TemporaryDirectory(prefix="imagegen-floor-") as tmp:
        var = pathlib.Path(tmp)
        postgres = EmbeddedPostgres(var / "postgres", durable=True).start()
        try:
            database_url = postgres.create_database("floor")
            platform = Platform(
                env={"IMAGEGEN_DATABASE_URL": database_url, "IMAGEGEN_VAR_DIR": str(var)},
                modules={service: "bench.floor" for service in _ROLES},
            )
            try:
                platform.start(log_dir=var)
                pids = {name: process.pid for name, process in platform.processes.items()}
                yield platform.gateway_url, {**pids, "postgres": postgres.process.pid}
            finally:
                platform.stop()
        finally:
            postgres.stop()


def model_work_ms(rounds: int) -> dict[str, float]:
    """Median milliseconds of the built-in model's own work for one 64x64 generation, in this process."""
    from services.generator.credentials import CredentialsConfig, load_identity
    from services.generator.provenance import ContentCredentials, Creation
    from services.generator.providers.procedural import encode_png, render

    with tempfile.TemporaryDirectory() as var:
        identity, anchors = load_identity(CredentialsConfig(), pathlib.Path(var))
    credentials = ContentCredentials(identity, anchors, version="bench")
    creation = Creation("img_bench", 0, "procedural", "procedural", "", "srv_bench", BODY["prompt"])

    def median_ms(action) -> float:
        action()
        times = []
        for _ in range(rounds):
            started = time.process_time()
            action()
            times.append((time.process_time() - started) * 1000)
        return statistics.median(times)

    pixels = render(BODY["prompt"], 7, 64, 64)
    png = encode_png(pixels)
    return {
        "render": round(median_ms(lambda: render(BODY["prompt"], 7, 64, 64)), 2),
        "encode_png": round(median_ms(lambda: encode_png(pixels)), 2),
        "sign": round(median_ms(lambda: credentials.sign(png, "image/png", creation)), 2),
    }


def main() -> None:
    if "IMAGEGEN_PORT_FILE" in os.environ:  # started by the supervisor, in one service's place
        (role,) = (role for role in _ROLES if f"IMAGEGEN_{role.upper()}_PORT" in os.environ)
        _serve(role)
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each measured run")
    args = parser.parse_args()
    work = model_work_ms(rounds=50)
    work_ms = sum(work.values())
    rows = []
    with bare_platform() as (gateway_url, pids):
        url = gateway_url + "/api/images/generations"
        run_load(url, "floor", 4, 2.0, BODY)  # warm-up
        for concurrency in (1, 16):
            rows.append(
                figures(concurrency, measured_load(pids, url, "floor", concurrency, args.seconds, BODY))
            )
    run = f"{args.seconds:.0f}s per run, load from {load_generator()}"
    print(f"the platform's shape with none of its rules, {run}")
    print_figures(rows)
    print(f"the built-in model's work per 64x64 generation: {work} ms, {work_ms:.2f} ms in all")
    c1, c16 = rows
    floor = {
        "p50_ms_c1": round(c1["p50_ms"] + work_ms, 2),
        "p99_ms_c16": c16["p99_ms"],  # without the model's work: a lower bound still
        "cpu_ms_per_generation": round(c16["platform_cpu_ms_per_generation"] + work_ms, 2),
        # Two cores: at best every core works all the time.
        "requests_per_s_c16": round(
            min(c16["requests_per_s"], 2000 / (c16["platform_cpu_ms_per_generation"] + work_ms)), 1
        ),
    }
    for name, target in TARGETS.items():
        if name in floor:
            print(f"  {name}: floor {floor[name]}, target {target}")
    print(json.dumps({"floor": rows, "model_work_ms": work, "with_model_work": floor, "targets": TARGETS}))


if __name__ == "__main__":
    sys.exit(main())
