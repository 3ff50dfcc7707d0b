"""`make bench-peer`: imagegen next to LiteLLM proxy, relaying the same OpenAI Images request to the same
upstream, in one run.

Both sides get `POST /v1/images/generations` `{"model", "prompt", "response_format": "b64_json"}` and
relay it to one stand-in OpenAI server (bench/fake_openai.py: a fixed ~110 KB PNG, at once). imagegen
does more than relay: it queues the job durably, signs the image with C2PA, stores it and records it,
then answers with the stored bytes. Reported per side at concurrency 1 and 16: requests/s, p50 and p99,
and CPU milliseconds per request summed over its whole process tree (imagegen: Envoy, the services and
Postgres; LiteLLM: the proxy and its workers). The load comes from wrk (bench/load.py), the same for
both.

LiteLLM proxy is installed, pinned, into a virtualenv of its own under build/ on first use.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.request

import psutil

from services.common.config import REPO_ROOT
from tools.embedded_pg import free_port

from .fake_openai import BODY, MODEL, register_relay_model, running_upstream, stop
from .harness import benched_platform
from .load import load_generator, measured_load, percentile, run_load

LITELLM = "litellm[proxy]==1.106.2"
PEER_VENV = pathlib.Path(os.environ.get("IMAGEGEN_PEER_VENV") or REPO_ROOT / "build" / "peer-venv")


def _litellm_binary() -> pathlib.Path:
    binary = PEER_VENV / "bin" / "litellm"
    stamp = PEER_VENV / f".installed-{LITELLM}"
    if not stamp.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        subprocess.run([str(PEER_VENV / "bin" / "pip"), "install", "--quiet", LITELLM], check=True)
        stamp.touch()
    return binary


def _wait_for_http(url: str, process: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 (loopback)
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {seconds}s")


def _measure(name: str, url: str, key: str, pids: dict[str, int], concurrency: int, seconds: float) -> dict:
    run_load(url, key, 2, 1.5, BODY)  # warm-up
    measured = measured_load(pids, url, key, concurrency, seconds, BODY)
    latencies, errors, elapsed = measured.load.latencies, measured.load.errors, measured.load.seconds
    cpu_by_process = measured.cpu_seconds
    cpu = sum(cpu_by_process.values())
    return {
        "side": name,
        "concurrency": concurrency,
        "requests": len(latencies),
        "errors": errors,
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.5) * 1000, 2) if latencies else None,
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2) if latencies else None,
        "cpu_ms_per_request": round(cpu * 1000 / max(len(latencies), 1), 2),
        "cpu_ms_per_request_by_process": {
            process: round(seconds * 1000 / max(len(latencies), 1), 2)
            for process, seconds in cpu_by_process.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each measured run")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    args = parser.parse_args()
    litellm = _litellm_binary()

    with tempfile.TemporaryDirectory(prefix="imagegen-peer-") as tmp:
        var = pathlib.Path(tmp)
        processes = []
        stack = contextlib.ExitStack()
        try:
            upstream = stack.enter_context(running_upstream())

            # LiteLLM proxy, relaying to the stand-in; no database, no network beyond loopback.
            peer_port = free_port()
            peer_key = "sk-peer-" + secrets.token_hex(8)
            config = var / "litellm.yaml"
            config.write_text(
                json.dumps(
                    {
                        "model_list": [
                            {
                                "model_name": MODEL,
                                "model_info": {"mode": "image_generation"},
                                "litellm_params": {
                                    "model": "openai/dall-e-2",
                                    "api_base": upstream,
                                    "api_key": "sk-upstream",
                                },
                            }
                        ],
                        "general_settings": {"master_key": peer_key},
                        "litellm_settings": {"telemetry": False, "drop_params": True},
                    }
                )
            )
            env = {
                **os.environ,
                "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                "LITELLM_TELEMETRY": "False",
                "LITELLM_LOG": "ERROR",
            }
            env.pop("DATABASE_URL", None)
            peer = subprocess.Popen(
                [str(litellm), "--config", str(config), "--host", "127.0.0.1", "--port", str(peer_port)],
                env=env,
                stdout=open(var / "litellm.log", "wb"),  # noqa: SIM115
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            processes.append(peer)
            _wait_for_http(f"http://127.0.0.1:{peer_port}/health/liveliness", peer)

            benched = stack.enter_context(benched_platform())
            platform, key = benched.platform, benched.key
            register_relay_model(platform.gateway_url, key, upstream)
            imagegen_pids = benched.pids()
            rows = []
            for concurrency in args.concurrency:
                rows.append(
                    _measure(
                        "imagegen",
                        f"{platform.gateway_url}/v1/images/generations",
                        key,
                        imagegen_pids,
                        concurrency,
                        args.seconds,
                    )
                )
                rows.append(
                    _measure(
                        "litellm",
                        f"http://127.0.0.1:{peer_port}/v1/images/generations",
                        peer_key,
                        {"litellm": peer.pid},
                        concurrency,
                        args.seconds,
                    )
                )
        finally:
            stack.close()
            for process in processes:
                stop(process)
    print(
        f"OpenAI Images relay, imagegen next to {LITELLM}, same stand-in upstream,"
        f" {args.seconds:.0f}s per run, {psutil.cpu_count()} CPUs, load from {load_generator()}"
    )
    print(f"{'side':>9} {'conc':>4} {'reqs':>6} {'err':>4} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}", end="")
    print(f" {'CPU ms/req':>11}")
    for r in rows:
        print(
            f"{r['side']:>9} {r['concurrency']:>4} {r['requests']:>6} {r['errors']:>4}"
            f" {r['requests_per_s']:>8} {r['p50_ms']:>8} {r['p99_ms']:>8} {r['cpu_ms_per_request']:>11}"
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
