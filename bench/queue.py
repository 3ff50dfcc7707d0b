"""`make bench`, part two: the job queue.

1. Queue throughput: a backlog of jobs (procedural model, 64x64, each its own seed) is enqueued with no
   worker running; then a generator starts with 1, 4 or 16 worker slots and drains it. Jobs/s is
   measured from the catalog's own timestamps: completed jobs over the time from the first completion
   to the last, so process start-up is not counted.
2. End-to-end async: clients POST `"async": true` through the REST gateway at concurrency 16 while the
   generator works; reports accepted requests/s with p50/p99, and jobs completed/s end to end.

Postgres is durable (fsync on), as `make run` runs it; the load client shares the same CPUs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import psutil
import psycopg
from imagegen.catalog.v1 import catalog_pb2, catalog_pb2_grpc

from bench.load import aiohttp_load, percentile, platform_cpu_seconds
from services.common import internal
from services.common import server as lifecycle
from services.common.config import Env

from .harness import Benched, benched_platform


async def _enqueue(target: str, project_id: str, count: int, tag: str) -> None:
    async with lifecycle.internal_channel(target) as channel:
        stub = catalog_pb2_grpc.CatalogInternalServiceStub(channel)
        queue = list(range(count))

        async def sender() -> None:
            while queue:
                seed = queue.pop()
                await stub.EnqueueGeneration(
                    catalog_pb2.EnqueueGenerationRequest(
                        project_id=project_id,
                        spec=catalog_pb2.GenerationSpec(
                            model="procedural", user=tag, prompt=f"{tag} lake",
                            n=1, width=64, height=64, seed=seed, priority="medium",
                        ),
                    )
                )  # fmt: skip

        await asyncio.gather(*(sender() for _ in range(16)))


def _completed(database_url: str, tag: str) -> tuple[int, float]:
    with psycopg.connect(database_url) as conn:
        count, span = conn.execute(
            "SELECT count(*), extract(epoch FROM max(updated_at) - min(updated_at)) FROM generations"
            " WHERE end_user = %s AND status = 'completed'",
            (tag,),
        ).fetchone()
    return count, float(span or 0)


def _wait_drained(database_url: str, tag: str, count: int, timeout: float) -> tuple[int, float]:
    deadline = time.monotonic() + timeout
    while True:
        done, span = _completed(database_url, tag)
        if done >= count or time.monotonic() > deadline:
            return done, span
        time.sleep(0.2)


def _cpu_by_process(benched: Benched) -> dict[str, float]:
    return {name: platform_cpu_seconds([pid]) for name, pid in benched.pids().items()}


def _cpu_ms_per_job(before: dict[str, float], after: dict[str, float], jobs: int) -> dict[str, float]:
    """CPU per job by process; the generator was restarted, so its figure is its whole life."""
    return {name: round((after[name] - before.get(name, 0.0)) * 1000 / max(jobs, 1), 2) for name in after}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=3000, help="backlog size per queue run")
    parser.add_argument("--slots", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--async-jobs", type=int, default=2000)
    args = parser.parse_args()

    results = []
    with benched_platform(IMAGEGEN_WORKER_ENABLED="false") as benched:
        platform, database_url, key, var = benched.platform, benched.database_url, benched.key, benched.var
        with psycopg.connect(database_url) as conn:
            (project_id,) = conn.execute("SELECT id FROM projects").fetchone()
        # The bench enqueues as a service would: with the platform's internal token, kept in its var.
        internal.configure(internal.token_from_env(Env({"IMAGEGEN_VAR_DIR": str(var)})))
        for slots in args.slots:
            tag = f"queue-{slots}"
            asyncio.run(_enqueue(platform.target("catalog"), project_id, args.jobs, tag))
            platform.stop_one("generator")
            platform.env.update(IMAGEGEN_WORKER_ENABLED="true", IMAGEGEN_WORKER_SLOTS=str(slots))
            cpu_before = _cpu_by_process(benched)
            cpu_before.pop("generator", None)
            platform._start_one("generator", platform.ports["generator"], var)
            done, span = _wait_drained(database_url, tag, args.jobs, timeout=600)
            cpu = _cpu_ms_per_job(cpu_before, _cpu_by_process(benched), done)
            results.append(
                {
                    "run": f"queue, {slots} slots",
                    "jobs": done,
                    "jobs_per_s": round((done - 1) / span, 1),
                    "cpu_ms_per_job": cpu,
                }
            )
            platform.stop_one("generator")
            platform.env["IMAGEGEN_WORKER_ENABLED"] = "false"
            platform._start_one("generator", platform.ports["generator"], var)

        # End to end: the generator works while the clients submit.
        platform.stop_one("generator")
        platform.env.update(IMAGEGEN_WORKER_ENABLED="true", IMAGEGEN_WORKER_SLOTS="16")
        platform._start_one("generator", platform.ports["generator"], var)
        tag = "async-e2e"
        started = time.perf_counter()
        body = {"prompt": f"{tag} lake", "user": tag, "width": 64, "height": 64, "async": True}
        url = platform.gateway_url + "/api/images/generations"
        latencies, errors = asyncio.run(aiohttp_load(url, key, 16, body, total=args.async_jobs))
        accepted_in = time.perf_counter() - started
        done, _ = _wait_drained(database_url, tag, len(latencies), timeout=600)
        total = time.perf_counter() - started
        results.append(
            {
                "run": "async via gateway, 16 clients, 16 slots",
                "jobs": done,
                "errors": errors,
                "accepted_per_s": round(len(latencies) / accepted_in, 1),
                "accept_p50_ms": round(statistics.median(latencies) * 1000, 2),
                "accept_p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
                "jobs_per_s": round(done / total, 1),
            }
        )

    print(f"job queue, procedural 64x64, durable Postgres, {psutil.cpu_count()} CPUs")
    for r in results:
        print("  " + ", ".join(f"{k}={v}" for k, v in r.items()))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
