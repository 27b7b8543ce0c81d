"""Complete 802.1X authentications per second: EAP-TLS and PEAP-MSCHAPv2 against `nac serve`.

Starts its own `nac serve` in a temporary directory with a lab PKI (`nac certs init`) and one
user, then runs `eapol_test` (wpa_supplicant's RADIUS test client) CONCURRENCY at a time until
COUNT authentications of each method have completed, and reports authentications per second
and each one's wall time.  Every authentication must end in SUCCESS with "MPPE keys OK".

    python bench/eap_bench.py --count 200 --concurrency 8 [--server nac|freeradius|both] [--json]

eapol_test is one process per authentication (~5-10 ms of its own start-up), so the numbers are
a floor for the server; `nac serve` is one Python process, and its CPU is what saturates.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SECRET = "bench-secret"  # noqa: S105 (a throwaway lab secret)
PASSWORD = "correct horse battery"  # noqa: S105


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _nac(*args: str, stdin: str | None = None) -> None:
    subprocess.run(
        [sys.executable, "-m", "nac", *args], input=stdin, text=True, check=True, capture_output=True
    )


def _networks(pki: Path) -> dict[str, str]:
    tls = (
        f'network={{\n key_mgmt=WPA-EAP\n eap=TLS\n identity="client.nac.lab"\n ca_cert="{pki}/ca.pem"\n'
        f' client_cert="{pki}/client.pem"\n private_key="{pki}/client.key"\n}}\n'
    )
    peap = (
        f'network={{\n key_mgmt=WPA-EAP\n eap=PEAP\n identity="alice"\n password="{PASSWORD}"\n'
        f' ca_cert="{pki}/ca.pem"\n phase2="auth=MSCHAPV2"\n}}\n'
    )
    return {"eap-tls": tls, "peap-mschapv2": peap}


def _one(eapol: str, conf: Path, port: int, index: int) -> float:
    mac = f"00:10:a4:{index >> 16 & 255:02x}:{index >> 8 & 255:02x}:{index & 255:02x}"
    started = time.perf_counter()
    result = subprocess.run(
        [
            eapol,
            "-c",
            str(conf),
            "-a",
            "127.0.0.1",
            "-p",
            str(port),
            "-s",
            SECRET,
            "-M",
            mac,
            "-t",
            "15",
            "-r",
            "0",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0 or "MPPE keys OK: 1  mismatch: 0" not in result.stdout:
        raise RuntimeError(f"authentication {index} failed:\n{result.stdout[-2000:]}")
    return elapsed


HERE = Path(__file__).resolve().parent


def _start_nac(work: Path, pki: Path, port: int) -> subprocess.Popen[bytes]:
    db = work / "nac.db"
    _nac("users", "add", "alice", "--db", str(db), stdin=PASSWORD + "\n")
    config = work / "nac.toml"
    config.write_text(
        f'[server]\nbind = "127.0.0.1"\nauth_port = {port}\nacct_port = {_free_port()}\n\n'
        f'[[client]]\nname = "bench"\naddress = "127.0.0.1"\nsecret = "{SECRET}"\n\n'
        f'[eap]\ncertificate = "{pki}/server.pem"\nprivate_key = "{pki}/server.key"\n'
        f'ca_certificates = "{pki}/ca.pem"\n'
    )
    argv = [
        sys.executable,
        "-m",
        "nac",
        "serve",
        "--config",
        str(config),
        "--db",
        str(db),
        "--log-level",
        "warning",
    ]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _start_freeradius(work: Path, pki: Path, port: int) -> subprocess.Popen[bytes]:
    """FreeRADIUS 3.2 (Debian's configuration, its default thread pool) with the same PKI."""
    if shutil.which("freeradius") is None:
        raise SystemExit("freeradius is not installed (apt-get install -y freeradius)")
    script = HERE / "freeradius" / "eap.sh"
    argv = ["bash", str(script), str(work / "freeradius"), str(pki), str(port), SECRET, "alice", PASSWORD]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run(count: int, concurrency: int, server: str = "nac") -> dict[str, dict[str, float]]:
    eapol = shutil.which("eapol_test")
    if eapol is None:
        raise SystemExit("eapol_test is not on PATH (Debian package eapoltest)")
    with tempfile.TemporaryDirectory(prefix="nac-eap-bench-") as tmp:
        work = Path(tmp)
        pki = work / "pki"
        _nac("certs", "init", str(pki))
        port = _free_port()
        process = (_start_freeradius if server == "freeradius" else _start_nac)(work, pki, port)
        try:
            time.sleep(3.0)  # start-up; the first authentication proves readiness anyway
            results: dict[str, dict[str, float]] = {}
            for name, text in _networks(pki).items():
                conf = work / f"{name}.conf"
                conf.write_text(text)
                _one(eapol, conf, port, 0)  # warm-up
                with ThreadPoolExecutor(concurrency) as pool:
                    started = time.perf_counter()
                    times = list(pool.map(lambda i, c=conf: _one(eapol, c, port, i), range(1, count + 1)))
                    wall = time.perf_counter() - started
                results[name] = {
                    "authentications": count,
                    "concurrency": concurrency,
                    "per_second": round(count / wall, 1),
                    "median_ms": round(statistics.median(times) * 1000, 1),
                    "p95_ms": round(sorted(times)[int(len(times) * 0.95) - 1] * 1000, 1),
                }
            return results
        finally:
            process.terminate()
            process.wait(timeout=15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="authentications per method")
    parser.add_argument("--concurrency", type=int, default=8, help="eapol_test processes at once")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument(
        "--server",
        choices=["nac", "freeradius", "both"],
        default="nac",
        help="FreeRADIUS 3.2 with the same PKI",
    )
    args = parser.parse_args()
    servers = ["nac", "freeradius"] if args.server == "both" else [args.server]
    results = {server: run(args.count, args.concurrency, server) for server in servers}
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for server, rows in results.items():
        for name, row in rows.items():
            print(
                f"{server:11} {name:15} {row['per_second']:7.1f} auth/s  median {row['median_ms']:6.1f} ms  "
                f"p95 {row['p95_ms']:6.1f} ms  ({row['authentications']} at concurrency {row['concurrency']})"
            )


if __name__ == "__main__":
    main()
