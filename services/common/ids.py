"""Resource ids with Meteron's prefixes (img_, ima_, pro_, mod_, srv_, key_); msg_ for webhook messages,
upl_ for uploaded input images."""

from __future__ import annotations

import re
import secrets

PREFIXES = {
    "generation": "img",
    "image": "ima",
    "project": "pro",
    "model": "mod",
    "server": "srv",
    "key": "key",
    "webhook": "msg",
    "worker": "wrk",
    "upload": "upl",
}
_ID_BODY = re.compile(r"^[0-9a-z]{20}$")
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def new_id(kind: str) -> str:
    return f"{PREFIXES[kind]}_" + "".join(secrets.choice(_ALPHABET) for _ in range(20))


def is_id(kind: str, value: str) -> bool:
    prefix, _, body = value.partition("_")
    return prefix == PREFIXES[kind] and bool(_ID_BODY.match(body))
