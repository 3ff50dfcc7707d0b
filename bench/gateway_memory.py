"""`make bench`: what bursts of large bodies cost Envoy's memory.

Each burst is 40 clients sending a large JSON body at once: 11 MiB with keys that do not exist (twice,
so a second burst shows whether memory came back), then 13 MiB, over the 12 MiB limit, with a valid
key, and last 11 MiB with a valid key (held whole, as accepted bodies are). Envoy's resident memory
(the gateway process) is sampled through each burst and some seconds after it, with its heap figures
from the admin interface's /memory (allocated: what it holds; pageheap_free: pages tcmalloc keeps
without returning them to the system).
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import json
import time
from dataclasses import dataclass

import psutil
import requests

from gateway import proxy

from .harness import benched_platform

MIB = 2**20


@dataclass(frozen=True)
class Burst:
    name: str
    body_mib: int
    valid_key: bool


BURSTS = (
    Burst("bad keys", 11, valid_key=False),
    Burst("bad keys again", 11, valid_key=False),
    Burst("over the limit, valid key", 13, valid_key=True),
    # Accepted bodies are held whole for the transcoder: this is what legitimate traffic costs.
    Burst("within the limit, valid key", 11, valid_key=True),
)


def _heap(admin: str) -> dict[str, int]:
    figures = json.loads(proxy.admin_get(admin, "/memory"))
    return {name: int(figures[name]) // MIB for name in ("allocated", "heap_size", "pageheap_free")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=40)
    parser.add_argument("--after-seconds", type=float, default=10.0)
    args = parser.parse_args()

    with benched_platform() as benched:
        platform = benched.platform
        envoy = psutil.Process(platform.processes["gateway"].pid)
        url = platform.gateway_url + "/api/images/generations"
        print(f"Envoy resident at the start: {envoy.memory_info().rss // MIB} MiB")
        for burst in BURSTS:
            body = b"{" + b" " * (burst.body_mib * MIB) + b"}"

            def send(client: int, burst: Burst = burst, body: bytes = body) -> str:
                key = benched.key if burst.valid_key else f"sk_no_such_key_{client}"
                headers = {"Authorization": f"Bearer {key}", "content-type": "application/json"}
                try:
                    return str(requests.post(url, data=body, headers=headers, timeout=120).status_code)
                except requests.RequestException as exc:
                    return type(exc).__name__

            before = envoy.memory_info().rss // MIB
            started = time.monotonic()
            peak = before
            with concurrent.futures.ThreadPoolExecutor(args.clients) as pool:
                answers = [pool.submit(send, client) for client in range(args.clients)]
                while not all(answer.done() for answer in answers):
                    peak = max(peak, envoy.memory_info().rss // MIB)
                    time.sleep(0.05)
            took = time.monotonic() - started
            time.sleep(args.after_seconds)
            settled = envoy.memory_info().rss // MIB
            statuses = dict(collections.Counter(answer.result() for answer in answers))
            print(
                f"{burst.name}: {args.clients} concurrent {burst.body_mib} MiB bodies in {took:.1f} s,"
                f" answers {statuses}; Envoy resident {before} MiB before, {peak} MiB at the peak,"
                f" {settled} MiB {args.after_seconds:.0f} s after; heap then: {_heap(platform.gateway_admin)}"
            )


if __name__ == "__main__":
    main()
