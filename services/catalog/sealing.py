"""Secrets the catalog keeps for tenants (model servers' API keys, projects' webhook secrets) are sealed
at rest with AES-256-GCM under a key the deployment provides: a copy of the database alone gives none
of them away.

IMAGEGEN_SECRETS_KEYS lists the keys, comma-separated, newest first (any strings; each is hashed to an
AES key); `make run` and the tests make one under the var folder. Rotation: put the new key first and
keep the old ones after it; at start the catalog seals every secret again under the first key, after
which the old ones can be dropped. A value written before sealing existed is read as it is and sealed
at the next start.
"""

from __future__ import annotations

import base64
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from services.common.config import ConfigError, Env, persistent_secret, var_dir

_PREFIX = "sealed:v1:"


class Sealer:
    def __init__(self, secrets: list[str]):
        if not secrets:
            raise ConfigError("IMAGEGEN_SECRETS_KEYS names no key")
        keys = [hashlib.sha256(secret.encode()).digest() for secret in secrets]
        self._keys = {hashlib.sha256(key).hexdigest()[:8]: AESGCM(key) for key in keys}
        self._current = next(iter(self._keys))

    @classmethod
    def from_env(cls, env: Env) -> Sealer:
        listed = [key.strip() for key in env.str("SECRETS_KEYS").split(",") if key.strip()]
        return cls(listed or [persistent_secret(var_dir(env) / "secrets-key")])

    def seal(self, secret: str) -> str:
        if not secret:
            return ""
        nonce = os.urandom(12)
        sealed = self._keys[self._current].encrypt(nonce, secret.encode(), _PREFIX.encode())
        return f"{_PREFIX}{self._current}:{base64.b64encode(nonce + sealed).decode()}"

    def open(self, value: str) -> str:
        if not value.startswith(_PREFIX):
            return value  # written before secrets were sealed; the next start seals it
        key_id, _, payload = value[len(_PREFIX) :].partition(":")
        aead = self._keys.get(key_id)
        if aead is None:
            raise ConfigError(f"a secret is sealed with key {key_id}, which IMAGEGEN_SECRETS_KEYS lacks")
        raw = base64.b64decode(payload)
        try:
            return aead.decrypt(raw[:12], raw[12:], _PREFIX.encode()).decode()
        except InvalidTag:
            raise ConfigError(f"a secret sealed with key {key_id} does not open: altered") from None

    def stale(self, value: str) -> bool:
        """Whether the value should be sealed again (plain, or under an older key)."""
        return bool(value) and not value.startswith(f"{_PREFIX}{self._current}:")
