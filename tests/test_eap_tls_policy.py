"""The TLS contexts behind EAP-TLS, PEAP and EAP-TTLS: which cipher suites they accept, and
certificate revocation along the whole client chain.  Handshakes run on memory BIOs against
nac's own server side (nac.eap.tls.Tunnel), with pyOpenSSL as the supplicant."""

from __future__ import annotations

import contextlib
import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from OpenSSL import SSL

from nac.config import load_config
from nac.eap.certs import init as certs_init
from nac.eap.config import EapConfig, contexts
from nac.eap.tls import TlsError, Tunnel
from nac.errors import ConfigError

NOW = dt.datetime.now(dt.UTC)
Key = ec.EllipticCurvePrivateKey


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pki")
    certs_init(path)
    return path


def handshake(server_ctx: SSL.Context, client_ctx: SSL.Context) -> Tunnel:
    """Run a full handshake; returns the server's tunnel, or raises TlsError (server side) or
    SSL.Error (the client gave up)."""
    tunnel = Tunnel(server_ctx)
    peer = SSL.Connection(client_ctx, None)
    peer.set_connect_state()
    for _ in range(10):
        with contextlib.suppress(SSL.WantReadError):
            peer.do_handshake()
        flight = b""
        while True:
            try:
                flight += peer.bio_read(65536)
            except SSL.WantReadError:
                break
        done = tunnel.handshake(flight)
        answer = tunnel.output()
        if answer:
            peer.bio_write(answer)
        if done:
            try:
                peer.do_handshake()
                peer.recv(1)  # TLS 1.3: the server's verdict on the client certificate arrives late
            except SSL.WantReadError:
                pass
            return tunnel
    raise AssertionError("handshake does not end")


def client_context(*, ciphers: bytes | None = None, tls13: bool = False) -> SSL.Context:
    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.set_max_proto_version(SSL.TLS1_3_VERSION if tls13 else SSL.TLS1_2_VERSION)
    if ciphers is not None:
        ctx.set_cipher_list(ciphers)
    return ctx


# -- cipher suites ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rsa_lab(lab: Path) -> Path:
    """The lab beside an RSA server certificate (rsa.pem): only with one is RSA key exchange,
    the suites without forward secrecy, possible at all."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_key = serialization.load_pem_private_key((lab / "ca.key").read_bytes(), password=None)
    ca = x509.load_pem_x509_certificate((lab / "ca.pem").read_bytes())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("rsa.nac.lab"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(minutes=5))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    (lab / "rsa.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (lab / "rsa.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return lab


def lab_contexts(lab: Path, server_key: str = "ecdsa") -> tuple[SSL.Context, SSL.Context]:
    stem = "server" if server_key == "ecdsa" else "rsa"
    config = EapConfig(
        certificate=str(lab / f"{stem}.pem"),
        private_key=str(lab / f"{stem}.key"),
        ca_certificates=str(lab / "ca.pem"),
    )
    tls, tunnel = contexts(config)
    assert tls is not None
    return tls, tunnel


def with_lab_client_cert(ctx: SSL.Context, lab: Path) -> SSL.Context:
    ctx.use_certificate_file(str(lab / "client.pem"))
    ctx.use_privatekey_file(str(lab / "client.key"))
    return ctx


SERVER_KEYS = ("ecdsa", "rsa")
#: (server key, suite) pairs that OpenSSL's defaults would negotiate with that key.
WEAK = [
    ("rsa", "AES128-SHA"),  # RSA key exchange, CBC: the review's example
    ("rsa", "AES256-GCM-SHA384"),  # RSA key exchange, AEAD
    ("rsa", "ECDHE-RSA-AES128-SHA"),  # forward secret, CBC
    ("ecdsa", "ECDHE-ECDSA-AES128-SHA"),
    ("ecdsa", "ECDHE-ECDSA-AES256-SHA384"),
]


@pytest.mark.parametrize("which", ["eap-tls", "peap/ttls"])
@pytest.mark.parametrize(("server_key", "suite"), WEAK)
def test_tls12_suites_without_forward_secrecy_or_aead_are_refused(
    rsa_lab: Path, server_key: str, which: str, suite: str
) -> None:
    tls, tunnel = lab_contexts(rsa_lab, server_key)
    server = tls if which == "eap-tls" else tunnel
    offer = suite.encode()
    with pytest.raises(TlsError, match="no shared cipher"):
        handshake(server, with_lab_client_cert(client_context(ciphers=offer), rsa_lab))


@pytest.mark.parametrize("which", ["eap-tls", "peap/ttls"])
@pytest.mark.parametrize("server_key", SERVER_KEYS)
@pytest.mark.parametrize("suite", ["ECDHE-{auth}-AES128-GCM-SHA256", "ECDHE-{auth}-CHACHA20-POLY1305"])
def test_tls12_ecdhe_aead_suites_are_accepted(rsa_lab: Path, server_key: str, which: str, suite: str) -> None:
    tls, tunnel = lab_contexts(rsa_lab, server_key)
    server = tls if which == "eap-tls" else tunnel
    offer = suite.format(auth=server_key.upper()).encode()
    done = handshake(server, with_lab_client_cert(client_context(ciphers=offer), rsa_lab))
    assert done.established
    assert done.conn.get_cipher_name() == offer.decode()
    assert done.version == "TLSv1.2"


def test_tls13_still_works_for_eap_tls(lab: Path) -> None:
    tls, _ = lab_contexts(lab)
    done = handshake(tls, with_lab_client_cert(client_context(tls13=True), lab))
    assert done.version == "TLSv1.3"


# -- revocation along the chain -------------------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(
    cn: str, key: Key, *, issuer: x509.Certificate | None, issuer_key: Key, ca: bool
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer.subject if issuer is not None else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(minutes=5))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
    else:
        usage = x509.KeyUsage(True, False, False, False, False, False, False, False, False)
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    return builder.add_extension(usage, critical=True).sign(issuer_key, hashes.SHA256())


def _crl(issuer: x509.Certificate, key: Key, revoked: list[x509.Certificate]) -> bytes:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(NOW - dt.timedelta(minutes=5))
        .next_update(NOW + dt.timedelta(days=1))
    )
    for cert in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(cert.serial_number).revocation_date(NOW).build()
        )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


class Chain:
    """root CA -> intermediate CA -> client certificate; nac trusts the root only."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.root_key, self.inter_key, self.leaf_key = (
            ec.generate_private_key(ec.SECP256R1()) for _ in range(3)
        )
        self.root = _cert("test root", self.root_key, issuer=None, issuer_key=self.root_key, ca=True)
        self.inter = _cert(
            "test intermediate", self.inter_key, issuer=self.root, issuer_key=self.root_key, ca=True
        )
        self.leaf = _cert("station", self.leaf_key, issuer=self.inter, issuer_key=self.inter_key, ca=False)
        pem = serialization.Encoding.PEM
        (path / "root.pem").write_bytes(self.root.public_bytes(pem))
        # The supplicant sends its certificate and the intermediate (as Windows and wpa_supplicant do).
        (path / "client.pem").write_bytes(self.leaf.public_bytes(pem) + self.inter.public_bytes(pem))
        (path / "client.key").write_bytes(
            self.leaf_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )

    def server(self, lab: Path, crls: bytes) -> SSL.Context:
        (self.path / "crls.pem").write_bytes(crls)
        config = EapConfig(
            certificate=str(lab / "server.pem"),
            private_key=str(lab / "server.key"),
            ca_certificates=str(self.path / "root.pem"),
            crl=str(self.path / "crls.pem"),
            methods=("tls",),
        )
        tls, _ = contexts(config)
        assert tls is not None
        return tls

    def client(self, *, tls13: bool = False) -> SSL.Context:
        ctx = client_context(tls13=tls13)
        ctx.use_certificate_chain_file(str(self.path / "client.pem"))
        ctx.use_privatekey_file(str(self.path / "client.key"))
        return ctx


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Chain:
    return Chain(tmp_path_factory.mktemp("chain"))


@pytest.mark.parametrize("tls13", [False, True], ids=["tls1.2", "tls1.3"])
def test_chain_with_a_crl_from_every_ca_and_nothing_revoked_is_accepted(
    lab: Path, chain: Chain, tls13: bool
) -> None:
    crls = _crl(chain.root, chain.root_key, []) + _crl(chain.inter, chain.inter_key, [])
    done = handshake(chain.server(lab, crls), chain.client(tls13=tls13))
    cert = done.peer_certificate()
    assert cert is not None
    assert cert.subject == chain.leaf.subject


@pytest.mark.parametrize("tls13", [False, True], ids=["tls1.2", "tls1.3"])
def test_a_revoked_intermediate_refuses_the_certificates_under_it(
    lab: Path, chain: Chain, tls13: bool
) -> None:
    # The leaf itself is not revoked: a leaf-only CRL check would let it in.
    crls = _crl(chain.root, chain.root_key, [chain.inter]) + _crl(chain.inter, chain.inter_key, [])
    with pytest.raises(TlsError, match="certificate verify failed"):
        handshake(chain.server(lab, crls), chain.client(tls13=tls13))


def test_a_revoked_leaf_is_refused(lab: Path, chain: Chain) -> None:
    crls = _crl(chain.root, chain.root_key, []) + _crl(chain.inter, chain.inter_key, [chain.leaf])
    with pytest.raises(TlsError, match="certificate verify failed"):
        handshake(chain.server(lab, crls), chain.client())


def test_a_chain_link_without_its_issuers_crl_is_refused(lab: Path, chain: Chain) -> None:
    # Only the intermediate's CRL: whether the intermediate is revoked is unknown: fail closed.
    crls = _crl(chain.inter, chain.inter_key, [])
    with pytest.raises(TlsError, match="certificate verify failed"):
        handshake(chain.server(lab, crls), chain.client())


def test_a_crl_file_without_a_crl_is_a_config_error(tmp_path: Path, lab: Path) -> None:
    (tmp_path / "nac.crl").write_text("not a CRL\n")
    config = tmp_path / "nac.toml"
    config.write_text(
        f'[eap]\ncertificate = "{lab / "server.pem"}"\nprivate_key = "{lab / "server.key"}"\n'
        f'ca_certificates = "{lab / "ca.pem"}"\ncrl = "nac.crl"\n'
    )
    with pytest.raises(ConfigError, match=r"crl.*no PEM CRL"):
        load_config(config)
