"""The `[eap]` settings: parsed and checked at start-up, errors naming the file, line and key.

    [eap]
    certificate = "/etc/nac/server.pem"      # the server's certificate (chain), PEM
    private_key = "/etc/nac/server.key"      # its key, PEM, unencrypted
    ca_certificates = "/etc/nac/ca.pem"      # CAs whose client certificates EAP-TLS accepts
    crl = "/etc/nac/ca.crl"                  # optional: CRLs (PEM) of every CA in the chain
    methods = ["tls", "peap", "ttls"]        # optional: offered in this order

This module reads files (the shell's side); the protocol core gets ready SSL contexts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from OpenSSL import SSL, crypto

from nac.eap.eap import METHOD_TYPES, EapSettings
from nac.eap.profiles import Authorization
from nac.errors import ConfigError
from nac.identity.config import LdapConfig
from nac.identity.query import DirectoryAnswer
from nac.tomlfile import Locator

_KEYS: Final = {"certificate", "private_key", "ca_certificates", "crl", "methods"}
#: TLS 1.2 suites: forward-secret key exchange (ECDHE, or DHE where OpenSSL has parameters)
#: with an AEAD cipher only, as the Mozilla "intermediate" profile and RFC 9325 §4.2 ask;
#: a stolen server key then cannot decrypt recorded tunnels.  TLS 1.3 suites all qualify.
TLS12_CIPHERS: Final = b"ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!DSS"
_CRL_PEM: Final = re.compile(rb"-----BEGIN X509 CRL-----.+?-----END X509 CRL-----", re.DOTALL)


@dataclass(frozen=True, kw_only=True)
class EapConfig:
    certificate: str
    private_key: str
    ca_certificates: str | None = None
    crl: str | None = None
    methods: tuple[str, ...] = ("tls", "peap", "ttls")


def parse_eap(table: Mapping[str, Any], loc: Locator) -> EapConfig:
    """Check the `[eap]` table and load every file it names (so a bad one stops start-up)."""
    if not isinstance(table, dict):
        raise ConfigError(f"{loc.where('eap')}: must be a table")
    for key in sorted(set(table) - _KEYS):
        raise ConfigError(f"{loc.where('eap', key)}: unknown setting")
    paths: dict[str, str] = {}
    for key in ("certificate", "private_key", "ca_certificates", "crl"):
        if key not in table:
            continue
        value = table[key]
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{loc.where('eap', key)}: a file path")
        path = Path(value)
        if not path.is_absolute():  # relative to the config file, as operators expect
            path = Path(loc.path).parent / path
        paths[key] = str(path)
    for key in ("certificate", "private_key"):
        if key not in paths:
            raise ConfigError(f"{loc.where('eap')}: {key} is required")
    default = ("tls", "peap", "ttls") if "ca_certificates" in paths else ("peap", "ttls")
    methods = table.get("methods", list(default))
    if (
        not isinstance(methods, list)
        or not methods
        or any(m not in METHOD_TYPES for m in methods)
        or len(set(methods)) != len(methods)
    ):
        raise ConfigError(
            f"{loc.where('eap', 'methods')}: a list of distinct methods from {', '.join(METHOD_TYPES)}"
        )
    if "tls" in methods and "ca_certificates" not in paths:
        raise ConfigError(f"{loc.where('eap', 'methods')}: EAP-TLS needs ca_certificates to verify clients")
    config = EapConfig(
        certificate=paths["certificate"],
        private_key=paths["private_key"],
        ca_certificates=paths.get("ca_certificates"),
        crl=paths.get("crl"),
        methods=tuple(methods),
    )
    try:
        contexts(config)
    except _FileError as exc:
        raise ConfigError(f"{loc.where('eap', exc.key)}: {exc.detail}") from None
    return config


class _FileError(Exception):
    def __init__(self, key: str, detail: str) -> None:
        super().__init__(f"{key}: {detail}")
        self.key = key
        self.detail = detail


def contexts(config: EapConfig) -> tuple[SSL.Context | None, SSL.Context]:
    """(EAP-TLS context, PEAP/TTLS context); the first is None when EAP-TLS is off."""
    tunnel = _context(config, verify_clients=False)
    tls = _context(config, verify_clients=True) if "tls" in config.methods else None
    return tls, tunnel


def settings(
    config: EapConfig,
    users: Mapping[str, bytes],
    authorize: Callable[[str], Authorization | None] | None = None,
    *,
    directory: LdapConfig | None = None,
    authorize_directory: Callable[[DirectoryAnswer, str], Authorization | None] | None = None,
) -> EapSettings:
    """``directory``: the `[ldap]` settings, when users not in ``users`` are looked up there."""
    tls, tunnel = contexts(config)
    return EapSettings(
        methods=config.methods,
        tls_context=tls,
        tunnel_context=tunnel,
        users=users,
        md5_passwords=getattr(users, "md5_password", None),
        authorize=authorize,
        directory=directory is not None,
        tls_identity=directory.tls_identity if directory is not None else "cn",
        authorize_directory=authorize_directory if directory is not None else None,
    )


def _context(config: EapConfig, *, verify_clients: bool) -> SSL.Context:
    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
    ctx.set_cipher_list(TLS12_CIPHERS)
    if not verify_clients:
        # PEAP and TTLS over TLS 1.3 (RFC 9427) derive keys differently; until that is
        # implemented their tunnels stay on TLS 1.2, which every supplicant offers.
        ctx.set_max_proto_version(SSL.TLS1_2_VERSION)
    # One handshake per conversation: no session cache, no tickets (resumption would skip
    # the client-certificate check that EAP-TLS authenticates with).
    ctx.set_session_cache_mode(SSL.SESS_CACHE_OFF)
    ctx.set_options(SSL.OP_NO_TICKET)
    ctx.set_session_id(b"nac-eap")
    try:
        ctx.use_certificate_chain_file(config.certificate)
    except (SSL.Error, OSError) as exc:
        raise _FileError("certificate", f"cannot load {config.certificate}: {_why(exc)}") from None
    try:
        ctx.use_privatekey_file(config.private_key)
        ctx.check_privatekey()
    except (SSL.Error, OSError) as exc:
        raise _FileError("private_key", f"cannot use {config.private_key}: {_why(exc)}") from None
    if verify_clients and config.ca_certificates is not None:
        try:
            ctx.load_verify_locations(config.ca_certificates)
        except (SSL.Error, OSError) as exc:
            raise _FileError(
                "ca_certificates", f"cannot load {config.ca_certificates}: {_why(exc)}"
            ) from None
        ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT)
        if config.crl is not None:
            store = ctx.get_cert_store()
            assert store is not None
            for crl in _load_crls(config.crl):
                store.add_crl(crl)
            store.set_flags(CRL_FLAGS)
    return ctx


#: Every certificate of the client's chain is checked against its issuer's CRL, not only the
#: leaf: a revoked intermediate CA must take its whole subtree with it.  A chain link with no
#: CRL from its issuer fails the handshake (fail closed), so `crl` holds one CRL per CA.
CRL_FLAGS: Final = crypto.X509StoreFlags.CRL_CHECK | crypto.X509StoreFlags.CRL_CHECK_ALL


def _load_crls(path: str) -> list[x509.CertificateRevocationList]:
    """Every PEM CRL in ``path`` (one per CA of the chains that EAP-TLS accepts)."""
    try:
        blocks = _CRL_PEM.findall(Path(path).read_bytes())
        if not blocks:
            raise ValueError("no PEM CRL (-----BEGIN X509 CRL-----) in it")
        return [x509.load_pem_x509_crl(block) for block in blocks]
    except (OSError, ValueError) as exc:
        raise _FileError("crl", f"cannot load {path}: {_why(exc)}") from None


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc) or type(exc).__name__


def is_lab_certificate(path: str) -> bool:
    """Whether ``path`` was issued by a `nac certs init` lab CA (its organisation says so)."""
    from cryptography import x509  # noqa: PLC0415

    from nac.eap.certs import LAB_ORGANIZATION  # noqa: PLC0415

    try:
        cert = x509.load_pem_x509_certificate(Path(path).read_bytes())
    except (OSError, ValueError):
        return False
    names = cert.issuer.get_attributes_for_oid(x509.oid.NameOID.ORGANIZATION_NAME)
    return any(str(n.value) == LAB_ORGANIZATION for n in names)
