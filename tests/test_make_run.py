"""`make run`'s launcher: it serves, prints a working key, stops every process on Ctrl-C, and keeps data."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import psutil
import pytest
import requests

from tools.embedded_pg import free_port

pytestmark = pytest.mark.starts_processes


def _start(var, ports) -> tuple[subprocess.Popen, str, str]:
    """Starts `python -m tools.run`; answers the process, the key and the address it printed."""
    env = {
        **os.environ,
        "IMAGEGEN_VAR_DIR": str(var),
        "IMAGEGEN_EMBEDDED_PG_PORT": str(ports["pg"]),
        **{f"IMAGEGEN_{name.upper()}_PORT": str(port) for name, port in ports.items() if name != "pg"},
    }
    env.pop("IMAGEGEN_BOOTSTRAP_API_KEY", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "tools.run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    printed = ""
    deadline = time.monotonic() + 90
    # Reading stops at the first curl line: the launcher prints nothing more until it stops.
    while "curl -s" not in printed:
        line = process.stdout.readline()
        assert line or process.poll() is None, f"tools.run exited early:\n{printed}"
        printed += line
        assert time.monotonic() < deadline, printed
    key = re.search(r"API key: (\S+)", printed).group(1)
    url = re.search(r"imagegen is running at (http://127\.0\.0\.1:\d+) ", printed).group(1)
    if ports["gateway"]:
        assert url == f"http://127.0.0.1:{ports['gateway']}"
    assert f"{url}/api/images/generations" in printed
    assert re.search(r"Envoy's admin \(loopback only\): http://127\.0\.0\.1:\d+", printed)
    return process, key, url


def _interrupt(process: subprocess.Popen) -> None:
    children = psutil.Process(process.pid).children(recursive=True)
    assert len(children) >= 5, "postgres and four platform processes"
    process.send_signal(signal.SIGINT)
    assert process.wait(60) == 0
    time.sleep(0.5)
    alive = [c.pid for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert alive == [], f"processes left running after Ctrl-C: {alive}"


def test_run_serves_stops_cleanly_and_keeps_every_generation(tmp_path):
    # Every platform port is the kernel's choice; the address is the one `make run` prints, Envoy's.
    ports = {"pg": free_port(), "gateway": 0, "generator": 0, "catalog": 0, "storage": 0}
    process, key, url = _start(tmp_path, ports)
    base = f"{url}/api/images/generations"
    try:
        auth = {"Authorization": f"Bearer {key}"}
        created = requests.post(
            base, json={"prompt": "keep me", "width": 64, "height": 64}, headers=auth, timeout=30
        )
        assert created.status_code == 200, created.text
        image = requests.get(created.json()["outputImages"][0]["url"], timeout=10).content
    finally:
        _interrupt(process)

    process, same_key, url = _start(tmp_path, ports)
    base = f"{url}/api/images/generations"
    try:
        assert same_key == key, "the admin key made on the first run is kept in var/"
        fetched = requests.get(f"{base}/{created.json()['id']}", headers=auth, timeout=30)
        assert fetched.status_code == 200 and fetched.json()["prompt"] == "keep me"
        assert requests.get(fetched.json()["outputImages"][0]["url"], timeout=10).content == image
    finally:
        _interrupt(process)


def test_run_starts_a_crashed_service_again_instead_of_stopping(tmp_path):
    ports = {"pg": free_port(), "gateway": 0, "generator": 0, "catalog": 0, "storage": 0}
    process, key, url = _start(tmp_path, ports)
    try:
        auth = {"Authorization": f"Bearer {key}"}
        body = {"prompt": "a crash", "width": 64, "height": 64}
        storage = next(
            child
            for child in psutil.Process(process.pid).children(recursive=True)
            if "services.storage.server" in " ".join(child.cmdline())
        )
        storage.send_signal(signal.SIGKILL)
        storage.wait(10)
        deadline = time.monotonic() + 30
        answer = None
        while time.monotonic() < deadline:
            answer = requests.post(f"{url}/api/images/generations", json=body, headers=auth, timeout=30)
            if answer.status_code == 200:
                break
            time.sleep(0.5)
        assert answer is not None and answer.status_code == 200, answer.text if answer else "no answer"
        assert process.poll() is None, "the launcher kept running"
    finally:
        _interrupt(process)
