"""A small client of imagegen's public REST API, with no dependency beyond the standard library.

    from imagegen_client import ImageGen
    client = ImageGen("http://127.0.0.1:8080", "sk_…")      # or IMAGEGEN_URL / IMAGEGEN_API_KEY
    generation = client.generate("a lighthouse at dusk", model="procedural", n=2)
    for image in generation.images:
        print(image.url)

Every create carries an `Idempotency-Key` of its own, so the client retries it safely: 503 (the
platform's UNAVAILABLE) and 429 are retried with backoff, honouring `Retry-After`.
"""

from __future__ import annotations

from .client import ApiError, Generation, Image, ImageGen, Unreachable, Upload

__all__ = ["ApiError", "Generation", "Image", "ImageGen", "Unreachable", "Upload"]
