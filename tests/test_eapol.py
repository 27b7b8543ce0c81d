"""802.1X interop: `eapol_test` (wpa_supplicant's test client, Debian package eapoltest) against
a real `nac serve`, for every method, with the keys an access point would get checked."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Final

import pytest

from nac.radius.crypto import HmacMd5
from nac.radius.packet import ACCESS_REQUEST, encode_request
from tests.interop import SECRET, NacServer, NacServerFactory, attribute, subprocess_env, udp_socket

EAPOL_TIMEOUT: Final = 30
PASSWORD: Final = "correct horse battery"
ALLOWED: Final = "00:10:a4:23:19:c0"  # Xircom: no rule, the default accepts
BANNED: Final = "00:e0:fc:12:34:56"  # Huawei: the rule below rejects it
QUARANTINED: Final = "00:1b:21:aa:bb:cc"  # Intel: quarantined to VLAN 666
RULES: Final = (
    ("--oui", "00:E0:FC", "--action", "reject", "--reason", "banned vendor", "--id", "ban-huawei"),
    ("--oui", "00:1B:21", "--action", "quarantine", "--vlan", "666", "--id", "quarantine-intel"),
)


def require_eapol_test() -> str:
    path = shutil.which("eapol_test")
    if path is None:
        reason = "eapol_test (Debian package eapoltest) is not on PATH"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}, but CI is set and CI installs it", pytrace=False)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`nac certs init` twice: the lab PKI nac trusts, and another whose client it must refuse."""
    root = tmp_path_factory.mktemp("pki")
    for name in ("lab", "other"):
        subprocess.run(
            [sys.executable, "-m", "nac", "certs", "init", str(root / name)],
            check=True,
            capture_output=True,
            env=subprocess_env(),
            timeout=60,
        )
    return root


@pytest.fixture
def server(nac_server_factory: NacServerFactory, pki: Path) -> NacServer:
    lab = pki / "lab"
    extra = (
        f'\n[eap]\ncertificate = "{lab / "server.pem"}"\nprivate_key = "{lab / "server.key"}"\n'
        f'ca_certificates = "{lab / "ca.pem"}"\nmethods = ["tls", "peap", "ttls"]\n'
    )
    srv = nac_server_factory(rules=RULES, extra_config=extra)
    subprocess.run(
        [sys.executable, "-m", "nac", "users", "add", "alice", "--db", str(srv.db)],
        input=PASSWORD + "\n",
        text=True,
        check=True,
        capture_output=True,
        env=subprocess_env(),
        timeout=60,
    )
    return srv


def network(pki: Path, method: str, *, password: str = PASSWORD, ca: str = "lab", tls13: bool = False) -> str:
    lab = pki / "lab"
    lines = ["key_mgmt=WPA-EAP", f'ca_cert="{lab / "ca.pem"}"']
    if method == "tls":
        client = pki / ca
        lines += [
            "eap=TLS",
            'identity="client.nac.lab"',
            f'client_cert="{client / "client.pem"}"',
            f'private_key="{client / "client.key"}"',
        ]
        if tls13:
            lines.append('phase1="tls_disable_tlsv1_3=0"')
    else:
        outer, inner = method.split("-")
        lines += [
            f"eap={outer.upper()}",
            'identity="alice"',
            'anonymous_identity="anonymous"',
            f'password="{password}"',
            f'phase2="auth={inner.upper()}"',
        ]
    return "network={\n" + "".join(f"    {line}\n" for line in lines) + "}\n"


def eapol_test(server: NacServer, conf: str, *, mac: str = ALLOWED) -> subprocess.CompletedProcess[str]:
    path = server.workdir / "eapol.conf"
    path.write_text(conf)
    return subprocess.run(
        [
            require_eapol_test(),
            "-c", str(path),
            "-a", "127.0.0.1",
            "-p", str(server.auth_port),
            "-s", SECRET,
            "-M", mac,
            "-t", "15",
            "-r", "0",
        ],
        capture_output=True,
        text=True,
        timeout=EAPOL_TIMEOUT,
        check=False,
    )  # fmt: skip


def last_decision(server: NacServer) -> dict[str, object]:
    rows = server.history("--json", "--limit", "1")
    assert rows, "no history row"
    return rows[0]


def assert_success(result: subprocess.CompletedProcess[str]) -> None:
    tail = result.stdout[-3000:]
    assert result.returncode == 0, tail
    assert "MPPE keys OK: 1  mismatch: 0" in result.stdout, tail
    assert result.stdout.rstrip().endswith("SUCCESS"), tail


def assert_failure(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode != 0, result.stdout[-3000:]
    assert result.stdout.rstrip().endswith("FAILURE"), result.stdout[-3000:]


@pytest.mark.parametrize(
    ("method", "tls13", "recorded", "identity"),
    [
        ("tls", False, "eap-tls", "client.nac.lab"),
        ("tls", True, "eap-tls", "client.nac.lab"),
        ("peap-mschapv2", False, "peap", "alice"),
        ("ttls-pap", False, "ttls", "alice"),
        ("ttls-mschapv2", False, "ttls", "alice"),
    ],
    ids=["eap-tls-1.2", "eap-tls-1.3", "peap-mschapv2", "ttls-pap", "ttls-mschapv2"],
)
def test_eapol_test_authenticates_with_mppe_keys(
    server: NacServer, pki: Path, method: str, tls13: bool, recorded: str, identity: str
) -> None:
    result = eapol_test(server, network(pki, method, tls13=tls13))
    assert_success(result)
    if tls13:
        assert "Using TLS version TLSv1.3" in result.stdout
    row = last_decision(server)
    assert (row["action"], row["method"], row["user_name"]) == ("accept", recorded, identity)


@pytest.mark.parametrize("method", ["peap-mschapv2", "ttls-pap", "ttls-mschapv2"])
def test_eapol_test_wrong_password_is_refused(server: NacServer, pki: Path, method: str) -> None:
    assert_failure(eapol_test(server, network(pki, method, password="not the password")))
    row = last_decision(server)
    assert row["action"] == "reject"
    assert "wrong password" in str(row["reason"])


def test_eapol_test_untrusted_client_certificate_is_refused(server: NacServer, pki: Path) -> None:
    assert_failure(eapol_test(server, network(pki, "tls", ca="other")))
    assert "certificate verify failed" in str(last_decision(server)["reason"])


def test_eapol_test_banned_mac_is_refused_on_the_first_request(server: NacServer, pki: Path) -> None:
    result = eapol_test(server, network(pki, "tls"), mac=BANNED)
    assert_failure(result)
    assert "code=11 (Access-Challenge)" not in result.stdout  # refused before any TLS work
    row = last_decision(server)
    assert (row["rule"], row["mac"]) == ("ban-huawei", BANNED)


def test_eapol_test_quarantined_mac_gets_its_vlan(server: NacServer, pki: Path) -> None:
    result = eapol_test(server, network(pki, "peap-mschapv2"), mac=QUARANTINED)
    assert_success(result)
    assert "Tunnel-Private-Group-Id" in result.stdout or "Attribute 81" in result.stdout, result.stdout[
        -3000:
    ]
    row = last_decision(server)
    assert (row["action"], row["vlan"], row["method"]) == ("quarantine", "666", "peap")


MD5_CLIENT: Final = (
    '\n[[client]]\nname = "old-switch"\naddress = "127.0.0.6"\nsecret = "{secret}"\neap_md5 = true\n'
)
MD5_NETWORK: Final = (
    'network={{\n    key_mgmt=IEEE8021X\n    eap=MD5\n    identity="bob"\n    password="{password}"\n}}\n'
)


@pytest.fixture
def md5_server(nac_server_factory: NacServerFactory, pki: Path) -> NacServer:
    lab = pki / "lab"
    extra = (
        f'\n[eap]\ncertificate = "{lab / "server.pem"}"\nprivate_key = "{lab / "server.key"}"\n'
        f'ca_certificates = "{lab / "ca.pem"}"\nmethods = ["tls", "peap", "ttls"]\n'
        + MD5_CLIENT.format(secret=SECRET)
    )
    srv = nac_server_factory(rules=RULES, extra_config=extra)
    for name, flags in (("bob", ["--eap-md5"]), ("carol", [])):
        subprocess.run(
            [sys.executable, "-m", "nac", "users", "add", name, *flags, "--db", str(srv.db)],
            input=PASSWORD + "\n", text=True, check=True, capture_output=True, env=subprocess_env(),
            timeout=60,
        )  # fmt: skip
    return srv


def _eapol_md5(server: NacServer, source: str, *, identity: str = "bob") -> subprocess.CompletedProcess[str]:
    conf = server.workdir / "md5.conf"
    conf.write_text(MD5_NETWORK.format(password=PASSWORD).replace('"bob"', f'"{identity}"'))
    return subprocess.run(
        [require_eapol_test(), "-c", str(conf), "-a", "127.0.0.1", "-A", source, "-p", str(server.auth_port),
         "-s", SECRET, "-M", ALLOWED, "-t", "15", "-r", "0", "-n"],
        capture_output=True, text=True, timeout=EAPOL_TIMEOUT, check=False,
    )  # fmt: skip


def test_eap_md5_works_only_where_the_client_enables_it(md5_server: NacServer) -> None:
    allowed = _eapol_md5(md5_server, "127.0.0.6")
    assert allowed.returncode == 0, allowed.stdout[-3000:]
    assert allowed.stdout.rstrip().endswith("SUCCESS")
    assert last_decision(md5_server)["method"] == "eap-md5"
    refused = _eapol_md5(md5_server, "127.0.0.1")  # lab-switch: no eap_md5
    assert refused.returncode != 0
    assert "no common EAP method" in str(last_decision(md5_server)["reason"])


def test_eap_md5_needs_a_user_enrolled_for_it(md5_server: NacServer) -> None:
    result = _eapol_md5(md5_server, "127.0.0.6", identity="carol")  # only an NT hash is stored
    assert result.returncode != 0
    assert "not enrolled for EAP-MD5" in str(last_decision(md5_server)["reason"])


def _identity_flood(server: NacServer, mac: str, count: int, *, window: int = 64) -> int:
    """``count`` EAP-Identity responses from one station, ``window`` in flight at a time, as a
    supplicant restarting in a loop has its switch send them; how many were challenged."""
    key = HmacMd5(SECRET.encode())
    eap = bytes((2, 1, 0, 10, 1)) + b"flood"  # EAP-Response/Identity "flood"
    body = attribute(1, b"flood") + attribute(31, mac.encode()) + attribute(79, eap)
    challenged = 0
    with udp_socket(timeout=5.0) as sock:
        for start in range(0, count, window):
            sent = min(window, count - start)
            for identifier in range(sent):
                request = encode_request(ACCESS_REQUEST, identifier, os.urandom(16), body, key=key)
                sock.sendto(request, ("127.0.0.1", server.auth_port))
            for _ in range(sent):
                reply, _ = sock.recvfrom(4096)
                challenged += reply[0] == 11  # Access-Challenge
    return challenged


def test_one_station_s_identity_flood_locks_no_one_else_out(server: NacServer, pki: Path) -> None:
    """4096 EAP-Identity responses from one MAC used to fill the conversation table (4096) and
    refuse every other supplicant for a minute; now each replaces that station's oldest."""
    flooder = "00:10:a4:00:00:01"
    assert _identity_flood(server, flooder, 4096) == 4096
    result = eapol_test(server, network(pki, "peap-mschapv2"))  # another station, at once
    assert_success(result)
    row = last_decision(server)
    assert (row["action"], row["mac"], row["user_name"]) == ("accept", ALLOWED, "alice")
    assert server.wait_for_log(f"EAP: {flooder} started over")
    assert server.proc is not None
    server.proc.send_signal(signal.SIGUSR1)  # the counters, to the log
    assert server.wait_for_log("eap:replaced:station=4094"), server.stderr()[-3000:]


def test_serving_a_lab_certificate_is_logged_loudly(server: NacServer) -> None:
    assert server.wait_for_log("802.1X uses a `nac certs init` lab certificate")


def test_a_revoked_client_certificate_is_refused(nac_server_factory: NacServerFactory, pki: Path) -> None:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    lab = pki / "lab"
    ca = x509.load_pem_x509_certificate((lab / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((lab / "ca.key").read_bytes(), password=None)
    client = x509.load_pem_x509_certificate((lab / "client.pem").read_bytes())
    now = datetime.datetime.now(datetime.UTC)
    revoked = (
        x509.RevokedCertificateBuilder().serial_number(client.serial_number).revocation_date(now).build()
    )
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.subject)
        .last_update(now)
        .next_update(now + datetime.timedelta(days=1))
        .add_revoked_certificate(revoked)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    crl_path = pki / "revoked.crl"
    crl_path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    extra = (
        f'\n[eap]\ncertificate = "{lab / "server.pem"}"\nprivate_key = "{lab / "server.key"}"\n'
        f'ca_certificates = "{lab / "ca.pem"}"\ncrl = "{crl_path}"\nmethods = ["tls"]\n'
    )
    server = nac_server_factory(rules=RULES, extra_config=extra)
    result = eapol_test(server, network(pki, "tls"))
    assert_failure(result)  # the same certificate passes without the CRL (the eap-tls tests above)
    assert "certificate verify failed" in str(last_decision(server)["reason"])
