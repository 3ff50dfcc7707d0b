"""Content Credentials (C2PA): the worker signs what it makes, and anyone's image can be verified.

The C2PA SDK (PyPI `c2pa-python`) does the signing and the validation; this module decides what a
manifest says about a generation and how validation reads to a client: `valid`, `untrusted`,
`invalid` or `absent`.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import threading
import uuid
from dataclasses import dataclass, field

import c2pa

from services.common.errors import InvalidArgument

log = logging.getLogger("imagegen.generator.provenance")

CLAIM_GENERATOR = "imagegen"
IPTC_SOURCE_TYPES = "http://cv.iptc.org/newscodes/digitalsourcetype/"
# What made an image, by provider: a trained model, or (the built-in renderer) an algorithm that learned
# from no sampled content. A manifest that claimed otherwise would be false provenance.
TRAINED = IPTC_SOURCE_TYPES + "trainedAlgorithmicMedia"
ALGORITHMIC = IPTC_SOURCE_TYPES + "algorithmicMedia"
UNTRAINED_PROVIDERS = {"procedural"}

VALID, UNTRUSTED, INVALID, ABSENT = "valid", "untrusted", "invalid", "absent"
# The SDK's validation states, as this API names them.
_STATES = {"Trusted": VALID, "Valid": UNTRUSTED, "Invalid": INVALID}
_MESSAGES = {
    VALID: "the manifest is intact and its signer chains to a trust anchor of this platform",
    UNTRUSTED: "the manifest is intact, but its signer does not chain to a trust anchor of this platform",
    INVALID: "the image or its manifest was altered, or its signature does not verify",
    ABSENT: "the image carries no C2PA manifest",
}
_VERIFIABLE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif", "image/avif", "image/tiff")


@dataclass(frozen=True)
class SigningIdentity:
    """A certificate chain (signer first) and its private key, both PEM."""

    certificate_chain: bytes
    private_key: bytes
    alg: c2pa.C2paSigningAlg
    # An RFC 3161 timestamp authority; none by default, since images must sign with no network.
    timestamp_url: str | None = None


@dataclass(frozen=True)
class Creation:
    """What a manifest says about how an image was made."""

    generation_id: str
    index: int
    model: str
    provider: str
    upstream_model: str
    server_id: str
    prompt: str
    # The images it was made from, in the request's order: (role, content type, bytes). The first is
    # the one edited (its parent); the others (masks, control images) were inputs to it.
    ingredients: tuple[tuple[str, str, bytes], ...] = ()


@dataclass(frozen=True)
class Verification:
    sha256: str
    state: str
    message: str
    manifest_label: str = ""
    signer_issuer: str = ""
    signer_common_name: str = ""
    signer_alg: str = ""
    manifest_store: dict = field(default_factory=dict)
    failures: tuple[str, ...] = ()


class ContentCredentials:
    def __init__(
        self,
        identity: SigningIdentity,
        trust_anchors: str | None,
        include_prompt: bool = False,
        version: str = "",
    ):
        self.identity = identity
        self.include_prompt = include_prompt
        self.version = version
        # No thumbnail (it would double a small image's size) and no verify-after-sign (it would double
        # the cost): the bytes were made here a moment ago, by the code that signs them.
        self._sign_context = c2pa.Context.from_dict(
            {"builder": {"thumbnail": {"enabled": False}}, "verify": {"verify_after_sign": False}}
        )
        verify = {"remote_manifest_fetch": False, "ocsp_fetch": False, "verify_trust": True}
        settings: dict = {"verify": verify}
        if trust_anchors:
            settings["trust"] = {"trust_anchors": trust_anchors}
        self._verify_context = c2pa.Context.from_dict(settings)
        # A Signer is reusable but holds native state; one per thread keeps them apart.
        self._signers = threading.local()

    def _signer(self) -> c2pa.Signer:
        signer = getattr(self._signers, "signer", None)
        if signer is None:
            info = c2pa.C2paSignerInfo(
                self.identity.alg,
                self.identity.certificate_chain,
                self.identity.private_key,
                self.identity.timestamp_url,
            )
            signer = self._signers.signer = c2pa.Signer.from_info(info)
        return signer

    def manifest(self, creation: Creation, content_type: str, label: str) -> dict:
        parameters = {
            "imagegen.generation": creation.generation_id,
            "imagegen.image_index": creation.index,
            "imagegen.model": creation.model,
            "imagegen.provider": creation.provider,
            "imagegen.upstream_model": creation.upstream_model,
            "imagegen.server": creation.server_id,
            "imagegen.prompt_sha256": hashlib.sha256(creation.prompt.encode()).hexdigest(),
        }
        if self.include_prompt:
            parameters["imagegen.prompt"] = creation.prompt
        source_type = ALGORITHMIC if creation.provider in UNTRAINED_PROVIDERS else TRAINED
        return {
            "label": label,
            "claim_generator_info": [{"name": CLAIM_GENERATOR, "version": self.version}],
            "title": f"{creation.generation_id}-{creation.index}",
            "format": content_type,
            "assertions": [
                {
                    "label": "c2pa.actions.v2",
                    "data": {
                        "actions": [
                            {
                                # Made from an image: an edit of it (its parent ingredient), which the
                                # SDK opens first (`sign` sets the edit intent).
                                "action": "c2pa.edited" if creation.ingredients else "c2pa.created",
                                "digitalSourceType": source_type,
                                "softwareAgent": {"name": creation.model},
                                "parameters": parameters,
                            }
                        ]
                    },
                }
            ],
        }

    def sign(self, data: bytes, content_type: str, creation: Creation) -> tuple[bytes, str]:
        """The image with its manifest embedded, and the manifest's label. Blocking: run it in a thread."""
        # Chosen here, so the label is known without reading the manifest back; random, so each image's
        # bytes, and so its sha256 and permanent URL, are its own and cannot be guessed.
        label = f"urn:c2pa:{uuid.uuid4()}"
        out = io.BytesIO()
        with c2pa.Builder(
            self.manifest(creation, content_type, label), context=self._sign_context
        ) as builder:
            for index, (role, ingredient_type, ingredient) in enumerate(creation.ingredients):
                ingredient_json = {
                    "title": f"{creation.generation_id}-input-{index}-{role}",
                    "relationship": "parentOf" if index == 0 else "inputTo",
                }
                builder.add_ingredient(ingredient_json, ingredient_type, io.BytesIO(ingredient))
            if creation.ingredients:
                builder.set_intent(c2pa.C2paBuilderIntent.EDIT)
            builder.sign(self._signer(), content_type, io.BytesIO(data), out)
        return out.getvalue(), label

    def sign_resize(
        self, data: bytes, content_type: str, original: bytes, original_type: str, title: str, width: int
    ) -> bytes:
        """A smaller copy of a signed image, its manifest recording the resize with the original (and so
        the original's own manifest) as its parent. Blocking: run it in a thread."""
        manifest = {
            "label": f"urn:c2pa:{uuid.uuid4()}",
            "claim_generator_info": [{"name": CLAIM_GENERATOR, "version": self.version}],
            "title": f"{title}-w{width}",
            "format": content_type,
            "assertions": [
                {
                    "label": "c2pa.actions.v2",
                    "data": {
                        "actions": [{"action": "c2pa.resized", "parameters": {"imagegen.width": width}}]
                    },
                }
            ],
        }
        out = io.BytesIO()
        with c2pa.Builder(manifest, context=self._sign_context) as builder:
            builder.add_ingredient(
                {"title": title, "relationship": "parentOf"}, original_type, io.BytesIO(original)
            )
            builder.set_intent(c2pa.C2paBuilderIntent.EDIT)
            builder.sign(self._signer(), content_type, io.BytesIO(data), out)
        return out.getvalue()

    def verify(self, data: bytes, content_type: str = "") -> Verification:
        """Blocking: run it in a thread."""
        digest = hashlib.sha256(data).hexdigest()
        content_type = content_type.split(";", 1)[0].strip().lower()
        if content_type in ("", "application/octet-stream"):
            content_type = sniff_image_type(data)
        if content_type not in _VERIFIABLE_TYPES:
            raise InvalidArgument(
                f"send the image itself with its Content-Type ({', '.join(_VERIFIABLE_TYPES)});"
                f" got {content_type or 'bytes of no known image type'}",
                field="content_type",
            )
        try:
            reader = c2pa.Reader.try_create(content_type, io.BytesIO(data), context=self._verify_context)
        except c2pa.C2paError as exc:
            # A manifest is there but cannot be read: cut, or its boxes were changed.
            return Verification(digest, INVALID, f"{_MESSAGES[INVALID]} ({exc})")
        if reader is None:
            return Verification(digest, ABSENT, _MESSAGES[ABSENT])
        with reader:
            store = json.loads(reader.json())
            state = _STATES.get(reader.get_validation_state() or "", INVALID)
        label = store.get("active_manifest", "")
        active = store.get("manifests", {}).get(label, {})
        signature = active.get("signature_info", {})
        results = store.get("validation_results", {}).get("activeManifest", {})
        failures = tuple(item.get("code", "") for item in results.get("failure", []))
        return Verification(
            sha256=digest,
            state=state,
            message=_MESSAGES[state],
            manifest_label=label,
            signer_issuer=signature.get("issuer", ""),
            signer_common_name=signature.get("common_name", ""),
            signer_alg=signature.get("alg", ""),
            manifest_store=store,
            failures=failures,
        )


def sniff_image_type(data: bytes) -> str:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return ""
