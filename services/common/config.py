"""Environment configuration shared by every service: `IMAGEGEN_*` variables with working defaults."""

from __future__ import annotations

import os
import pathlib
import secrets
import time
from collections.abc import Mapping

PREFIX = "IMAGEGEN_"
# Under `make run` everything lives in the checkout's `var/`.
REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


class ConfigError(ValueError):
    pass


class Env:
    """Typed reads of `IMAGEGEN_<NAME>` from a mapping (os.environ unless a test passes its own)."""

    def __init__(self, environ: Mapping[str, str] | None = None):
        self._environ = os.environ if environ is None else environ

    def str(self, name: str, default: str = "") -> str:
        return self._environ.get(PREFIX + name, default)

    def int(self, name: str, default: int) -> int:
        raw = self._environ.get(PREFIX + name)
        if raw is None or raw == "":
            return default
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{PREFIX}{name} must be an integer, got {raw!r}") from None

    def float(self, name: str, default: float) -> float:
        raw = self._environ.get(PREFIX + name)
        if raw is None or raw == "":
            return default
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{PREFIX}{name} must be a number, got {raw!r}") from None

    def bool(self, name: str, default: bool) -> bool:
        raw = self._environ.get(PREFIX + name)
        if raw is None or raw == "":
            return default
        lowered = raw.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{PREFIX}{name} must be true or false, got {raw!r}")

    def path(self, name: str, default: pathlib.Path | None) -> pathlib.Path | None:
        raw = self._environ.get(PREFIX + name)
        return pathlib.Path(raw) if raw else default


def replica_addresses(targets: str) -> tuple[tuple[str, int], ...]:
    """The (host, port) of each replica a service's target names: `host:port`, or several of them
    comma-separated (an IPv6 host in brackets)."""
    addresses = []
    for target in (item.strip() for item in targets.split(",")):
        if not target:
            continue
        host, _, port = target.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"{targets!r}: {target!r} is not host:port")
        addresses.append((host.strip("[]"), int(port)))
    return tuple(addresses)


def var_dir(env: Env) -> pathlib.Path:
    return env.path("VAR_DIR", REPO_ROOT / "var")


DEFAULT_PORTS = {"gateway": 8080, "generator": 50051, "catalog": 50052, "storage": 50053}


def persistent_secret(path: pathlib.Path) -> str:
    """A secret made once and kept (signed URLs and internal calls keep working across restarts of
    `make run`). Services starting together agree on it: the first to create the file wins."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):
            text = path.read_text().strip()
            if text:
                return text
            time.sleep(0.02)  # its creator is writing it
        raise ConfigError(f"{path} is empty; delete it to make a new one") from None
    secret = secrets.token_hex(32)
    with os.fdopen(descriptor, "w") as file:
        file.write(secret)
    return secret
