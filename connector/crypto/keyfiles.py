"""The node's key material on disk: the Ed25519 signing key (JWK) and the TLS certificate."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
from pathlib import Path

import orjson
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from connector.crypto.jws import SigningKey
from connector.errors import ConfigError
from connector.storage.files import atomic_write


def write_private(path: Path, data: bytes) -> None:
    """Create with mode 0600 from the start, so the key is never readable by others; never
    over an existing file, and whole or not at all (a torn key would stop the node)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, data, mode=0o600, exclusive=True)


def write_signing_key(path: Path, key: SigningKey) -> None:
    write_private(path, orjson.dumps(key.private_jwk(), option=orjson.OPT_INDENT_2) + b"\n")


def read_signing_key(path: Path) -> SigningKey:
    try:
        mode = path.stat().st_mode
        data = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"cannot read the key file {path}: {exc.strerror}") from exc
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"the key file {path} is not a JSON JWK") from exc
    if mode & 0o077:
        raise ConfigError(f"the key file {path} is readable by group or others; chmod 600 it")
    try:
        return SigningKey.from_jwk(data)
    except ValueError as exc:
        raise ConfigError(f"the key file {path}: {exc}") from exc


def make_tls_certificate(node: str, hosts: list[str], *, days: int = 825) -> tuple[bytes, bytes]:
    """A self-signed ECDSA P-256 certificate; peers pin its SHA-256, so no CA is involved."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"ncb-connector {node}")])
    alt: list[x509.GeneralName] = []
    for h in hosts:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            alt.append(x509.DNSName(h))
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert_pem, key_pem


def certificate_fingerprint(cert_pem: bytes) -> str:
    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
    return der_fingerprint(der)


def certificate_not_after(cert_pem: bytes) -> float:
    """When the certificate expires, as a Unix time (its notAfter)."""
    return x509.load_pem_x509_certificate(cert_pem).not_valid_after_utc.timestamp()


def der_fingerprint(der: bytes) -> str:
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, 64, 2))
