"""The console's files (`console/` at the repository's root: plain HTML, CSS and ES modules, no build
step), read once at start and served at `/console/` with headers that keep the page to its own origin.
Only the files found there are served; any other path is not found."""

from __future__ import annotations

import mimetypes
import pathlib
from dataclasses import dataclass

from services.common.errors import NotFound

_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png"}  # fmt: skip
INDEX = "index.html"


@dataclass(frozen=True)
class ConsoleFile:
    data: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...]


def security_headers(image_origins: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """Scripts, styles and requests from this origin only; images also from the storage origins (an S3
    bucket's public address) and data URIs (previews)."""
    images = " ".join(("'self'", "data:", "blob:", *image_origins))
    policy = (
        f"default-src 'self'; img-src {images}; script-src 'self'; style-src 'self'; connect-src 'self';"
        " object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    )
    return (
        ("content-security-policy", policy),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        # A new console ships with a new platform: browsers ask again each load (an ETag-less 200 is a
        # few KB).
        ("cache-control", "no-cache"),
    )


class ConsoleFiles:
    def __init__(self, directory: pathlib.Path, image_origins: tuple[str, ...] = ()):
        headers = security_headers(image_origins)
        self.files: dict[str, ConsoleFile] = {}
        if directory.is_dir():
            for path in sorted(directory.rglob("*")):
                if path.is_file() and not path.name.startswith("."):
                    kind = (
                        _TYPES.get(path.suffix)
                        or mimetypes.guess_type(path.name)[0]
                        or "application/octet-stream"
                    )
                    name = path.relative_to(directory).as_posix()
                    self.files[name] = ConsoleFile(path.read_bytes(), kind, headers)

    def get(self, path: str) -> ConsoleFile:
        found = self.files.get(path.strip("/") or INDEX)
        if found is None:
            raise NotFound(f"the console has no file {path[:100]!r}")
        return found
