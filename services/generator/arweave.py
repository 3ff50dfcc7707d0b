"""Arweave, spoken directly: JWK wallets, format-2 transactions with their chunked data roots and proofs,
and an Arweave node's HTTP API.

Everything here follows arweave-js, the reference client, byte for byte: the deep hash over the signed
fields, RSA-PSS/SHA-256 signatures, 256 KiB chunks with the same rebalancing of the last two, and the
same Merkle tree and proofs. The test suite compares them with arweave-js itself.
"""

from __future__ import annotations

import base64
import hashlib
import json
import pathlib
from dataclasses import dataclass, field

import aiohttp
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

MAX_CHUNK_SIZE = 256 * 1024
MIN_CHUNK_SIZE = 32 * 1024
NOTE_SIZE = 32
# What arweave-js's web driver signs with; nodes accept any salt length.
PSS_SALT_LENGTH = 32


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _int(text: str) -> int:
    return int.from_bytes(unb64url(text), "big")


class WalletError(ValueError):
    pass


@dataclass(frozen=True)
class Wallet:
    key: rsa.RSAPrivateKey
    # The RSA modulus, base64url: a transaction's `owner`.
    owner: str

    @property
    def address(self) -> str:
        return b64url(hashlib.sha256(unb64url(self.owner)).digest())

    @classmethod
    def from_jwk(cls, jwk: dict) -> Wallet:
        try:
            if jwk.get("kty") != "RSA":
                raise WalletError(f"an Arweave wallet is an RSA JWK; this one has kty {jwk.get('kty')!r}")
            public = rsa.RSAPublicNumbers(_int(jwk["e"]), _int(jwk["n"]))
            private = rsa.RSAPrivateNumbers(
                p=_int(jwk["p"]),
                q=_int(jwk["q"]),
                d=_int(jwk["d"]),
                dmp1=_int(jwk["dp"]),
                dmq1=_int(jwk["dq"]),
                iqmp=_int(jwk["qi"]),
                public_numbers=public,
            )
            key = private.private_key()
        except KeyError as exc:
            raise WalletError(f"the wallet JWK has no {exc.args[0]!r}: it must be a private key") from exc
        except (TypeError, ValueError) as exc:
            if isinstance(exc, WalletError):
                raise
            raise WalletError(f"the wallet JWK is not a valid RSA private key: {exc}") from exc
        return cls(key, jwk["n"])

    @classmethod
    def load(cls, path: pathlib.Path) -> Wallet:
        try:
            jwk = json.loads(path.read_text())
        except OSError as exc:
            raise WalletError(f"cannot read the Arweave wallet {path}: {exc.strerror}") from exc
        except ValueError as exc:
            raise WalletError(f"the Arweave wallet {path} is not JSON: {exc}") from exc
        if not isinstance(jwk, dict):
            raise WalletError(f"the Arweave wallet {path} is not a JWK object")
        return cls.from_jwk(jwk)

    def sign(self, message: bytes) -> bytes:
        return self.key.sign(
            message,
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=PSS_SALT_LENGTH),
            hashes.SHA256(),
        )


def deep_hash(item: bytes | list) -> bytes:
    """Arweave's deep hash (SHA-384), which is what a format-2 transaction's signature covers."""
    if isinstance(item, list):
        acc = hashlib.sha384(b"list" + str(len(item)).encode()).digest()
        for child in item:
            acc = hashlib.sha384(acc + deep_hash(child)).digest()
        return acc
    tag = hashlib.sha384(b"blob" + str(len(item)).encode()).digest()
    return hashlib.sha384(tag + hashlib.sha384(item).digest()).digest()


# -- data: chunks, Merkle root and proofs -----------------------------------------------------------


def _sha256(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()


def _note(value: int) -> bytes:
    return value.to_bytes(NOTE_SIZE, "big")


@dataclass(frozen=True)
class Chunk:
    min_byte_range: int
    max_byte_range: int
    # Where the chunk ends, less one: what a node indexes its proof by.
    offset: int
    # The chunk's Merkle path from the data root.
    proof: bytes


@dataclass
class _Node:
    id: bytes
    max_byte_range: int
    # Branches only.
    byte_range: int = 0
    children: tuple[_Node, _Node] | None = None
    # Leaves only.
    data_hash: bytes = b""


def _chunk_ranges(size: int) -> list[tuple[int, int]]:
    """Chunk boundaries as arweave-js draws them: 256 KiB each, except that a remainder under 32 KiB is
    avoided by splitting the last two chunks evenly. Data of an exact multiple of 256 KiB ends with an
    empty chunk, which counts in the root but is never uploaded."""
    ranges, cursor, rest = [], 0, size
    while rest >= MAX_CHUNK_SIZE:
        chunk_size = MAX_CHUNK_SIZE
        following = rest - MAX_CHUNK_SIZE
        if 0 < following < MIN_CHUNK_SIZE:
            chunk_size = -(-rest // 2)
        ranges.append((cursor, cursor + chunk_size))
        cursor += chunk_size
        rest -= chunk_size
    ranges.append((cursor, cursor + rest))
    return ranges


def _proofs(node: _Node, path: bytes, out: list[tuple[_Node, bytes]]) -> None:
    if node.children is None:
        out.append((node, path + node.data_hash + _note(node.max_byte_range)))
        return
    left, right = node.children
    partial = path + left.id + right.id + _note(node.byte_range)
    _proofs(left, partial, out)
    _proofs(right, partial, out)


def transaction_chunks(data: bytes) -> tuple[bytes, list[Chunk]]:
    """The data root, and the chunks to upload with their proofs."""
    layer = []
    for start, end in _chunk_ranges(len(data)):
        data_hash = _sha256(data[start:end])
        layer.append(_Node(_sha256(_sha256(data_hash), _sha256(_note(end))), end, data_hash=data_hash))
    while len(layer) > 1:
        paired = []
        for i in range(0, len(layer), 2):
            if i + 1 == len(layer):
                paired.append(layer[i])  # An odd node out moves up a layer as it is.
                continue
            left, right = layer[i], layer[i + 1]
            paired.append(
                _Node(
                    _sha256(_sha256(left.id), _sha256(right.id), _sha256(_note(left.max_byte_range))),
                    right.max_byte_range,
                    byte_range=left.max_byte_range,
                    children=(left, right),
                )
            )
        layer = paired
    root = layer[0]
    leaves: list[tuple[_Node, bytes]] = []
    _proofs(root, b"", leaves)
    ranges = _chunk_ranges(len(data))
    chunks = [
        Chunk(start, end, end - 1, proof) for (start, end), (_, proof) in zip(ranges, leaves, strict=True)
    ]
    if chunks[-1].max_byte_range == chunks[-1].min_byte_range:
        chunks.pop()
    return root.id, chunks


# -- transactions -----------------------------------------------------------------------------------


@dataclass
class Transaction:
    """A format-2 transaction. `to_json` prints it as arweave-js does (without data)."""

    owner: str
    last_tx: str
    reward: str
    data_size: str
    data_root: str
    tags: list[tuple[str, str]] = field(default_factory=list)
    target: str = ""
    quantity: str = "0"
    format: int = 2
    signature: str = ""
    id: str = ""

    def signature_data(self) -> bytes:
        return deep_hash(
            [
                str(self.format).encode(),
                unb64url(self.owner),
                unb64url(self.target),
                self.quantity.encode(),
                self.reward.encode(),
                unb64url(self.last_tx),
                [[name.encode(), value.encode()] for name, value in self.tags],
                self.data_size.encode(),
                unb64url(self.data_root),
            ]
        )

    def sign(self, wallet: Wallet) -> None:
        signature = wallet.sign(self.signature_data())
        self.signature = b64url(signature)
        self.id = b64url(hashlib.sha256(signature).digest())

    def to_json(self) -> dict:
        return {
            "format": self.format,
            "id": self.id,
            "last_tx": self.last_tx,
            "owner": self.owner,
            "tags": [{"name": b64url(n.encode()), "value": b64url(v.encode())} for n, v in self.tags],
            "target": self.target,
            "quantity": self.quantity,
            "data_size": self.data_size,
            "data_root": self.data_root,
            "reward": self.reward,
            "signature": self.signature,
        }

    @classmethod
    def from_json(cls, raw: dict) -> Transaction:
        return cls(
            owner=raw["owner"],
            last_tx=raw["last_tx"],
            reward=raw["reward"],
            data_size=raw["data_size"],
            data_root=raw["data_root"],
            tags=[(unb64url(t["name"]).decode(), unb64url(t["value"]).decode()) for t in raw["tags"]],
            target=raw["target"],
            quantity=raw["quantity"],
            format=raw["format"],
            signature=raw["signature"],
            id=raw["id"],
        )


def signed_transaction(
    wallet: Wallet, data: bytes, tags: list[tuple[str, str]], anchor: str, reward: str
) -> tuple[Transaction, list[Chunk]]:
    data_root, chunks = transaction_chunks(data)
    transaction = Transaction(
        owner=wallet.owner,
        last_tx=anchor,
        reward=reward,
        data_size=str(len(data)),
        data_root=b64url(data_root) if data else "",
        tags=tags,
    )
    transaction.sign(wallet)
    return transaction, chunks


# -- a node -----------------------------------------------------------------------------------------


class NodeError(Exception):
    """An Arweave node's refusal or failure. `rejected` means it judged the transaction itself (a 4xx
    other than 429), so posting the same one again cannot succeed."""

    def __init__(self, message: str, status: int = 0):
        super().__init__(message)
        self.status = status

    @property
    def rejected(self) -> bool:
        return 400 <= self.status < 500 and self.status != 429


@dataclass(frozen=True)
class TransactionStatus:
    # `unknown` (the node has never heard of it, or dropped it), `pending` or `mined`.
    state: str
    confirmations: int = 0


class ArweaveNode:
    def __init__(self, url: str, session: aiohttp.ClientSession, timeout_seconds: float):
        self.url = url.rstrip("/")
        self.session = session
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)

    async def _get(self, path: str) -> tuple[int, str]:
        async with self.session.get(self.url + path, timeout=self.timeout) as response:
            return response.status, await response.text(errors="replace")

    async def _post(self, path: str, body: dict) -> None:
        async with self.session.post(self.url + path, json=body, timeout=self.timeout) as response:
            # 208: the node has the transaction already, which is what was wanted.
            if response.status in (200, 208):
                return
            text = (await response.text(errors="replace")).strip()[:300]
            raise NodeError(f"{path} answered {response.status}: {text or response.reason}", response.status)

    async def anchor(self) -> str:
        status, text = await self._get("/tx_anchor")
        if status != 200 or not text.strip():
            raise NodeError(f"/tx_anchor answered {status}: {text[:200]}", status)
        return text.strip()

    async def price(self, size: int) -> str:
        status, text = await self._get(f"/price/{size}")
        if status != 200 or not text.strip().isdigit():
            raise NodeError(f"/price answered {status}: {text[:200]}", status)
        return text.strip()

    async def post(self, transaction: Transaction, data: bytes, chunks: list[Chunk]) -> None:
        """Posts the transaction; data that fits one chunk goes in its body, larger data chunk by chunk
        after it, as arweave-js uploads."""
        body = transaction.to_json()
        inline = len(chunks) <= 1
        body["data"] = b64url(data) if inline else ""
        await self._post("/tx", body)
        if inline:
            return
        for chunk in chunks:
            await self._post(
                "/chunk",
                {
                    "data_root": transaction.data_root,
                    "data_size": transaction.data_size,
                    "data_path": b64url(chunk.proof),
                    "offset": str(chunk.offset),
                    "chunk": b64url(data[chunk.min_byte_range : chunk.max_byte_range]),
                },
            )

    async def status(self, transaction_id: str) -> TransactionStatus:
        status, text = await self._get(f"/tx/{transaction_id}/status")
        if status == 404:
            return TransactionStatus("unknown")
        if status == 202:
            return TransactionStatus("pending")
        if status != 200:
            raise NodeError(f"/tx/{transaction_id}/status answered {status}: {text[:200]}", status)
        try:
            mined = json.loads(text)
        except ValueError:
            mined = None
        # Some nodes (arlocal among them) answer a pending transaction with 200 and the word "Pending".
        if not isinstance(mined, dict):
            return TransactionStatus("pending")
        return TransactionStatus("mined", int(mined.get("number_of_confirmations", 0)))
