"""The certificate and key that sign Content Credentials: the configured ones, or a development CA and
signing certificate made once under `var/c2pa/`."""

from __future__ import annotations

import datetime as dt
import logging
import os
import pathlib
import shutil
import tempfile
from dataclasses import dataclass

import c2pa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from services.common.config import ConfigError

from .provenance import SigningIdentity

log = logging.getLogger("imagegen.generator.credentials")

DEV_FOLDER = "c2pa"
DEV_CA = "dev-ca.pem"
DEV_CHAIN = "signer-chain.pem"
DEV_KEY = "signer-key.pem"
_DEV_YEARS = 10


@dataclass(frozen=True)
class CredentialsConfig:
    certificate_chain: pathlib.Path | None = None
    private_key: pathlib.Path | None = None
    # A PEM bundle; None means the SDK's own list, or the development CA when that signs.
    trust_anchors: pathlib.Path | None = None
    timestamp_url: str = ""
    include_prompt: bool = False


def load_identity(config: CredentialsConfig, var_dir: pathlib.Path) -> tuple[SigningIdentity, str | None]:
    """The signing identity and the trust anchors (PEM) verification uses."""
    if (config.certificate_chain is None) != (config.private_key is None):
        raise ConfigError(
            "set both IMAGEGEN_C2PA_CERTIFICATE_CHAIN and IMAGEGEN_C2PA_PRIVATE_KEY, or neither"
        )
    anchors = _read(config.trust_anchors).decode() if config.trust_anchors else None
    if config.certificate_chain is not None and config.private_key is not None:
        chain, key = _read(config.certificate_chain), _read(config.private_key)
    else:
        folder = development_credentials(var_dir / DEV_FOLDER)
        chain, key = (folder / DEV_CHAIN).read_bytes(), (folder / DEV_KEY).read_bytes()
        if anchors is None:
            anchors = (folder / DEV_CA).read_text()
    identity = SigningIdentity(chain, key, signing_alg(key), config.timestamp_url or None)
    return identity, anchors


def _read(path: pathlib.Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None


def signing_alg(private_key_pem: bytes) -> c2pa.C2paSigningAlg:
    try:
        key = serialization.load_pem_private_key(private_key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"the C2PA private key is not an unencrypted PEM key: {exc}") from None
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return c2pa.C2paSigningAlg.ED25519
    if isinstance(key, rsa.RSAPrivateKey):
        return c2pa.C2paSigningAlg.PS256
    if isinstance(key, ec.EllipticCurvePrivateKey):
        algs = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
        if key.curve.name in algs:
            return c2pa.C2paSigningAlg[algs[key.curve.name]]
    raise ConfigError("the C2PA private key must be EC P-256/P-384/P-521, RSA or Ed25519")


def development_credentials(folder: pathlib.Path) -> pathlib.Path:
    """Makes a development CA and a signing certificate it issued, once; later starts reuse them.

    Generators starting together race to create the folder: each writes its own next to it and renames
    it into place, and a loser's rename fails and it reads the winner's.
    """
    if (folder / DEV_KEY).exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=".c2pa-", dir=folder.parent))
    try:
        _write_development_credentials(staging)
        os.rename(staging, folder)
    except OSError:
        if not (folder / DEV_KEY).exists():
            raise
    else:
        log.warning(
            "no C2PA signing certificate configured: made a development CA and signing certificate;"
            " images are signed with it and verify as valid only here. Set IMAGEGEN_C2PA_CERTIFICATE_CHAIN"
            " and IMAGEGEN_C2PA_PRIVATE_KEY to sign with your own",
            extra={"fields": {"folder": str(folder)}},
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _write_development_credentials(folder: pathlib.Path) -> None:
    now = dt.datetime.now(dt.UTC)
    valid_from, valid_to = now - dt.timedelta(hours=1), now + dt.timedelta(days=365 * _DEV_YEARS)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("imagegen development CA")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid_from)
        .not_valid_after(valid_to)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    # What C2PA asks of a claim signer: not a CA, digitalSignature, and an EKU it accepts.
    signer = (
        x509.CertificateBuilder()
        .subject_name(_name("imagegen development signer"))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid_from)
        .not_valid_after(valid_to)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    def pem(cert: x509.Certificate) -> bytes:
        return cert.public_bytes(serialization.Encoding.PEM)

    (folder / DEV_CA).write_bytes(pem(ca))
    (folder / DEV_CHAIN).write_bytes(pem(signer) + pem(ca))
    key_file = folder / DEV_KEY
    key_file.touch(mode=0o600)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    # The CA's key is not kept: nothing here issues a second certificate.


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "imagegen (development)"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_usage(cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )
