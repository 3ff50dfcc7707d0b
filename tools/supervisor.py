"""Starts the platform's processes (Envoy, catalog, storage, generator) and stops them by pid.

Used by `make run`, the end-to-end tests and the benchmark, so all three run the same thing. Envoy starts
first: it may listen on port 0, and the services must know its address (IMAGEGEN_PUBLIC_URL) to sign
URLs for it. A service started on port 0 gets a port reserved here first (a bound socket that shares it
with SO_REUSEPORT and never listens), so Envoy can be pointed at it before it runs.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

from gateway import proxy
from gateway.config import UPSTREAM_TARGETS
from services.common.config import PREFIX, REPO_ROOT
from services.common.metrics import PORT_VARIABLES

SERVICE_MODULES = {
    "catalog": "services.catalog.server",
    "storage": "services.storage.server",
    "generator": "services.generator.server",
}
GATEWAY = "gateway"
START_ORDER = [GATEWAY, *SERVICE_MODULES]


def replica_name(service: str, number: int) -> str:
    """A process's name: the service's own for its first replica, `catalog-2` and on for the others."""
    return service if number == 1 else f"{service}-{number}"


def service_of(name: str) -> str:
    return name.split("-")[0]


def _reserve_port() -> socket.socket:
    reservation = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    reservation.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    reservation.bind(("127.0.0.1", 0))
    return reservation


@dataclass
class Platform:
    """A running set of processes; `ports[name]` is where each listens. `replicas` runs more than one
    process of a service (`catalog`, `catalog-2`, ...): every client of it is given all of them."""

    env: dict[str, str]
    replicas: dict[str, int] = field(default_factory=dict)
    # The module each service runs (`bench.floor` puts bare servers in their places).
    modules: dict[str, str] = field(default_factory=lambda: dict(SERVICE_MODULES))
    ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    gateway_admin: str = ""
    # Where Envoy serves its statistics for Prometheus.
    gateway_stats_port: int = 0
    _reservations: list[socket.socket] = field(default_factory=list)
    _gateway_run_dirs: list[pathlib.Path] = field(default_factory=list)
    # Per child that died: crashes in a row, and when it is started again.
    _crashes: dict[str, int] = field(default_factory=dict)
    _revive_at: dict[str, float] = field(default_factory=dict)
    _started_at: dict[str, float] = field(default_factory=dict)

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.ports[GATEWAY]}"

    def target(self, name: str) -> str:
        return f"127.0.0.1:{self.ports[name]}"

    def replica_names(self, service: str) -> list[str]:
        return [replica_name(service, n) for n in range(1, self.replicas.get(service, 1) + 1)]

    def targets(self, service: str) -> str:
        """Every replica of the service, as its clients are given them."""
        return ",".join(self.target(name) for name in self.replica_names(service) if name in self.ports)

    def start(self, ports: dict[str, int] | None = None, log_dir: pathlib.Path | None = None) -> Platform:
        """Starts every process; a port of 0 (the default) lets the process pick one."""
        ports = ports or {}
        try:
            names = [name for service in SERVICE_MODULES for name in self.replica_names(service)]
            for name in names:
                self.ports[name] = ports.get(name) or self._reserve()
            self.start_gateway(ports.get(GATEWAY, 0), log_dir)
            for name in names:
                self._start_one(name, self.ports[name], log_dir)
        except BaseException:
            self.stop()
            raise
        return self

    def _reserve(self) -> int:
        reservation = _reserve_port()
        self._reservations.append(reservation)
        return reservation.getsockname()[1]

    def _child_env(self) -> dict[str, str]:
        env = {**os.environ, **self.env}
        for upstream in SERVICE_MODULES:
            if upstream in self.ports:
                env[PREFIX + UPSTREAM_TARGETS[upstream]] = self.targets(upstream)
        if GATEWAY in self.ports:
            env.setdefault("IMAGEGEN_PUBLIC_URL", self.gateway_url)
        return env

    def _spawn(self, name: str, argv: list[str], env: dict[str, str], log_dir: pathlib.Path | None):
        with open(log_dir / f"{name}.log", "ab") if log_dir else contextlib.nullcontext() as output:
            process = subprocess.Popen(
                argv,
                env=env,
                cwd=REPO_ROOT,
                stdout=output,
                stderr=subprocess.STDOUT if output else None,
                start_new_session=True,  # Ctrl-C reaches the supervisor, which stops children in order
            )
        self.processes[name] = process
        return process

    def start_gateway(self, port: int, log_dir: pathlib.Path | None) -> None:
        """Envoy on `port` (0: its choice, read back from its admin), in front of the services' ports."""
        env = self._child_env()
        env["IMAGEGEN_GATEWAY_PORT"] = str(port)
        if env.get("IMAGEGEN_GATEWAY_ADMIN_PORT", "0") == "0":
            # The stats listener forwards to the admin port, so it is known before Envoy starts.
            env["IMAGEGEN_GATEWAY_ADMIN_PORT"] = str(self._reserve())
        env.setdefault("IMAGEGEN_GATEWAY_STATS_PORT", "0")
        run_dir = pathlib.Path(tempfile.mkdtemp(prefix="imagegen-gateway-"))
        self._gateway_run_dirs.append(run_dir)
        env["IMAGEGEN_VAR_DIR"] = str(run_dir)
        admin_address_path = run_dir / "admin-address"
        env["IMAGEGEN_GATEWAY_ADMIN_ADDRESS_FILE"] = str(admin_address_path)
        if log_dir is not None:
            env.setdefault("IMAGEGEN_GATEWAY_ACCESS_LOG", str(log_dir / "gateway-access.log"))
        process = self._spawn(GATEWAY, [sys.executable, "-m", "gateway.proxy"], env, log_dir)
        self.gateway_admin, listening = proxy.wait_until_serving(
            admin_address_path, alive=lambda: process.poll() is None
        )
        self.ports[GATEWAY] = listening[proxy.PUBLIC_LISTENER]
        self.gateway_stats_port = listening[proxy.STATS_LISTENER]

    def _start_one(self, name: str, port: int, log_dir: pathlib.Path | None) -> None:
        env = self._child_env()
        service = service_of(name)
        env[f"IMAGEGEN_{service.upper()}_PORT"] = str(port)
        if name != service and env.get(PREFIX + PORT_VARIABLES[service]):
            env[PREFIX + PORT_VARIABLES[service]] = "0"  # a metrics port of its own, the kernel's choice
        port_file = pathlib.Path(tempfile.mkstemp(prefix=f"imagegen-{name}-", suffix=".port")[1])
        port_file.unlink()
        env["IMAGEGEN_PORT_FILE"] = str(port_file)
        process = self._spawn(name, [sys.executable, "-m", self.modules[service]], env, log_dir)
        deadline = time.monotonic() + 60
        while not port_file.exists():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode} before serving")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} did not start within 60s")
            time.sleep(0.05)
        self.ports[name] = int(port_file.read_text())
        port_file.unlink()

    def revive(self, log_dir: pathlib.Path | None) -> list[str]:
        """Starts again, where Envoy and the other services look for it, each child that exited: after
        1 s, doubling with each crash in a row up to 30 s (a child that stayed up a minute starts the
        count again). Answers a line about each thing it did, for the log."""
        said = []
        now = time.monotonic()
        for name, process in list(self.processes.items()):
            if process.poll() is None:
                if now - self._started_at.get(name, now) > 60:
                    self._crashes.pop(name, None)
                continue
            if name not in self._revive_at:
                crashes = self._crashes.get(name, 0)
                delay = min(2.0**crashes, 30.0)
                self._revive_at[name] = now + delay
                said.append(f"{name} exited with {process.returncode}; starting it again in {delay:g} s")
                continue
            if now < self._revive_at[name]:
                continue
            del self._revive_at[name]
            self._crashes[name] = self._crashes.get(name, 0) + 1
            try:
                if name == GATEWAY:
                    self.start_gateway(self.ports[GATEWAY], log_dir)
                else:
                    self._start_one(name, self.ports[name], log_dir)
            except (RuntimeError, TimeoutError) as exc:
                said.append(f"{name} did not start again: {exc}")
                continue
            self._started_at[name] = time.monotonic()
            said.append(f"{name} started again")
        return said

    def restart(
        self, name: str, log_dir: pathlib.Path | None = None, sig: int = signal.SIGTERM, down_for: float = 0
    ) -> None:
        """Stops one service and, `down_for` seconds later, starts it again where Envoy and the other
        services look for it."""
        self.stop_one(name, sig)
        time.sleep(down_for)
        self._start_one(name, self.ports[name], log_dir)

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
        for name in sorted(
            self.processes, key=lambda name: START_ORDER.index(service_of(name)), reverse=True
        ):
            self.stop_one(name)
        for reservation in self._reservations:
            reservation.close()
        self._reservations.clear()
        for run_dir in self._gateway_run_dirs:
            shutil.rmtree(run_dir, ignore_errors=True)
        self._gateway_run_dirs.clear()
