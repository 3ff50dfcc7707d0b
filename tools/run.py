"""`make run`: embedded Postgres under var/, Envoy (the gateway) and the three services, on 127.0.0.1.

Ctrl-C stops everything cleanly; data stays under var/ for the next run.
"""

from __future__ import annotations

import os
import secrets
import signal
import sys
import time

from gateway.config import GatewayConfig
from services.common.config import DEFAULT_PORTS, Env, var_dir
from services.common.metrics import DEFAULT_METRICS_PORTS, PORT_VARIABLES

from .embedded_pg import EmbeddedPostgres
from .supervisor import Platform

PG_PORT = 5433


# What `make run` allows model servers and image URLs to reach besides public addresses.
LOOPBACK_NETWORKS = "127.0.0.0/8,::1/128"


def bootstrap_key(env: Env) -> str:
    """The admin key: IMAGEGEN_BOOTSTRAP_API_KEY, else one made on the first run and kept in var/."""
    given = env.str("BOOTSTRAP_API_KEY")
    if given:
        return given
    path = var_dir(env) / "bootstrap-api-key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("sk_" + secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def main() -> int:
    env = Env()
    var = var_dir(env)
    var.mkdir(parents=True, exist_ok=True)
    key = bootstrap_key(env)
    postgres = EmbeddedPostgres(var / "postgres", port=env.int("EMBEDDED_PG_PORT", PG_PORT))
    print(f"starting Postgres on 127.0.0.1:{postgres.port} (data in {postgres.data_dir})", flush=True)
    postgres.start()
    database_url = env.str("DATABASE_URL") or postgres.create_database("imagegen")
    (var / "logs").mkdir(exist_ok=True)
    ports = {name: env.int(f"{name.upper()}_PORT", port) for name, port in DEFAULT_PORTS.items()}
    metrics_ports = {
        service: env.str(PORT_VARIABLES[service], str(port))
        for service, port in DEFAULT_METRICS_PORTS.items()
    }
    stats_port = env.int("GATEWAY_STATS_PORT", GatewayConfig.stats_port)
    platform_env = {
        "IMAGEGEN_DATABASE_URL": database_url,
        "IMAGEGEN_BOOTSTRAP_API_KEY": key,
        "IMAGEGEN_VAR_DIR": str(var),
        # A developer's own model server usually runs on this machine.
        "IMAGEGEN_ALLOWED_NETWORKS": env.str("ALLOWED_NETWORKS", LOOPBACK_NETWORKS),
        **{f"IMAGEGEN_{PORT_VARIABLES[service]}": port for service, port in metrics_ports.items()},
        "IMAGEGEN_GATEWAY_STATS_PORT": str(stats_port),
    }
    if env.str("PUBLIC_URL"):
        platform_env["IMAGEGEN_PUBLIC_URL"] = env.str("PUBLIC_URL")
    platform = Platform(env=platform_env)
    # A plain flag: an Event set from a signal handler can deadlock on the Event's own lock.
    stop_requested: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, _frame: stop_requested.append(signum))
    signal.signal(signal.SIGTERM, lambda signum, _frame: stop_requested.append(signum))
    try:
        platform.start(ports=ports, log_dir=var / "logs")
        url = platform.gateway_url
        print(
            f"""
imagegen is running at {url}  (logs in {var / "logs"}; Ctrl-C stops it)
Console: {url}/console/  (paste the API key below)
Metrics: {", ".join(f"http://127.0.0.1:{p}/metrics ({service})" for service, p in metrics_ports.items())}
Envoy's statistics: http://127.0.0.1:{platform.gateway_stats_port}/stats/prometheus
Envoy's admin (loopback only): http://{platform.gateway_admin}
API key: {key}

  curl -s {url}/api/images/generations \\
    -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\
    -d '{{"prompt": "a misty lake at sunset", "user": "alice", "width": 512, "height": 512}}'

  curl -s '{url}/api/images/generations?user=alice' -H 'Authorization: Bearer {key}'
""",
            flush=True,
        )
        while not stop_requested:
            time.sleep(0.5)
            # A child that crashes is started again (with backoff), not the whole platform stopped.
            for line in platform.revive(var / "logs"):
                print(line, file=sys.stderr, flush=True)
    finally:
        print("stopping...", flush=True)
        platform.stop()
        postgres.stop()
        print("stopped; data is kept in", var, flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
