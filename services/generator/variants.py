"""An image's variants: WebP copies at the fixed THUMBNAIL_WIDTHS below its own width, for galleries.
Made once, when the image is stored, each signed (where the image is) with a manifest that records the
resize and names the original as its parent."""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image

from services.common.vocabulary import VARIANT_TYPE, variant_widths

# Thumbnails are looked at, not kept: a quality that keeps a 512 px photo near 30 KB.
WEBP_QUALITY = 80


@dataclass(frozen=True)
class Variant:
    width: int
    height: int
    data: bytes
    content_type: str = VARIANT_TYPE


def variant_height(width: int, original_width: int, original_height: int) -> int:
    return max(1, round(original_height * width / original_width))


def make_variants(data: bytes, original_width: int, original_height: int) -> list[Variant]:
    """The image at each variant width below its own, as WebP. Blocking: run it in a thread."""
    widths = variant_widths(original_width)
    if not widths:
        return []
    variants = []
    with Image.open(io.BytesIO(data)) as image:
        source = image.convert("RGBA" if image.mode in ("RGBA", "LA", "P") else "RGB")
    for width in widths:
        height = variant_height(width, original_width, original_height)
        out = io.BytesIO()
        source.resize((width, height), Image.Resampling.LANCZOS).save(
            out, "WEBP", quality=WEBP_QUALITY, method=4
        )
        variants.append(Variant(width, height, out.getvalue()))
    return variants
