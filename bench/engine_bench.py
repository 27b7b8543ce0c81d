"""Where a MAB decision's time goes: the request path's parts, timed in-process (no sockets, no
database writes).

    python bench/engine_bench.py            # run it pinned for steadier numbers: taskset -c 1

Prints microseconds per call for decode, the Message-Authenticator check, the MAC parse, the
password check, the policy, the history record, the reply, and for the whole decision.
"""

from __future__ import annotations

import os
import sys
import tempfile
import timeit
from pathlib import Path

from nac.bench import load as bench
from nac.config import load_config
from nac.radius import packet
from nac.radius.crypto import HmacMd5, hide_password
from nac.registry import mac
from nac.serve import run

CALLS = 200_000


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(db=str(Path(tmp) / "nac.db"))
        server = run.build_server(config, run.load_shared(config), lambda: config)
        engine = server.engine
        client = server.clients.lookup("127.0.0.1")
        assert client is not None
        data = bench.build_request("00:1e:10:12:34:56", b"testing123", 7, os.urandom(16))
        req = packet.decode(data)
        attrs = req.first
        user = attrs[engine.codes.user_name]
        device = mac.try_parse_mac(user.decode("latin-1"))
        assert device is not None
        decision, match, _ = engine._policy_decide(device, req, client, "mab", 0.0)
        body = engine._body(decision, client)
        src = ("127.0.0.1", 5000)
        aruba = packet.decode(_aruba_request(engine.codes, b"testing123"))
        parts = {
            "decode": lambda: packet.decode(data),
            "Message-Authenticator check": lambda: engine._verify_access_request(req, client),
            "MAC parse": lambda: mac.try_parse_mac(user.decode("latin-1")),
            "password check": lambda: engine._password_matches(req, attrs, client, user, device),
            "policy": lambda: engine._policy_decide(device, req, client, "mab", 0.0),
            "history record": lambda: engine._record(
                req,
                attrs=attrs,
                client=client,
                src=src,
                now=1.0,
                mac=device,
                decision=decision,
                match=match,
                method="mab",
            ),
            "reply body (cached)": lambda: engine._body(decision, client),
            "reply": lambda: packet.encode_reply(
                2, req, body, key=client.key, secret=client.secret, proxy_state=b""
            ),
            "whole decision (_decide)": lambda: engine._decide(
                req, client, src, 1.0, (0, "127.0.0.1", 5000, 7)
            ),
            "whole decision, ArubaOS SSID": lambda: engine._decide(
                aruba, client, src, 1.0, (0, "127.0.0.1", 5000, 8)
            ),
        }
        for name, call in parts.items():
            best = min(timeit.repeat(call, number=CALLS, repeat=3))
            print(f"{name:30s} {best / CALLS * 1e6:6.2f} µs")
        server.store.close()
    return 0


def _aruba_request(codes: packet.Codes, secret: bytes) -> bytes:
    """A MAB request as an ArubaOS controller sends it: its MAC alone in Called-Station-Id,
    the SSID in Aruba-Essid-Name beside Aruba-Location-Id and Aruba-AP-Group."""
    station = b"001e10123456"
    authenticator = os.urandom(16)
    vendor, essid = codes.aruba_essid_name
    vsas = b"".join(
        packet.attribute(codes.vendor_specific, vendor.to_bytes(4, "big") + packet.attribute(kind, value))
        for kind, value in ((6, b"ap-lobby"), (essid, b"corp"), (10, b"default"))
    )
    body = (
        packet.attribute(codes.user_name, station)
        + packet.attribute(codes.user_password, hide_password(station, secret, authenticator))
        + packet.attribute(codes.calling_station_id, station)
        + packet.attribute(codes.called_station_id, b"000b86aabbcc")
        + packet.attribute(codes.nas_port_type, (19).to_bytes(4, "big"))
        + vsas
    )
    return packet.encode_request(packet.ACCESS_REQUEST, 8, authenticator, body, key=HmacMd5(secret))


if __name__ == "__main__":
    sys.exit(main())
