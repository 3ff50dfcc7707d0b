"""Starts the platform's processes (catalog, storage, generator, gateway) and stops them by pid.

Used by `make run`, the end-to-end tests and the benchmark, so all three run the same thing.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

from services.common.config import REPO_ROOT

MODULES = {
    "catalog": "services.catalog.server",
    "storage": "services.storage.server",
    "generator": "services.generator.server",
    "gateway": "gateway.server",
}
START_ORDER = ["catalog", "storage", "generator", "gateway"]


@dataclass
class Platform:
    """A running set of processes; `ports[name]` is where each listens."""

    env: dict[str, str]
    ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"

    def target(self, name: str) -> str:
        return f"127.0.0.1:{self.ports[name]}"

    def start(self, ports: dict[str, int] | None = None, log_dir: pathlib.Path | None = None) -> Platform:
        """Starts every process; a port of 0 (the default) lets the process pick one."""
        ports = ports or {}
        try:
            for name in START_ORDER:
                self._start_one(name, ports.get(name, 0), log_dir)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_one(self, name: str, port: int, log_dir: pathlib.Path | None) -> None:
        env = {**os.environ, **self.env, f"IMAGEGEN_{name.upper()}_PORT": str(port)}
        for upstream in ("catalog", "storage", "generator"):
            if upstream in self.ports:
                env[f"IMAGEGEN_{upstream.upper()}_TARGET"] = self.target(upstream)
        port_file = pathlib.Path(tempfile.mkstemp(prefix=f"imagegen-{name}-", suffix=".port")[1])
        port_file.unlink()
        env["IMAGEGEN_PORT_FILE"] = str(port_file)
        with open(log_dir / f"{name}.log", "ab") if log_dir else contextlib.nullcontext() as output:
            process = subprocess.Popen(
                [sys.executable, "-m", MODULES[name]],
                env=env,
                cwd=REPO_ROOT,
                stdout=output,
                stderr=subprocess.STDOUT if output else None,
                start_new_session=True,  # Ctrl-C reaches the supervisor, which stops children in order
            )
        self.processes[name] = process
        deadline = time.monotonic() + 60
        while not port_file.exists():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode} before serving")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} did not start within 60s")
            time.sleep(0.05)
        self.ports[name] = int(port_file.read_text())
        port_file.unlink()

    def stop_one(self, name: str, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
        process = self.processes.pop(name, None)
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def stop(self) -> None:
        for name in reversed(START_ORDER):
            self.stop_one(name)
