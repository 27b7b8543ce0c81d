"""TLS over EAP (RFC 5216 §2-3): the handshake on memory BIOs, and the fragmentation framing
that EAP-TLS, PEAP and EAP-TTLS share.

pyOpenSSL rather than ``ssl``: only it exports keying material (RFC 5705), which the MSK is.
The TLS state lives in memory; nothing here touches a socket or a file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from cryptography import x509
from cryptography.x509.oid import NameOID
from OpenSSL import SSL

from nac.eap.method import Done, Failed, Lookup, Next, Step
from nac.identity.query import DirectoryAnswer, DirectoryQuery

FLAG_L: Final = 0x80  # length included (RFC 5216 §3.1)
FLAG_M: Final = 0x40  # more fragments
FLAG_S: Final = 0x20  # start
VERSION_MASK: Final = 0x07  # PEAP and EAP-TTLS carry their version here; EAP-TLS sends 0
#: Octets of TLS data per EAP-Request: FreeRADIUS's `fragment_size = 1024`, which keeps each
#: RADIUS packet well under a 1,500-octet MTU once EAP, RADIUS and IP headers are added.
FRAGMENT_SIZE: Final = 1024
#: The largest TLS message (one flight) a peer may send: a client certificate chain of a few
#: certificates is ~4-8 KiB; 64 KiB is FreeRADIUS's limit on a reassembled EAP-TLS message.
MAX_TLS_MESSAGE: Final = 64 * 1024
_READ: Final = 65536
#: Microsoft's User Principal Name in a SAN otherName (MS-WCCE §2.2.2.7.7.4), a UTF8String.
UPN_OID: Final = x509.ObjectIdentifier("1.3.6.1.4.1.311.20.2.3")

Random = Callable[[int], bytes]


class TlsError(Exception):
    """The TLS handshake or record layer failed (peer's alert, untrusted certificate, ...)."""


class Tunnel:
    """One server-side TLS connection whose records go in and out as bytes."""

    def __init__(self, context: SSL.Context) -> None:
        self.conn = SSL.Connection(context, None)
        self.conn.set_accept_state()
        self.established = False

    def _feed(self, data: bytes) -> None:
        """Give OpenSSL the peer's bytes; pyOpenSSL raises on an empty write (found by fuzzing:
        an EAP-TLS response with flags and no data), which is no error of the peer's."""
        if not data:
            return
        try:
            self.conn.bio_write(data)
        except SSL.Error as exc:
            raise TlsError(_describe(exc)) from None

    def handshake(self, data: bytes) -> bool:
        """Feed the peer's records; True once the handshake has completed."""
        self._feed(data)
        try:
            self.conn.do_handshake()
        except SSL.WantReadError:
            return False
        except SSL.Error as exc:
            raise TlsError(_describe(exc)) from None
        self.established = True
        return True

    def output(self) -> bytes:
        """Everything TLS has written for the peer since the last call."""
        chunks = []
        while True:
            try:
                chunks.append(self.conn.bio_read(_READ))
            except SSL.WantReadError:
                return b"".join(chunks)

    def receive(self, data: bytes) -> bytes:
        """Decrypt application data the peer sent in ``data``."""
        self._feed(data)
        chunks = []
        while True:
            try:
                chunks.append(self.conn.recv(_READ))
            except SSL.WantReadError:
                return b"".join(chunks)
            except SSL.ZeroReturnError:
                raise TlsError("the peer closed the tunnel") from None
            except SSL.Error as exc:
                raise TlsError(_describe(exc)) from None

    def send(self, data: bytes) -> bytes:
        """Encrypt ``data``; returns the records to send."""
        self.conn.sendall(data)
        return self.output()

    @property
    def version(self) -> str:
        return str(self.conn.get_protocol_version_name())

    def export(self, label: bytes, length: int, context: bytes | None = None) -> bytes:
        return bytes(self.conn.export_keying_material(label, length, context))

    def peer_certificate(self) -> x509.Certificate | None:
        cert = self.conn.get_peer_certificate(as_cryptography=True)
        return cert


def _describe(exc: SSL.Error) -> str:
    """OpenSSL's error queue as one line: `certificate verify failed`, `tlsv1 alert ...`."""
    reasons = (
        [str(e[2]) for e in exc.args[0] if len(e) > 2] if exc.args and isinstance(exc.args[0], list) else []
    )
    return "; ".join(reasons) or str(exc) or type(exc).__name__


def certificate_identity(cert: x509.Certificate) -> str:
    """The subject's common name (FreeRADIUS's TLS-Client-Cert-Common-Name), else the subject."""
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if names:
        value = names[0].value
        return value if isinstance(value, str) else value.decode(errors="replace")
    return cert.subject.rfc4514_string()


def certificate_name(cert: x509.Certificate, kind: str) -> str | None:
    """The name a directory knows the certificate's holder by: ``cn`` (the subject's common
    name, else the subject), ``san_email`` (the first rfc822Name) or ``san_upn`` (the first
    UPN otherName); None when the certificate has no such name."""
    if kind == "cn":
        return certificate_identity(cert)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    if kind == "san_email":
        emails = san.get_values_for_type(x509.RFC822Name)
        return emails[0] if emails else None
    for other in san.get_values_for_type(x509.OtherName):
        if other.type_id == UPN_OID:
            return _utf8_string(other.value)
    return None


def _utf8_string(der: bytes) -> str | None:
    """The text of a DER UTF8String (tag 12, X.690 §8.1.3 for the length), None for any other
    type; cryptography has checked that the value is well-formed DER."""
    if len(der) < 2 or der[0] != 0x0C:
        return None
    start = 2 + (der[1] & 0x7F if der[1] & 0x80 else 0)  # the long form: that many length octets
    try:
        return der[start:].decode("utf-8") or None
    except UnicodeDecodeError:
        return None


class TlsMethod:
    """The framing every TLS-based method shares (RFC 5216 §3.1-3.2): reassemble the peer's
    fragments (acknowledging each with an empty request), fragment our own messages (sending
    the next fragment on each empty response), and run the handshake.  Subclasses say what
    happens once the tunnel is up (:meth:`established`, :meth:`tunnel_data`)."""

    name = "tls"
    eap_type = 13
    version = 0

    def __init__(self, context: SSL.Context) -> None:
        self.tunnel = Tunnel(context)
        self._incoming = bytearray()
        self._outgoing = b""
        self._sent = 0

    def start(self) -> bytes:
        return bytes((FLAG_S | self.version,))

    def process(self, data: bytes) -> Step:
        if not data:
            return Failed(f"{self.name}: empty response")
        flags = data[0]
        body = data[1:]
        if flags & FLAG_L:
            if len(body) < 4:
                return Failed(f"{self.name}: TLS Message Length cut short")
            if int.from_bytes(body[:4], "big") > MAX_TLS_MESSAGE:
                return Failed(f"{self.name}: TLS message over {MAX_TLS_MESSAGE} octets")
            body = body[4:]
        if self._sent < len(self._outgoing):
            # RFC 5216 §3.2: the peer acknowledges each of our fragments with an empty response.
            if body or flags & FLAG_M:
                return Failed(f"{self.name}: data instead of a fragment acknowledgement")
            return Next(self._fragment())
        self._incoming += body
        if len(self._incoming) > MAX_TLS_MESSAGE:
            return Failed(f"{self.name}: TLS message over {MAX_TLS_MESSAGE} octets")
        if flags & FLAG_M:
            return Next(bytes((self.version,)))  # acknowledge; more fragments follow
        message = bytes(self._incoming)
        self._incoming.clear()
        try:
            if self.tunnel.established:
                return self.tunnel_data(message)
            if not self.tunnel.handshake(message):
                out = self.tunnel.output()
                return self.send(out) if out else Next(bytes((self.version,)))
            return self.established(self.tunnel.output())
        except TlsError as exc:
            return Failed(f"{self.name}: TLS: {exc}")

    def send(self, message: bytes) -> Next:
        """Start sending ``message``, fragmented (RFC 5216 §3.1: L on the first of several)."""
        self._outgoing = message
        self._sent = 0
        return Next(self._fragment())

    def _fragment(self) -> bytes:
        message, sent = self._outgoing, self._sent
        chunk = message[sent : sent + FRAGMENT_SIZE]
        self._sent = sent + len(chunk)
        more = self._sent < len(message)
        if sent == 0 and more:
            return bytes((FLAG_L | FLAG_M | self.version,)) + len(message).to_bytes(4, "big") + chunk
        return bytes(((FLAG_M if more else 0) | self.version,)) + chunk

    # -- hooks -----------------------------------------------------------------------------

    def established(self, flight: bytes) -> Step:
        raise NotImplementedError

    def tunnel_data(self, message: bytes) -> Step:
        raise NotImplementedError


class EapTls(TlsMethod):
    """EAP-TLS (RFC 5216, and RFC 9190 for TLS 1.3): the client certificate is the credential."""

    name = "eap-tls"
    eap_type = 13

    def __init__(
        self, context: SSL.Context, *, users: Mapping[str, bytes] | None = None, directory: str | None = None
    ) -> None:
        """``directory``: which certificate name (certificate_name) to look up in the directory
        for a holder that is not in ``users``; None: no directory, the subject's CN."""
        super().__init__(context)
        self._finished = False
        self._users = users if users is not None else {}
        self._directory = directory

    def established(self, flight: bytes) -> Step:
        if self.tunnel.version == "TLSv1.3":
            # RFC 9190 §2.1.1: one octet of application data, 0x00, commits the server to
            # sending no more handshake messages (hostapd and wpa_supplicant 2.10 expect it).
            flight += self.tunnel.send(b"\x00")
        self._finished = True
        return self.send(flight)

    def tunnel_data(self, message: bytes) -> Step:
        if not self._finished or message:
            return Failed("eap-tls: data after the handshake")
        cert = self.tunnel.peer_certificate()
        if cert is None:  # the context requires one; this is a second line of defence
            return Failed("eap-tls: no client certificate")
        if self._directory is None:
            return Done(certificate_identity(cert), self.msk())
        name = certificate_name(cert, self._directory)
        if name is None:
            return Failed(f"eap-tls: the certificate has no {self._directory.replace('_', ' ')} to look up")
        if name in self._users:  # nac's own users first, then the directory
            return Done(name, self.msk())

        def found(answer: DirectoryAnswer) -> Done | Failed:
            if not answer.ok:
                return Failed(f"eap-tls: {answer.reason}")
            return Done(name, self.msk(), answer)

        return Lookup(DirectoryQuery(kind="entry", user=name), found)

    def msk(self) -> bytes:
        if self.tunnel.version == "TLSv1.3":
            # RFC 9190 §2.3: Key_Material = TLS-Exporter("EXPORTER_EAP_TLS_Key_Material",
            # Type-Code, 128); MSK is its first 64 octets.
            return self.tunnel.export(b"EXPORTER_EAP_TLS_Key_Material", 128, bytes((self.eap_type,)))[:64]
        # RFC 5216 §2.3: PRF(master secret, "client EAP encryption", randoms), first 64 octets.
        return self.tunnel.export(b"client EAP encryption", 128)[:64]
