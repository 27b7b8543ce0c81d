"""`nac web`: the read-only helpdesk page, over HTTP and in a real headless browser."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import sqlite3
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import nac.resources
from nac.oui import Registry
from nac.store import Store
from nac.web import WebServer
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
    ("suffix", "headers"),
    [(f"?token={TOKEN}", {}), ("", {"X-Nac-Token": TOKEN}), ("", {"Authorization": f"Bearer {TOKEN}"})],
    ids=["query", "header", "bearer"],
)
def test_web_accepts_the_token(web: WebServer, suffix: str, headers: dict[str, str]) -> None:
    status, head, body = get(web.url + suffix, headers=headers)
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


# -- read-only -----------------------------------------------------------------------------------


def _digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_web_refuses_methods_that_write(web: WebServer, method: str) -> None:
    status, head, _ = get(f"{web.url}api/decisions?token={TOKEN}", method=method)
    assert status == 405
    assert head["Allow"] == "GET, HEAD"


def test_web_cannot_write_to_the_database(web: WebServer, db: str) -> None:
    before = _digest(db)
    for query in ("mac=00e0fc123456", "action=reject", "since=all", "mac=bogus"):
        api(web, query)
    get(f"{web.url}export.csv?token={TOKEN}")
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
    status, head, body = get(f"{web.url}export.csv?since=all&token={TOKEN}")
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

    # The export link carries the search and the token.
    href = browser.find_element(By.ID, "csv").get_attribute("href")
    assert "mac=00E0.FC12.3456" in href
    assert f"token={TOKEN}" in href


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
