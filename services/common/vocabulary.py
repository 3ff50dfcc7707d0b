"""The platform's words, written once: every service checks against these, and the README and the
protos' comments describe them."""

from __future__ import annotations

import re

# A generation's life: `pending` in the queue, `processing` on a server, then one of the terminal three.
STATUSES = ("pending", "processing", "completed", "failed", "cancelled")
TERMINAL_STATUSES = ("completed", "failed", "cancelled")
# A model server may answer more images than asked (ControlNet returns its control map, then the
# result): all are kept, in the server's order, up to this many per image asked. Limits and credits
# count what was asked.
MAX_OUTPUTS_PER_IMAGE = 2
# The common fields of a generation under the names model servers use in their own requests: read
# from a model-native `input` where an app put them there, written into it where it gave them apart.
COMMON_NATIVE_FIELDS = ("prompt", "negative_prompt", "width", "height", "seed")
# A model server's own count of images: Replicate's, AUTOMATIC1111's (multiplied), OpenAI's.
NATIVE_COUNT_FIELDS = (("num_outputs",), ("batch_size", "n_iter"), ("n",))
# What an input image given inside `input` is replaced by in the stored request; the index is into the
# generation's input images.
INPUT_REFERENCE = "imagegen:input/{index}"
# What a generation's webhook may be sent for; a create that names none gets `completed` only.
WEBHOOK_EVENTS = ("start", "progress", "completed")
# Queue priorities, lowest first.
PRIORITIES = ("low", "medium", "high")
DEFAULT_PRIORITY = "medium"
# What a model's servers speak; the generator has one provider for each (a test holds them together).
PROVIDERS = ("procedural", "openai", "automatic1111", "replicate", "comfyui")
# A stored image's key: the hex sha256 of its bytes and its type's extension; or a variant's, its
# original's key and its width (`<sha256>.png.w256.webp`).
STORAGE_KEY = re.compile(r"^[0-9a-f]{64}\.(png|jpg|webp|gif)(\.w[0-9]{2,4}\.webp)?$")
# The widths of an image's variants (WebP thumbnails): made once, when the image is stored, for each
# width below the image's own; stored under keys derived from the original's, swept and erased with it.
THUMBNAIL_WIDTHS = (256, 512)
VARIANT_TYPE = "image/webp"
_VARIANT_KEY = re.compile(r"^([0-9a-f]{64}\.(?:png|jpg|webp|gif))\.w[0-9]{2,4}\.webp$")
EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}


def storage_key(sha256_hex: str, content_type: str) -> str:
    return f"{sha256_hex}.{EXTENSIONS[content_type]}"


def variant_key(original_key: str, width: int) -> str:
    return f"{original_key}.w{width}.{EXTENSIONS[VARIANT_TYPE]}"


def variant_widths(original_width: int) -> list[int]:
    """The widths an image of this width has variants at."""
    return [width for width in THUMBNAIL_WIDTHS if width < original_width]


def variant_keys(original_key: str) -> list[str]:
    """Every key a variant of this image could be stored under."""
    return [variant_key(original_key, width) for width in THUMBNAIL_WIDTHS]


def original_key(key: str) -> str:
    """The key of the image a variant was made from; any other key itself."""
    found = _VARIANT_KEY.match(key)
    return found.group(1) if found else key


# Images up to this size are stored in one unary call, several at once up to the batch size; larger
# ones stream in chunks. A batch stays under gRPC's default 4 MiB message, with room for the envelope.
SMALL_OBJECT_BYTES = 1024 * 1024
SMALL_BATCH_BYTES = 3 * 1024 * 1024
