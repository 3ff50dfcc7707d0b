"""`make bench`: synchronous generation through Envoy (REST), procedural model at 64x64.

The image is tiny on purpose, so the figures are the platform's own cost: Envoy, generator, catalog,
storage and Postgres (durable, fsync on, as `make run` runs it). Reports requests/s and p50/p99 at
concurrency 1 and 16, and CPU milliseconds per generation summed over every platform process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import time

import aiohttp
import psutil

from tools.otlp_receiver import otlp_receiver

from .harness import benched_platform

BODY = {"prompt": "a misty lake at sunset", "user": "bench", "width": 64, "height": 64}


def _platform_cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            root = psutil.Process(pid)
            for process in [root, *root.children(recursive=True)]:
                times = process.cpu_times()
                total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


async def _load(
    url: str, key: str, concurrency: int, seconds: float, body: dict = BODY
) -> tuple[list[float], int]:
    """Latencies of the requests answered 200, and how many were not, from `concurrency` clients."""
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    payload = json.dumps(body)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                async with session.post(url, data=payload) as response:
                    await response.read()
                    if response.status != 200:
                        errors += 1
                        continue
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, errors


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each measured run")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument(
        "--traced",
        action="store_true",
        help="trace every request (Envoy and services) to a loopback OTLP receiver, to measure the cost",
    )
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        env = {}
        if args.traced:
            receiver, endpoint = stack.enter_context(otlp_receiver())
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
        benched = stack.enter_context(benched_platform(**env))
        url = benched.platform.gateway_url + "/api/images/generations"
        key = benched.key
        pids = benched.pids()
        asyncio.run(_load(url, key, 4, 2.0))  # warm-up: connections, prepared statements, caches
        results = []
        for concurrency in args.concurrency:
            cpu_before = {name: _platform_cpu_seconds([pid]) for name, pid in pids.items()}
            started = time.perf_counter()
            latencies, errors = asyncio.run(_load(url, key, concurrency, args.seconds))
            elapsed = time.perf_counter() - started
            cpu = {name: _platform_cpu_seconds([pid]) - cpu_before[name] for name, pid in pids.items()}
            per_generation = 1000 / max(len(latencies), 1)
            results.append(
                {
                    "concurrency": concurrency,
                    "generations": len(latencies),
                    "errors": errors,
                    "requests_per_s": round(len(latencies) / elapsed, 1),
                    "p50_ms": round(statistics.median(latencies) * 1000, 2),
                    "p99_ms": round(_percentile(latencies, 0.99) * 1000, 2),
                    "platform_cpu_ms_per_generation": round(sum(cpu.values()) * per_generation, 2),
                    "cpu_ms_per_generation": {
                        name: round(seconds * per_generation, 2) for name, seconds in cpu.items()
                    },
                }
            )
        spans = len(receiver.received()) if args.traced else 0
    cpus = psutil.cpu_count()
    traced = f", traced ({spans} spans received)" if args.traced else ""
    run = f"{args.seconds:.0f}s per run, {cpus} CPUs{traced}"
    print(f"sync generation via Envoy (REST), procedural 64x64, {run}")
    columns = (
        f"{'conc':>4} {'gens':>6} {'err':>4} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/gen':>11}"
    )
    print(columns + "  by process")
    for r in results:
        print(
            f"{r['concurrency']:>4} {r['generations']:>6} {r['errors']:>4} {r['requests_per_s']:>8} "
            f"{r['p50_ms']:>8} {r['p99_ms']:>8} {r['platform_cpu_ms_per_generation']:>11}  "
            + " ".join(f"{name} {ms}" for name, ms in r["cpu_ms_per_generation"].items())
        )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
