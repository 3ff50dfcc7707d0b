"""`make bench`: synchronous generation through Envoy (REST), procedural model at 64x64.

The image is tiny on purpose, so the figures are the platform's own cost: Envoy, generator, catalog,
storage and Postgres (durable, fsync on, as `make run` runs it). Reports requests/s and p50/p99 at
concurrency 1 and 16, and CPU milliseconds per generation summed over every platform process.
"""

from __future__ import annotations

import argparse
import contextlib
import json

import psutil

from tools.otlp_receiver import otlp_receiver

from .harness import benched_platform
from .load import figures, load_generator, measured_load, print_figures, run_load

BODY = {"prompt": "a misty lake at sunset", "user": "bench", "width": 64, "height": 64}


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
        run_load(url, key, 4, 2.0, BODY)  # warm-up: connections, prepared statements, caches
        results = []
        for concurrency in args.concurrency:
            gc_before = benched.full_gc_passes()
            measured = measured_load(pids, url, key, concurrency, args.seconds, BODY)
            gc_passes = {
                service: (count - gc_before[service][0], seconds - gc_before[service][1])
                for service, (count, seconds) in benched.full_gc_passes().items()
            }
            results.append(
                {
                    **figures(concurrency, measured),
                    # Full garbage collections during the run, each a pause every call in flight waits out.
                    "full_gc_passes": {
                        service: {"count": int(count), "mean_ms": round(seconds * 1000 / max(count, 1), 1)}
                        for service, (count, seconds) in gc_passes.items()
                    },
                }
            )
        spans = len(receiver.received()) if args.traced else 0
    cpus = psutil.cpu_count()
    traced = f", traced ({spans} spans received)" if args.traced else ""
    run = f"{args.seconds:.0f}s per run, {cpus} CPUs, load from {load_generator()}{traced}"
    print(f"sync generation via Envoy (REST), procedural 64x64, {run}")
    print_figures(results)
    for r in results:
        passes = ", ".join(
            f"{service} {p['count']} (mean {p['mean_ms']} ms)" for service, p in r["full_gc_passes"].items()
        )
        print(f"c={r['concurrency']}: full GC passes, each a pause for every call in flight: {passes}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
