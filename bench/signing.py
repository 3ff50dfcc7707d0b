"""`make bench`: what Content Credentials cost per image: signing (and verifying) time, and bytes added;
and what building an Arweave transaction for the signed file costs (chunk Merkle root and proofs, deep
hash, RSA-4096 PSS signature), where a wallet is configured.

Procedural PNGs at 256, 512 and 1024 px, signed in-process with the same code and development
certificate the worker uses (ES256, no thumbnail, no timestamp authority), one thread.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import tempfile
import time

from cryptography.hazmat.primitives.asymmetric import rsa

from services.generator.arweave import Wallet, b64url, signed_transaction
from services.generator.credentials import CredentialsConfig, load_identity
from services.generator.provenance import ContentCredentials, Creation
from services.generator.providers.procedural import encode_png, render

SIDES = (256, 512, 1024)


def _median_ms(action, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _modulus(key: rsa.RSAPrivateKey) -> str:
    n = key.public_key().public_numbers().n
    return b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))


def measure(rounds: int) -> list[dict]:
    with tempfile.TemporaryDirectory() as var:
        identity, anchors = load_identity(CredentialsConfig(), pathlib.Path(var))
    credentials = ContentCredentials(identity, anchors, version="bench")
    creation = Creation("img_bench", 0, "procedural", "procedural", "", "srv_bench", "a misty lake at sunset")
    key = rsa.generate_private_key(public_exponent=65537, key_size=4096)
    wallet = Wallet(key, _modulus(key))
    anchor, tags = "A" * 64, [("Content-Type", "image/png"), ("App-Name", "imagegen")]
    results = []
    for side in SIDES:
        png = encode_png(render(creation.prompt, 7, side, side))
        signed, _ = credentials.sign(png, "image/png", creation)
        assert credentials.verify(signed, "image/png").state == "valid"
        results.append(
            {
                "side": side,
                "png_bytes": len(png),
                "added_bytes": len(signed) - len(png),
                "sign_ms": round(
                    _median_ms(lambda p=png: credentials.sign(p, "image/png", creation), rounds), 2
                ),
                "verify_ms": round(
                    _median_ms(lambda s=signed: credentials.verify(s, "image/png"), rounds), 2
                ),
                "encode_png_ms": round(_median_ms(lambda s=side: encode_png(render("x", 7, s, s)), 3), 2),
                "arweave_transaction_ms": round(
                    _median_ms(lambda s=signed: signed_transaction(wallet, s, tags, anchor, "1"), rounds), 2
                ),
            }
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    results = measure(args.rounds)
    print("side  png bytes  +bytes  sign ms  verify ms  arweave tx ms  (render+encode ms)")
    for r in results:
        sizes = f"{r['side']:>4}  {r['png_bytes']:>9}  {r['added_bytes']:>6}"
        times = f"{r['sign_ms']:>7}  {r['verify_ms']:>9}  {r['arweave_transaction_ms']:>13}"
        print(f"{sizes}  {times}  ({r['encode_png_ms']})")
    print(json.dumps({"signing": results}))


if __name__ == "__main__":
    main()
