"""Reading the caller's API key from gRPC metadata (`authorization: Bearer <key>`)."""

from __future__ import annotations

from collections.abc import Iterable

from .errors import Unauthenticated

_MISSING = "missing API key; send `Authorization: Bearer <key>`"
# What a publishable key (made for pages, for one end user) is refused with.
PUBLISHABLE_ONLY = (
    "a publishable key can only create, list, get and watch generations of the user it was made for;"
    " use a secret key"
)
PUBLISHABLE_NO_CALLBACK = "a publishable key cannot set callbackUrl; use a secret key"


def bearer_key(metadata: Iterable[tuple[str, str | bytes]] | None) -> str:
    for key, value in metadata or ():
        if key == "authorization":
            scheme, _, token = str(value).partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not token:
                raise Unauthenticated("the Authorization header must be `Bearer <key>`")
            return token
    raise Unauthenticated(_MISSING)
