"""`nac web`: the read-only helpdesk page, over HTTP and in a real headless browser."""

from __future__ import annotations

import csv
import hashlib
import hmac
import http.client
import io
import json
import logging
import os
import select
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import nac.resources
from nac.errors import ConfigError
from nac.helpdesk.access import host_allowed, host_names, is_loopback
from nac.helpdesk.web import WebServer
from nac.registry.oui import Registry
from nac.store import Store
from tests.helpdesk_rows import decision, write

TOKEN = "s3cret-token"
HUAWEI = "00:e0:fc:12:34:56"
XIRCOM = "00:10:a4:23:19:c0"
EVIL = '<img src=x onerror="document.title=1">'
HUAWEI_ROW = {"vendor": "HUAWEI TECHNOLOGIES CO.,LTD", "prefix": "00:E0:FC", "client": "access-sw2"}


@pytest.fixture(scope="module")
def real_registry() -> Registry:
    return nac.resources.load_registry()


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, real_registry: Registry) -> str:
    monkeypatch.setattr(nac.resources, "load_registry", lambda: real_registry)
    path = str(tmp_path / "web.db")
    now = time.time()
    rows = [decision(now - 3600 + i * 60, HUAWEI, "reject", **HUAWEI_ROW) for i in range(3)]
    rows.append(decision(now - 30, XIRCOM, "accept", user_name=EVIL))
    rows.append(decision(now - 20, "00:10:a4:00:00:01", "accept", user_name='=HYPERLINK("http://x")'))
    write(path, rows)
    store = Store(path)
    store.close()
    return path


@pytest.fixture
def web(db: str) -> Iterator[WebServer]:
    server = WebServer(db, port=0, token=TOKEN).start()
    yield server
    server.stop()


def get(
    url: str, *, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {}, method=method)  # noqa: S310 - our server
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def api(web: WebServer, query: str) -> tuple[int, Any]:
    status, _, body = get(f"{web.url}api/decisions?{query}", headers={"X-Nac-Token": TOKEN})
    return status, json.loads(body)


# -- the token ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["", "api/decisions", "export.csv"])
def test_web_refuses_without_the_token(web: WebServer, path: str) -> None:
    status, _, body = get(web.url + path)
    assert status == 401
    assert b"token" in body
    assert get(web.url + path + "?token=wrong")[0] == 401
    assert get(web.url + path, headers={"X-Nac-Token": "wrong"})[0] == 401


@pytest.mark.parametrize(
    "headers",
    [{"X-Nac-Token": TOKEN}, {"Authorization": f"Bearer {TOKEN}"}],
    ids=["header", "bearer"],
)
def test_web_accepts_the_token(web: WebServer, headers: dict[str, str]) -> None:
    status, head, body = get(web.url, headers=headers)
    assert status == 200
    assert b"nac helpdesk" in body
    assert "script-src 'sha256-" in head["Content-Security-Policy"]
    assert head["Referrer-Policy"] == "no-referrer"


def test_web_without_a_configured_token_is_open(db: str) -> None:
    server = WebServer(db, port=0).start()
    try:
        assert get(server.url + "api/decisions")[0] == 200
    finally:
        server.stop()


def test_web_binds_localhost_by_default(db: str) -> None:
    server = WebServer(db, port=0)
    try:
        assert server.url.startswith("http://127.0.0.1:")
    finally:
        server.httpd.server_close()
        server.httpd.helpdesk.close()


def raw(
    web: WebServer,
    path: str = "/",
    *,
    method: str = "GET",
    host: str | None = None,
    no_host: bool = False,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request as sent, redirects not followed; the Host is the URL's own unless given."""
    address, port = web.httpd.server_address[:2]
    conn = http.client.HTTPConnection(str(address), int(port), timeout=10)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        if not no_host:
            conn.putheader("Host", f"{address}:{port}" if host is None else host)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def _cookie(head: dict[str, str]) -> str:
    """The name=value part of a Set-Cookie, as a browser sends it back."""
    return head["Set-Cookie"].split(";", 1)[0]


# -- an empty token, and off loopback ------------------------------------------------------------


@pytest.mark.parametrize("token", ["", "   ", "\n"])
def test_web_empty_token_is_an_error(db: str, token: str) -> None:
    with pytest.raises(ConfigError, match="empty"):
        WebServer(db, port=0, token=token)


@pytest.mark.parametrize("bind", ["0.0.0.0", "::", ""])
def test_web_off_loopback_needs_a_token(db: str, bind: str) -> None:
    with pytest.raises(ConfigError, match="needs an access token"):
        WebServer(db, bind=bind, port=0)


def test_web_off_loopback_with_a_token_serves(db: str) -> None:
    server = WebServer(db, bind="0.0.0.0", port=0, token=TOKEN).start()
    try:
        # Reached at 127.0.0.1: the Host that address is allowed, the connection came in on it.
        url = f"http://127.0.0.1:{server.httpd.server_address[1]}/api/decisions"
        assert get(url, headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200
        assert get(url)[0] == 401
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("bind", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("192.0.2.1", False),
        ("::ffff:127.0.0.1", True),
    ],
)
def test_is_loopback(bind: str, loopback: bool) -> None:
    assert is_loopback(bind) is loopback


def _nac_web(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nac", "web", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("NAC_WEB_")}, **(env or {})},
    )


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--token", ""], {}, "the access token is empty"),
        ([], {"NAC_WEB_TOKEN": ""}, "$NAC_WEB_TOKEN is set but empty"),
        ([], {"NAC_WEB_TOKEN_FILE": ""}, "$NAC_WEB_TOKEN_FILE is set but empty"),
        (["--token-file", ""], {}, "the token file's name is empty"),
        (["--token-file", "EMPTY"], {}, "is empty"),
        (["--token-file", "MISSING"], {}, "cannot read the token file"),
        (["--bind", "0.0.0.0"], {}, "needs an access token"),
        (["--token", "a", "--token-file", "EMPTY"], {}, "not both"),
        (["--host-name", "a b", "--token", "x"], {}, "is not a host name"),
    ],
    ids=[
        "empty",
        "empty-env",
        "empty-file-env",
        "empty-file-name",
        "empty-file",
        "missing-file",
        "open-off-loopback",
        "both",
        "bad-host-name",
    ],
)
def test_cli_web_refuses_to_start_open(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    empty = tmp_path / "empty-token"
    empty.write_text("\n")
    paths = {"EMPTY": str(empty), "MISSING": str(tmp_path / "no-such-file")}
    argv = [paths.get(a, a) for a in args]
    # No database either: the access checks come first, and the message names them.
    result = _nac_web(*argv, "--port", "1", "--db", str(tmp_path / "none.db"), env=env)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_readme_nac_web_lines_never_expand_to_an_empty_token() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    lines = [line for line in readme.splitlines() if line.startswith("nac web")]
    assert lines
    for line in lines:
        command = line.split("#", 1)[0]
        assert "$" not in command, line  # an unset variable would become --token ""
        assert "--token-file /" in command, line


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_cli_web_with_a_token_file_serves_and_never_prints_the_token(db: str, tmp_path: Path) -> None:
    token_file = tmp_path / "web-token"
    token_file.write_text(TOKEN + "\n")
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nac",
            "web",
            "--bind",
            "0.0.0.0",
            "--port",
            str(port),
            "--token-file",
            str(token_file),
            "--db",
            db,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, "nac web printed nothing in 30 s"
        line = proc.stdout.readline()
        assert "token required" in line
        url = f"http://127.0.0.1:{port}/api/decisions"
        assert get(url, headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200
        assert get(url + f"?token={TOKEN}")[0] == 401  # redirected, and urllib keeps no cookie
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    assert TOKEN not in line + out + err


# -- the Host header (DNS rebinding) -------------------------------------------------------------


def test_web_refuses_a_foreign_host(web: WebServer, caplog: pytest.LogCaptureFixture) -> None:
    port = web.httpd.server_address[1]
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    with caplog.at_level(logging.WARNING, logger="nac.web"):
        for _ in range(3):
            status, _, body = raw(web, "/api/decisions", host=f"evil.example:{port}", headers=bearer)
            # Refused before the token is even looked at: a right token does not help.
            assert status == 421
            assert b"Host" in body
            assert len(body) < 200
    assert web.httpd.helpdesk.refused["host"] == 3
    logged = [r for r in caplog.records if "evil.example" in r.getMessage()]
    assert len(logged) == 1  # logged once per Host, counted every time


def test_web_without_a_token_still_refuses_a_foreign_host(db: str) -> None:
    # The case DNS rebinding aims at: a token-less page on loopback, reached by a foreign name.
    server = WebServer(db, port=0).start()
    try:
        port = server.httpd.server_address[1]
        assert raw(server, "/api/decisions", host=f"rebind.evil.example:{port}")[0] == 421
        assert raw(server, "/api/decisions")[0] == 200
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("{addr}:{port}", True),
        ("localhost:{port}", True),
        ("LOCALHOST:{port}", True),
        ("{addr}:1", False),
        ("{addr}", False),  # port 80 implied
        ("evil.example:{port}", False),
        ("evil.example", False),
        ("localhost.evil.example:{port}", False),
        ("{addr}.nip.io:{port}", False),
        ("{addr}:{port}@evil.example", False),
        ("", False),
        (None, False),
    ],
)
def test_web_host_header(web: WebServer, host: str | None, allowed: bool) -> None:
    addr, port = web.httpd.server_address[:2]
    value = None if host is None else host.format(addr=addr, port=port)
    status, _, _ = raw(
        web, "/api/decisions", host=value, no_host=value is None, headers={"X-Nac-Token": TOKEN}
    )
    assert (status == 200) is allowed, (value, status)
    if not allowed:
        assert status == 421


def test_web_host_names_configured(db: str) -> None:
    server = WebServer(
        db, port=0, token=TOKEN, names=["nac.example.org", "helpdesk.example.org:8443"]
    ).start()
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    try:
        for host, status in [
            ("nac.example.org", 200),  # behind a proxy on port 80
            ("NAC.example.org.:443", 200),  # any port for a name given without one
            ("helpdesk.example.org:8443", 200),
            ("helpdesk.example.org", 421),  # a name given with a port: that port only
            ("nac.example.org.evil.example", 421),
            ("example.org", 421),
        ]:
            assert raw(server, "/api/decisions", host=host, headers=bearer)[0] == status, host
        assert server.httpd.helpdesk.refused["host"] == 3
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("header", "local_ip", "names", "allowed"),
    [
        ("[::1]:8812", "::1", (), True),
        ("[0:0::1]:8812", "::1", (), True),
        ("[::1]", "::1", (), False),
        ("[::1:8812", "::1", (), False),
        ("10.0.0.5:8812", "::ffff:10.0.0.5", (), True),  # dual-stack socket, IPv4 client
        ("10.0.0.6:8812", "10.0.0.5", (), False),
        ("localhost:8812", "10.0.0.5", (), False),  # only when the connection is on loopback
        ("10.0.0.5:08812", "10.0.0.5", (), True),
        ("10.0.0.5:٨٨١٢", "10.0.0.5", (), False),  # non-ASCII digits
        ("nac:8812", "10.0.0.5", ("nac",), True),
        ("nac.:8812", "10.0.0.5", ("nac",), True),
        ("nacx:8812", "10.0.0.5", ("nac",), False),
    ],
)
def test_host_allowed(header: str, local_ip: str, names: tuple[str, ...], allowed: bool) -> None:
    assert host_allowed(header, local_ip=local_ip, port=8812, names=host_names(names)) is allowed


# -- the cookie: ?token= once, or the login form --------------------------------------------------


def test_web_token_in_url_redirects_to_the_clean_url_with_a_cookie(web: WebServer) -> None:
    status, head, _ = raw(web, f"/export.csv?since=all&token={TOKEN}&mac=00e0fc123456")
    assert status == 303
    assert head["Location"] == "./export.csv?since=all&mac=00e0fc123456"
    cookie = head["Set-Cookie"]
    for attribute in ("HttpOnly", "SameSite=Strict", "Path=/"):
        assert attribute in cookie
    assert TOKEN not in cookie  # the browser keeps a value derived from the token, not the token
    status, _, body = raw(web, "/export.csv?since=all&mac=00e0fc123456", headers={"Cookie": _cookie(head)})
    assert status == 200
    assert body.count(b"00:e0:fc:12:34:56") == 3
    # The page: to "./", the page's own URL, and the page then works with the cookie.
    status, head, _ = raw(web, f"/?token={TOKEN}")
    assert (status, head["Location"]) == (303, "./")
    assert raw(web, "/api/decisions", headers={"Cookie": "a=b; " + _cookie(head)})[0] == 200


def test_web_cookie_must_be_the_right_one(web: WebServer) -> None:
    _, head, _ = raw(web, f"/?token={TOKEN}")
    name, value = _cookie(head).split("=", 1)
    for cookie in (f"{name}={value[:-1]}0", f"{name}=", f"{name}={TOKEN}", f"nac_web_1={value}"):
        assert raw(web, "/api/decisions", headers={"Cookie": cookie})[0] == 401, cookie
    assert web.httpd.helpdesk.refused == {"wrong_token": 3, "no_token": 1}


def test_web_wrong_token_in_url_is_refused_without_a_cookie(web: WebServer) -> None:
    status, head, body = raw(web, "/?token=wrong")
    assert status == 401
    assert "Set-Cookie" not in head
    assert b'<form method="post" action="login">' in body


def test_web_login_form(web: WebServer) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status, head, body = raw(web, "/login", method="POST", headers=form, body=b"token=wrong")
    assert status == 401
    assert b"Wrong token." in body
    assert "Set-Cookie" not in head
    assert web.httpd.helpdesk.refused["wrong_token"] == 1
    status, head, _ = raw(web, "/login", method="POST", headers=form, body=f"token={TOKEN}".encode())
    assert (status, head["Location"]) == (303, "./")
    status, _, body = raw(web, "/", headers={"Cookie": _cookie(head)})
    assert status == 200
    assert b"nac helpdesk" in body
    assert b'<form method="post"' not in body


def test_web_wrong_tokens_are_counted_and_logged_once_per_peer(
    web: WebServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="nac.web"):
        raw(web, "/?token=guess1")
        raw(web, "/api/decisions", headers={"Authorization": "Bearer guess2"})
        raw(web, "/login", method="POST", body=b"token=guess3")
        raw(web, "/api/decisions")  # no token at all: the first visit, counted but not logged
    assert web.httpd.helpdesk.refused == {"wrong_token": 3, "no_token": 1}
    assert [r.getMessage() for r in caplog.records] == [
        "nac web: wrong access token from 127.0.0.1 (logged once, all counted)"
    ]
    assert "guess" not in caplog.text


def test_web_login_refuses_a_large_body(web: WebServer) -> None:
    status, _, _ = raw(web, "/login", method="POST", body=b"token=" + b"x" * 5000)
    assert status == 400


def test_web_compares_tokens_in_constant_time(web: WebServer, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert raw(web, "/", headers={"Authorization": "Bearer wrong"})[0] == 401
    raw(web, "/", headers={"Cookie": "nac_web_1=x"})
    raw(web, "/login", method="POST", body=b"token=nope")
    assert (b"wrong", TOKEN.encode()) in calls
    assert (b"nope", TOKEN.encode()) in calls
    assert len(calls) == 2  # the foreign-port cookie is not even compared


def test_web_never_logs_the_token(web: WebServer, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="nac.web"):
        raw(web, f"/api/decisions?since=all&token={TOKEN}")
        raw(web, f"/api/decisions?token={TOKEN}&since=all")
        raw(web, f"/?TOKEN={TOKEN}")
    assert "token=-" in caplog.text
    assert TOKEN not in caplog.text


# -- read-only -----------------------------------------------------------------------------------


def _digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_web_refuses_methods_that_write(web: WebServer, method: str) -> None:
    status, head, _ = get(f"{web.url}api/decisions", headers={"X-Nac-Token": TOKEN}, method=method)
    assert status == 405
    assert head["Allow"] == "GET, HEAD"


def test_web_cannot_write_to_the_database(web: WebServer, db: str) -> None:
    before = _digest(db)
    for query in ("mac=00e0fc123456", "action=reject", "since=all", "mac=bogus"):
        api(web, query)
    get(f"{web.url}export.csv", headers={"X-Nac-Token": TOKEN})
    conn = web.httpd.helpdesk.nac.store.conn
    for table in ("main.history", "recent.history_batches"):
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            conn.execute(f"DELETE FROM {table}")  # noqa: S608
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        conn.execute("INSERT INTO meta (key, value) VALUES ('x', 'y')")
    assert _digest(db) == before


# -- search, why, refusals, CSV ------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["00E0.FC12.3456", "00-E0-FC-12-34-56", "00e0fc123456", "00e0fc-123456"])
def test_web_search_by_mac_in_any_spelling(web: WebServer, spelling: str) -> None:
    status, data = api(web, f"mac={spelling}")
    assert status == 200
    assert [row["mac"] for row in data["rows"]] == [HUAWEI] * 3
    assert data["rows"][0]["reason"] == "ministry ban"
    assert any(line.startswith("Rejected 3 times since") for line in data["why"]["lines"])


def test_web_bad_mac_is_a_clear_400(web: WebServer) -> None:
    status, data = api(web, "mac=00:e0:fc:12:34")
    assert status == 400
    assert "is not a MAC address" in data["error"]


def test_web_refusals_only(web: WebServer) -> None:
    _, data = api(web, "action=reject&since=all")
    assert {row["action"] for row in data["rows"]} == {"reject"}
    assert len(data["rows"]) == 3
    assert data["why"] is None


def test_web_json_is_inert_as_html(web: WebServer) -> None:
    _, _, body = get(f"{web.url}api/decisions?mac={XIRCOM}", headers={"X-Nac-Token": TOKEN})
    assert b"<img" not in body
    assert json.loads(body)["rows"][0]["user_name"] == EVIL


def test_web_csv_export(web: WebServer) -> None:
    status, head, body = get(f"{web.url}export.csv?since=all", headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 200
    assert head["Content-Type"].startswith("text/csv")
    assert "attachment" in head["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert len(rows) == 5
    by_mac = {row["mac"]: row for row in rows}
    # A spreadsheet must not run a User-Name from the network as a formula.
    assert by_mac["00:10:a4:00:00:01"]["user_name"] == '\'=HYPERLINK("http://x")'
    assert by_mac[XIRCOM]["user_name"] == EVIL


# -- a real browser ------------------------------------------------------------------------------


def _browser(tmp_path: Path) -> Any:
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    driver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    missing = [p for p in (chromium, driver) if not os.path.exists(p)]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("the selenium package (pip install '.[test]')")
    if missing:
        reason = (
            f"no headless browser: {', '.join(missing)} missing "
            "(Debian: apt-get install chromium chromium-driver)"
        )
        if os.environ.get("CI"):
            pytest.fail(f"{reason}, but CI is set and .ci/run installs them", pytrace=False)
        pytest.skip(reason)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(arg)
    return webdriver.Chrome(options=options, service=Service(executable_path=driver))


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    driver = _browser(tmp_path)
    try:
        yield driver
    finally:
        driver.quit()


def _rows(driver: Any) -> list[tuple[str, str]]:
    """The table's rows as (text, action cell text), read in one script: the page replaces its
    rows every few seconds (the live feed), so elements found one call earlier can be stale."""
    rows: list[list[str]] = driver.execute_script(
        "return Array.from(document.querySelectorAll('#rows tr'), r =>"
        " [r.innerText, (r.querySelector('td.action') || {innerText: ''}).innerText])"
    )
    return [(text, action) for text, action in rows]


def test_browser_search_shows_the_refusal_and_its_reason(browser: Any, web: WebServer, db: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{web.url}?token={TOKEN}")
    wait = WebDriverWait(browser, 15)
    wait.until(_rows)  # the live feed
    box = browser.find_element(By.ID, "mac")
    box.send_keys("00E0.FC12.3456", Keys.ENTER)
    wait.until(lambda d: (rows := _rows(d)) and all(HUAWEI in text for text, _ in rows))
    rows = _rows(browser)
    assert len(rows) == 3
    assert "reject" in rows[0][1]
    assert "ministry ban" in rows[0][0]
    assert "ban-huawei" in rows[0][0]
    why = wait.until(lambda d: d.find_element(By.ID, "why").text)
    assert "Rejected 3 times since" in why
    assert "access-sw2" in why
    assert "HUAWEI TECHNOLOGIES CO.,LTD" in why
    assert browser.find_element(By.ID, "error").text == ""

    # A new decision appears without reloading the page.
    write(db, [decision(time.time(), HUAWEI, "reject", **{**HUAWEI_ROW, "client": "access-sw9"})])
    WebDriverWait(browser, 15).until(lambda d: len(_rows(d)) == 4)
    assert "access-sw9" in _rows(browser)[0][0]

    # The ?token= URL was traded for the cookie: neither the address bar nor the export link
    # carries the token, and the link works with the cookie alone.
    assert "token" not in browser.current_url
    href = browser.find_element(By.ID, "csv").get_attribute("href")
    assert "mac=00E0.FC12.3456" in href
    assert "token" not in href
    status = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0]).then(r => done(r.status), e => done(String(e)));",
        href,
    )
    assert status == 200


def test_browser_shows_network_text_as_text(browser: Any, web: WebServer) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{web.url}?token={TOKEN}")
    browser.find_element(By.ID, "mac").send_keys(XIRCOM, Keys.ENTER)
    wait = WebDriverWait(browser, 15)
    wait.until(lambda d: EVIL in d.find_element(By.ID, "rows").text)
    assert browser.find_elements(By.CSS_SELECTOR, "#rows img") == []
    assert browser.title == "nac helpdesk"


def test_browser_bad_mac_shows_why_not(browser: Any, web: WebServer) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{web.url}?token={TOKEN}")
    browser.find_element(By.ID, "mac").send_keys("00:e0:fc:12:34", Keys.ENTER)
    error = WebDriverWait(browser, 15).until(lambda d: d.find_element(By.ID, "error").text)
    assert "is not a MAC address" in error


def test_browser_without_token_sees_no_data(browser: Any, web: WebServer) -> None:
    from selenium.webdriver.common.by import By

    browser.get(web.url)
    assert "token is required" in browser.find_element(By.TAG_NAME, "body").text
    assert browser.find_elements(By.ID, "rows") == []


def test_browser_logs_in_with_the_form(browser: Any, web: WebServer) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(web.url)
    browser.find_element(By.NAME, "token").send_keys("wrong", Keys.ENTER)
    WebDriverWait(browser, 15).until(lambda d: "Wrong token" in d.find_element(By.ID, "error").text)
    browser.find_element(By.NAME, "token").send_keys(TOKEN, Keys.ENTER)
    WebDriverWait(browser, 15).until(_rows)
    assert browser.current_url == web.url
    assert browser.title == "nac helpdesk"
    # HttpOnly: the page's script cannot read the session cookie.
    assert browser.execute_script("return document.cookie") == ""
