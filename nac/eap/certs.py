"""A lab PKI for `nac certs init DIR`: a CA, a server certificate and a client certificate.

For labs and tests only: the CA's name says so, its key sits beside it unencrypted, and nac
never creates or uses these files unless asked to.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from nac.errors import NacError

FILES: Final = ("ca.pem", "ca.key", "server.pem", "server.key", "client.pem", "client.key")
#: Written into every lab certificate; `nac serve` warns when it serves one (nac/eap/config.py).
LAB_ORGANIZATION: Final = "nac lab (not for production)"
#: A lab's certificates outlive a lab; two years, renewed by running `nac certs init` again.
VALIDITY: Final = dt.timedelta(days=730)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, LAB_ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key() -> ec.EllipticCurvePrivateKey:
    # P-256: every current supplicant (Windows, Android, Apple, wpa_supplicant) accepts it, and
    # a handshake costs a fraction of RSA-2048's.
    return ec.generate_private_key(ec.SECP256R1())


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    *,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    usage: x509.ObjectIdentifier | None,
    now: dt.datetime,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer.subject if issuer is not None else _name(subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
        builder = builder.add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
        )
    if usage is not None:
        # Windows and Apple supplicants require serverAuth on the RADIUS server's certificate.
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if usage == ExtendedKeyUsageOID.SERVER_AUTH:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def init(directory: Path, *, server_name: str = "nac.lab", client_name: str = "client.nac.lab") -> list[Path]:
    """Write the six files into ``directory`` (created if need be); refuses to overwrite."""
    directory.mkdir(parents=True, exist_ok=True)
    existing = [directory / f for f in FILES if (directory / f).exists()]
    if existing:
        raise NacError(f"refusing to overwrite {', '.join(str(p) for p in existing)}")
    now = dt.datetime.now(dt.UTC)
    ca_key = _key()
    ca = _issue("nac lab CA", ca_key, issuer=None, issuer_key=ca_key, usage=None, now=now)
    written = []
    pairs = [("ca", ca, ca_key)]
    for stem, name, usage in (
        ("server", server_name, ExtendedKeyUsageOID.SERVER_AUTH),
        ("client", client_name, ExtendedKeyUsageOID.CLIENT_AUTH),
    ):
        key = _key()
        pairs.append((stem, _issue(name, key, issuer=ca, issuer_key=ca_key, usage=usage, now=now), key))
    for stem, cert, key in pairs:
        key_path = directory / f"{stem}.key"
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
        cert_path = directory / f"{stem}.pem"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        written += [cert_path, key_path]
    return written
