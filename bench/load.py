"""The load every HTTP benchmark sends: one POST, repeated by `concurrency` clients for a while.

wrk drives it where it is installed (`make bench` installs Debian's package when it can), as the issue's
figures were measured: a load generator in C costs the 2-core machine a fraction of what an asyncio
client in Python costs, so the platform is not measured while competing with its own load for a core.
Where wrk is missing, or IMAGEGEN_BENCH_LOAD=aiohttp asks for it, the same load comes from aiohttp in
this process, and the run says so.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import aiohttp
import psutil

# Each wrk thread runs this script in its own Lua state; done() runs once, after all of them.
_WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = {authorization}
done = function(summary, latency, requests)
  local out = assert(io.open({result_path}, "w"))
  local answered = summary.requests - summary.errors.status
  out:write(string.format(
    '{{"requests": %d, "not_ok": %d, "socket_errors": %d, "seconds": %f, "latencies_us": [',
    summary.requests, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.duration / 1e6))
  -- The histogram as one value per request, so slices from several runs can be pooled.
  for i = 1, answered do
    if i > 1 then out:write(",") end
    out:write(string.format("%d", latency:percentile(100 * (i - 0.5) / answered)))
  end
  out:write("]}}")
  out:close()
end
"""


@dataclass
class LoadResult:
    latencies: list[float]  # seconds, one per request answered 200
    errors: int  # requests not answered 200, or lost
    seconds: float


@dataclass
class Measured:
    load: LoadResult
    cpu_seconds: dict[str, float]  # by process (each with its children) while the load ran


def measured_load(
    pids: dict[str, int], url: str, key: str, concurrency: int, seconds: float, body: dict
) -> Measured:
    """`run_load`, and the CPU each named process tree spent meanwhile."""
    before = {name: platform_cpu_seconds([pid]) for name, pid in pids.items()}
    load = run_load(url, key, concurrency, seconds, body)
    return Measured(load, {name: platform_cpu_seconds([pid]) - before[name] for name, pid in pids.items()})


def figures(concurrency: int, measured: Measured) -> dict:
    """One measured run as the sync benchmarks report it: requests/s, p50/p99, and CPU milliseconds per
    generation over every process and by process."""
    latencies, cpu = measured.load.latencies, measured.cpu_seconds
    per_generation = 1000 / max(len(latencies), 1)
    return {
        "concurrency": concurrency,
        "generations": len(latencies),
        "errors": measured.load.errors,
        "requests_per_s": round(len(latencies) / measured.load.seconds, 1),
        "p50_ms": round(percentile(latencies, 0.5) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "platform_cpu_ms_per_generation": round(sum(cpu.values()) * per_generation, 2),
        "cpu_ms_per_generation": {name: round(seconds * per_generation, 2) for name, seconds in cpu.items()},
    }


def print_figures(rows: list[dict]) -> None:
    header = f"{'conc':>4} {'gens':>6} {'err':>4} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/gen':>11}"
    print(header + "  by process")
    for r in rows:
        print(
            f"{r['concurrency']:>4} {r['generations']:>6} {r['errors']:>4} {r['requests_per_s']:>8} "
            f"{r['p50_ms']:>8} {r['p99_ms']:>8} {r['platform_cpu_ms_per_generation']:>11}  "
            + " ".join(f"{name} {ms}" for name, ms in r["cpu_ms_per_generation"].items())
        )


def _use_wrk() -> bool:
    return os.environ.get("IMAGEGEN_BENCH_LOAD", "wrk") == "wrk" and shutil.which("wrk") is not None


def load_generator() -> str:
    if _use_wrk():
        return "wrk"
    return "aiohttp" if "IMAGEGEN_BENCH_LOAD" in os.environ else "aiohttp (wrk not installed)"


def run_load(url: str, key: str, concurrency: int, seconds: float, body: dict) -> LoadResult:
    if _use_wrk():
        return _wrk(url, key, concurrency, seconds, body)
    started = time.perf_counter()
    latencies, errors = asyncio.run(aiohttp_load(url, key, concurrency, body, seconds=seconds))
    return LoadResult(latencies, errors, time.perf_counter() - started)


def _lua_string(text: str) -> str:
    if not text.isascii():
        raise ValueError("the wrk script takes ASCII only")  # Lua has no \\uXXXX escape
    return json.dumps(text)  # then a JSON string literal is a Lua one


def _wrk(url: str, key: str, concurrency: int, seconds: float, body: dict) -> LoadResult:
    with tempfile.TemporaryDirectory(prefix="imagegen-wrk-") as tmp:
        result_path = pathlib.Path(tmp) / "result.json"
        script = pathlib.Path(tmp) / "post.lua"
        script.write_text(
            _WRK_SCRIPT.format(
                body=_lua_string(json.dumps(body)),
                authorization=_lua_string(f"Bearer {key}"),
                result_path=_lua_string(str(result_path)),
            )
        )
        command = [
            "wrk",
            "--threads",
            "1",  # one epoll loop keeps 16 connections busy and leaves the cores to the platform
            "--connections",
            str(concurrency),
            "--duration",
            f"{max(1, math.ceil(seconds))}s",
            "--timeout",
            "60s",
            "--script",
            str(script),
            url,
        ]
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
        if completed.returncode != 0 or not result_path.exists():
            sys.stderr.write(completed.stdout + completed.stderr)
            raise RuntimeError(f"wrk exited with {completed.returncode}")
        result = json.loads(result_path.read_text())
    return LoadResult(
        latencies=[us / 1e6 for us in result["latencies_us"]],
        errors=result["not_ok"] + result["socket_errors"],
        seconds=result["seconds"],
    )


async def aiohttp_load(
    url: str, key: str, concurrency: int, body: dict, seconds: float | None = None, total: int | None = None
) -> tuple[list[float], int]:
    """The load from this process: `concurrency` clients sending `body` for `seconds`, or until `total`
    requests have gone. Answers the latencies of those answered 200 and how many were not."""
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds if seconds is not None else math.inf
    remaining = total if total is not None else math.inf
    connector = aiohttp.TCPConnector(limit=concurrency)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    payload = json.dumps(body)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def worker() -> None:
            nonlocal errors, remaining
            while remaining > 0 and time.perf_counter() < stop_at:
                remaining -= 1
                started = time.perf_counter()
                async with session.post(url, data=payload) as response:
                    await response.read()
                    if response.status != 200:
                        errors += 1
                        continue
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, errors


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def platform_cpu_seconds(pids: list[int]) -> float:
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
