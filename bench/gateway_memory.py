"""`make bench`: what a burst of large bodies with bad keys costs Envoy's memory.

40 clients send an 11 MiB JSON body each at once with keys that do not exist (each answered 4xx);
Envoy's resident memory (the gateway process) is sampled through the burst and for 20 s after it, with
its heap figures from the admin interface's /memory (allocated: what it holds; pageheap_free: pages
tcmalloc keeps without returning them to the system).
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import json
import time

import psutil
import requests

from gateway import proxy

from .harness import benched_platform

MIB = 2**20


def _heap(admin: str) -> dict[str, int]:
    figures = json.loads(proxy.admin_get(admin, "/memory"))
    return {name: int(figures[name]) // MIB for name in ("allocated", "heap_size", "pageheap_free")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=40)
    parser.add_argument("--body-mib", type=int, default=11)
    parser.add_argument("--after-seconds", type=float, default=20.0)
    args = parser.parse_args()
    body = b"{" + b" " * (args.body_mib * MIB) + b"}"

    with benched_platform() as benched:
        platform = benched.platform
        envoy = psutil.Process(platform.processes["gateway"].pid)
        url = platform.gateway_url + "/api/images/generations"
        baseline = envoy.memory_info().rss // MIB

        def send(client: int) -> str:
            headers = {"Authorization": f"Bearer sk_no_such_key_{client}", "content-type": "application/json"}
            try:
                return str(requests.post(url, data=body, headers=headers, timeout=120).status_code)
            except requests.RequestException as exc:
                return type(exc).__name__

        started = time.monotonic()
        peak = baseline
        with concurrent.futures.ThreadPoolExecutor(args.clients) as pool:
            answers = [pool.submit(send, client) for client in range(args.clients)]
            while not all(answer.done() for answer in answers):
                peak = max(peak, envoy.memory_info().rss // MIB)
                time.sleep(0.05)
        took = time.monotonic() - started
        time.sleep(args.after_seconds)
        settled = envoy.memory_info().rss // MIB
        heap = _heap(platform.gateway_admin)
        statuses = collections.Counter(answer.result() for answer in answers)

    print(
        f"{args.clients} concurrent {args.body_mib} MiB bodies with bad keys through Envoy, in {took:.1f} s"
    )
    print(f"answers {dict(statuses)}")
    print(
        f"Envoy resident: {baseline} MiB before, {peak} MiB at the peak,"
        f" {settled} MiB {args.after_seconds:.0f} s after; heap then: {heap}"
    )


if __name__ == "__main__":
    main()
