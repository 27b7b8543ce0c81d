"""`nac web`: the helpdesk's read-only page, served by the standard library.

One page (search a MAC in any spelling, refusals only, CSV export, the `why` story) and a JSON
endpoint it polls every few seconds for new decisions.  No framework: http.server in threads
is enough for a handful of helpdesk browsers, and it adds no dependency to a RADIUS server.

Read-only by construction: the database is opened with sqlite's ``mode=ro`` (nac.store
``Store.readonly``) and only GET and HEAD are served.  On a shared PostgreSQL the page shows
every server's decisions, each naming its server (node).  Everything shown comes from the network
(User-Name, NAS-Port-Id...), so the page builds the DOM with ``textContent`` only and the
Content-Security-Policy allows no script but the page's own (by hash).

Access: the token comes in a header (``Authorization: Bearer``) or in a cookie set by the login
form or by ``?token=`` once, which redirects to the same URL without it, so the token stays out
of browser history.  Who may connect at all (loopback without a token, the Host header) is
nac.web_access.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import io
import logging
import re
import socket
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

from nac.app.facade import Nac
from nac.app.lists import ListTally
from nac.app.results import DecisionsPage
from nac.errors import ConfigError, InvalidMacError, NacError, PolicyError
from nac.helpdesk.access import check_token, host_allowed, host_names, is_loopback
from nac.helpdesk.listsview import lists_section
from nac.pg import PgUnreachableError
from nac.render import to_json

log = logging.getLogger("nac.web")

DEFAULT_PORT: Final = 8812
#: How often the page asks for new decisions.
POLL_SECONDS: Final = 3
#: Rows the page shows and the CSV export holds at most.
PAGE_ROWS: Final = 200
CSV_ROWS: Final = 10_000
_SINCE: Final = {"1h": "1h", "24h": "24h", "7d": "7d", "30d": "30d", "all": None}
#: Cells a spreadsheet would run as a formula (OWASP "CSV injection"): prefixed with a quote.
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")
#: A login form's body is one short field; anything longer is not a login.
MAX_LOGIN_BODY: Final = 4096
#: Distinct refused Hosts and peers logged (each once); past that they are only counted.
_MAX_LOGGED_KEYS: Final = 64
_TOKEN_IN_QUERY: Final = re.compile(r"(?i)([?&]token=)[^&\s]*")

_STYLE: Final = """
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
form{display:flex;gap:.8em;align-items:center;flex-wrap:wrap}
input[type=search]{font:15px monospace;width:18em;padding:.3em}
table{border-collapse:collapse;margin-top:1em;width:100%}
th,td{border-bottom:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f4f4f4}
tr.reject td.action{color:#b00;font-weight:bold}
tr.quarantine td.action{color:#a60;font-weight:bold}
tr.new{background:#ffd}
#why{background:#f7f7ff;border:1px solid #ccd;padding:.5em 1em;margin-top:1em}
#why:empty{display:none}
#error{color:#b00}
#status{color:#666}
"""

_SCRIPT: Final = f"""
"use strict";
const form = document.getElementById("search");
const seen = new Set();
let first = true;
function args() {{
  const a = new URLSearchParams();
  const mac = document.getElementById("mac").value.trim();
  if (mac) a.set("mac", mac);
  if (document.getElementById("refused").checked) a.set("action", "reject");
  a.set("since", document.getElementById("since").value);
  return a;
}}
function cell(tr, text, cls) {{
  const td = document.createElement("td");
  td.textContent = text == null ? "" : String(text);
  if (cls) td.className = cls;
  tr.appendChild(td);
}}
function render(data) {{
  const body = document.getElementById("rows");
  body.replaceChildren();
  for (const r of data.rows) {{
    const tr = document.createElement("tr");
    tr.className = r.action + (!first && !seen.has(r.id) ? " new" : "");
    seen.add(r.id);
    cell(tr, r.time); cell(tr, r.mac); cell(tr, r.vendor);
    cell(tr, r.action + (r.vlan ? " (VLAN " + r.vlan + ")" : ""), "action");
    cell(tr, r.rule); cell(tr, r.reason); cell(tr, r.client);
    cell(tr, [r.port, r.ssid].filter(Boolean).join(" / ")); cell(tr, r.method); cell(tr, r.user_name);
    cell(tr, r.node);
    body.appendChild(tr);
  }}
  first = false;
  const why = document.getElementById("why");
  why.replaceChildren();
  for (const line of (data.why ? data.why.lines : [])) {{
    const p = document.createElement("p");
    p.textContent = line;
    why.appendChild(p);
  }}
  document.getElementById("count").textContent = data.rows.length + " decisions";
}}
async function refresh() {{
  const a = args();
  document.getElementById("csv").href = "export.csv?" + a.toString();
  try {{
    const resp = await fetch("api/decisions?" + a.toString());
    const data = await resp.json();
    document.getElementById("error").textContent = resp.ok ? "" : (data.error || resp.statusText);
    if (resp.ok) render(data);
    document.getElementById("status").textContent = "updated " + new Date().toLocaleTimeString();
  }} catch (e) {{
    document.getElementById("status").textContent = "cannot reach nac web: " + e;
  }}
}}
form.addEventListener("submit", (e) => {{ e.preventDefault(); seen.clear(); first = true; refresh(); }});
document.getElementById("refused").addEventListener("change", () => form.requestSubmit());
document.getElementById("since").addEventListener("change", () => form.requestSubmit());
refresh();
setInterval(refresh, {POLL_SECONDS * 1000});
"""

_PAGE: Final = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>nac helpdesk</title><style>{_STYLE}</style></head>
<body>
<h1>nac helpdesk</h1>
<form id="search" autocomplete="off">
  <label>MAC <input type="search" id="mac" name="mac" placeholder="00-10-A4-23-19-C0, 0010.a423.19c0, ..."
    autofocus></label>
  <button type="submit" id="go">Search</button>
  <label><input type="checkbox" id="refused"> refusals only</label>
  <label>since <select id="since">
    <option value="1h">1 hour</option><option value="24h">24 hours</option>
    <option value="7d" selected>7 days</option><option value="30d">30 days</option>
    <option value="all">all</option></select></label>
  <a id="csv" href="export.csv">export CSV</a>
  <span id="count"></span> <span id="status"></span>
</form>
<p id="error" role="alert"></p>
<section id="why" aria-label="why"></section>
<section id="lists" aria-label="ban lists"><!--lists--></section>
<table><thead><tr><th>time (UTC)</th><th>MAC</th><th>vendor</th><th>decision</th><th>rule</th>
<th>reason</th><th>switch / AP</th><th>port / SSID</th><th>method</th><th>User-Name</th>
<th>server</th></tr></thead>
<tbody id="rows"></tbody></table>
<script>{_SCRIPT}</script>
</body></html>
"""

#: Shown instead of the page until the browser holds the session cookie; no script needed.
_LOGIN_PAGE: Final = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>nac helpdesk: log in</title><style>{_STYLE}</style></head>
<body>
<h1>nac helpdesk</h1>
<p id="error" role="alert">{{message}}</p>
<form method="post" action="login">
  <label>Access token <input type="password" name="token" autocomplete="current-password" autofocus></label>
  <button type="submit">Log in</button>
</form>
</body></html>
"""
_LOG_IN_FIRST: Final = "An access token is required: log in, or send Authorization: Bearer TOKEN."


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


_HEADERS: Final = {
    "Content-Security-Policy": (
        f"default-src 'none'; script-src {_csp_hash(_SCRIPT)}; style-src {_csp_hash(_STYLE)}; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # a ?token= URL answers with a redirect, but never leak it
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


class Helpdesk:
    """The page's data: one read-only database connection, used by one request at a time."""

    def __init__(self, db: str | None, *, token: str | None = None) -> None:
        self.token = check_token(token)
        self.db = db
        self.nac = Nac.readonly(db)
        self.lock = threading.Lock()
        #: PostgreSQL went away under the last request: the next one connects again.
        self._reconnect = False
        #: Refused requests by reason ("host", "no_token", "wrong_token").
        self.refused: Counter[str] = Counter()
        self._refused_lock = threading.Lock()
        self._logged: set[tuple[str, str]] = set()
        self._registry_version = self._registry_in_force()
        _ = self.nac.registry  # loaded now, not by the first helpdesk search (~0.5 s)

    def close(self) -> None:
        self.nac.close()

    def authorized(self, given: str | None) -> bool:
        if self.token is None:
            return True
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def session(self) -> str:
        """The session cookie's value: derived from the token, so the browser never stores the
        token itself and a new token ends every session."""
        key = (self.token or "").encode()  # only asked for when a token is set
        return hmac.new(key, b"nac web session", hashlib.sha256).hexdigest()

    def session_valid(self, given: str | None) -> bool:
        if self.token is None:
            return True
        return given is not None and hmac.compare_digest(given.encode(), self.session().encode())

    def count_refused(
        self, reason: str, *, key: str | None = None, message: str = "", **args: object
    ) -> None:
        """Count a refusal; log ``message`` the first time ``key`` is refused for ``reason`` (a
        browser polling every few seconds would otherwise fill the log)."""
        with self._refused_lock:
            self.refused[reason] += 1
            first = key is not None and (reason, key) not in self._logged
            if first and len(self._logged) < _MAX_LOGGED_KEYS:
                self._logged.add((reason, str(key)))
            else:
                first = False
        if first:
            log.warning("nac web: " + message + " (logged once, all counted)", args)

    def _registry_in_force(self) -> int:
        """The registry's version, in the SQLite database or in PostgreSQL (imports are shared)."""
        return self.nac.policy_store.registry_version()

    @contextmanager
    def _reading(self) -> Iterator[Nac]:
        """The library, one request at a time; a PostgreSQL that went away (restart, failover)
        fails this request with one line and is connected to again by the next."""
        with self.lock:
            if self._reconnect:
                fresh = Nac.readonly(self.db)  # still away: this request fails the same way
                fresh.__dict__["registry"] = self.nac.registry  # reloaded if its version moved
                self.nac.close()
                self.nac, self._reconnect = fresh, False
                log.warning("nac web: connected to %s again", self.nac.policy_store.path)
            try:
                yield self.nac
            except PgUnreachableError:
                self._reconnect = True
                raise

    def decisions(self, query: Mapping[str, str], *, limit: int = PAGE_ROWS) -> DecisionsPage:
        """The rows for the page's filters and, for one MAC, the `why` story."""
        mac = query.get("mac", "").strip() or None
        action = query.get("action") or None
        since = _SINCE.get(query.get("since", "7d"), "7d")
        with self._reading():
            version = self._registry_in_force()
            if version != self._registry_version:  # an import happened: decide with the new one
                self.nac.__dict__.pop("registry", None)
                self._registry_version = version
                _ = self.nac.registry
            rows = self.nac.history(mac=mac, action=action, since=since, limit=limit)
            why = self.nac.why(mac) if mac else None
        return DecisionsPage(rows=rows, why=why)

    def lists(self, query: Mapping[str, str]) -> tuple[list[ListTally], str | None]:
        """Per ban list in force, the devices refused under it by site, since ``since``."""
        since = _SINCE.get(query.get("since", "7d"), "7d")
        with self._reading() as nac:
            return nac.list_stats(since), since


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    helpdesk: Helpdesk
    host_names: frozenset[tuple[str, int | None]]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "nac-web"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        # http.server logs the request line, which may carry ?token=: never log the token.
        log.info("%s %s", self.address_string(), _TOKEN_IN_QUERY.sub(r"\1-", format % args))

    def do_HEAD(self) -> None:
        self._route(body=False)

    def do_GET(self) -> None:
        self._route(body=True)

    def do_POST(self) -> None:
        if not self._host_ok():
            return
        if urlsplit(self.path).path == "/login":
            self._login()
        else:
            self._refuse_method()

    def _refuse_method(self) -> None:
        if not self._host_ok():
            return
        self._send(
            HTTPStatus.METHOD_NOT_ALLOWED,
            b"read-only: GET and HEAD only (and POST /login)\n",
            "text/plain",
            extra={"Allow": "GET, HEAD"},
        )

    do_PUT = do_DELETE = do_PATCH = _refuse_method  # noqa: N815 - http.server's names

    @property
    def _cookie_name(self) -> str:
        # Cookies ignore ports: one name per port keeps two `nac web` on one host apart.
        return f"nac_web_{self.server.server_address[1]}"

    def _host_ok(self) -> bool:
        """Refuse (421, counted) a Host that is not ours: the DNS rebinding guard."""
        header = self.headers.get("Host")
        allowed = host_allowed(
            header,
            local_ip=str(self.connection.getsockname()[0]),
            port=int(self.server.server_address[1]),
            names=self.server.host_names,
        )
        if not allowed:
            self.server.helpdesk.count_refused(
                "host",
                key=header or "",
                message="refused Host %(host)r from %(peer)s: not this server's address or a --host-name",
                host=header or "",
                peer=self.client_address[0],
            )
            self._send(
                HTTPStatus.MISDIRECTED_REQUEST,
                b"unknown Host: use the address nac web listens on, or start it with --host-name\n",
                "text/plain",
                body=self.command != "HEAD",
            )
        return allowed

    def _session_cookie(self) -> str | None:
        for part in self.headers.get("Cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == self._cookie_name:
                return value
        return None

    def _set_cookie(self) -> dict[str, str]:
        value = self.server.helpdesk.session()
        return {"Set-Cookie": f"{self._cookie_name}={value}; Path=/; HttpOnly; SameSite=Strict"}

    def _login(self) -> None:
        """The login form's POST: a right token sets the session cookie and goes to the page."""
        helpdesk = self.server.helpdesk
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_LOGIN_BODY:
            self._send(HTTPStatus.BAD_REQUEST, b"a login is one short form field\n", "text/plain")
            self.close_connection = True  # the body, if any, is left unread
            return
        form = parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
        given = form.get("token", [None])[-1]
        if not helpdesk.authorized(given):
            self._count_wrong_token()
            self._login_page("Wrong token.")
            return
        cookie = self._set_cookie() if helpdesk.token is not None else {}
        self._send(HTTPStatus.SEE_OTHER, b"", "text/plain", extra={"Location": "./", **cookie})

    def _login_page(self, message: str, *, body: bool = True) -> None:
        page = _LOGIN_PAGE.replace("{message}", message)
        self._send(HTTPStatus.UNAUTHORIZED, page.encode(), "text/html; charset=utf-8", body=body)

    def _route(self, *, body: bool) -> None:
        if not self._host_ok():
            return
        url = urlsplit(self.path)
        pairs = parse_qsl(url.query, keep_blank_values=True)
        query = {k: v for k, v in pairs if k != "token"}  # the last of a repeated key wins
        helpdesk = self.server.helpdesk
        in_url = [v for k, v in pairs if k == "token"]
        if in_url and helpdesk.token is not None:
            # Once, from a bookmark or a link: trade it for the cookie, and drop it from the URL.
            if not helpdesk.authorized(in_url[-1]):
                self._count_wrong_token()
                self._refuse_token(url.path, body=body)
                return
            rest = [(k, v) for k, v in pairs if k != "token"]
            # Relative, so that it holds behind a proxy that serves nac web under a path.
            clean = "./" + url.path.rsplit("/", 1)[-1] + ("?" + urlencode(rest) if rest else "")
            extra = {"Location": clean, **self._set_cookie()}
            self._send(HTTPStatus.SEE_OTHER, b"", "text/plain", body=body, extra=extra)
            return
        given = self.headers.get("X-Nac-Token") or _bearer(self.headers.get("Authorization"))
        cookie = self._session_cookie()
        if given:
            allowed = helpdesk.authorized(given)
        elif cookie is not None:
            allowed = helpdesk.session_valid(cookie)  # a stale one after a new token, too
        else:
            allowed = helpdesk.token is None
        if not allowed:
            if given or cookie is not None:
                self._count_wrong_token()
            else:
                helpdesk.count_refused("no_token")  # a first visit: the login form, no log line
            self._refuse_token(url.path, body=body)
            return
        try:
            if url.path == "/":
                tallies, since = helpdesk.lists(query)
                page = _PAGE.replace("<!--lists-->", lists_section(tallies, since=since), 1)
                self._send(HTTPStatus.OK, page.encode(), "text/html; charset=utf-8", body=body)
            elif url.path == "/api/lists":
                self._json(HTTPStatus.OK, helpdesk.lists(query)[0], body=body)
            elif url.path == "/api/decisions":
                self._json(HTTPStatus.OK, helpdesk.decisions(query), body=body)
            elif url.path == "/export.csv":
                rows = helpdesk.decisions(query, limit=CSV_ROWS)["rows"]
                stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
                self._send(
                    HTTPStatus.OK,
                    _csv(rows).encode(),
                    "text/csv; charset=utf-8",
                    body=body,
                    extra={"Content-Disposition": f'attachment; filename="nac-history-{stamp}.csv"'},
                )
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": "not found"}, body=body)
        except (InvalidMacError, PolicyError) as exc:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)}, body=body)
        except NacError as exc:
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": str(exc)}, body=body)

    def _count_wrong_token(self) -> None:
        peer = self.client_address[0]
        self.server.helpdesk.count_refused(
            "wrong_token", key=peer, message="wrong access token from %(peer)s", peer=peer
        )

    def _refuse_token(self, path: str, *, body: bool) -> None:
        if path == "/":
            self._login_page(_LOG_IN_FIRST, body=body)
        else:
            self._json(HTTPStatus.UNAUTHORIZED, {"error": _LOG_IN_FIRST}, body=body)

    def _json(self, status: HTTPStatus, data: object, *, body: bool = True) -> None:
        # "<" escaped too: the JSON stays inert even if something renders it as HTML.
        text = to_json(data, indent=None).replace("<", "\\u003c")
        self._send(status, text.encode(), "application/json; charset=utf-8", body=body)

    def _send(
        self,
        status: HTTPStatus,
        payload: bytes,
        content_type: str,
        *,
        body: bool = True,
        extra: Mapping[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in {**_HEADERS, **(extra or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        if body:
            self.wfile.write(payload)


def _bearer(header: str | None) -> str | None:
    if header and header.lower().startswith("bearer "):
        return header[7:].strip()
    return None


def _csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    columns = list(rows[0]) if rows else ["time", "mac", "vendor", "action", "vlan", "rule", "reason"]
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()})
    return out.getvalue()


def _cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


class WebServer:
    """`nac web` running in a thread (tests, or an embedding process); :meth:`stop` ends it."""

    def __init__(
        self,
        db: str | None,
        *,
        bind: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        token: str | None = None,
        names: Iterable[str] = (),
    ) -> None:
        token = check_token(token)
        allowed_names = host_names(names)
        if token is None and not is_loopback(bind):
            raise ConfigError(
                f"nac web on {bind} (not loopback) needs an access token: "
                "--token-file FILE, or $NAC_WEB_TOKEN"
            )
        helpdesk = Helpdesk(db, token=token)
        server_class = (
            type("_Server6", (_Server,), {"address_family": socket.AF_INET6}) if ":" in bind else _Server
        )
        try:
            self.httpd = server_class((bind, port), _Handler)
        except OSError as exc:
            helpdesk.close()
            raise NacError(f"cannot listen on {bind} port {port}: {exc.strerror}") from None
        self.httpd.helpdesk = helpdesk
        self.httpd.host_names = allowed_names
        host, port = self.httpd.server_address[:2]
        self.url = f"http://{'[' + str(host) + ']' if ':' in str(host) else host}:{port}/"
        self._thread: threading.Thread | None = None

    def start(self) -> WebServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="nac-web", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.httpd.helpdesk.close()
        if self._thread is not None:
            self._thread.join(timeout=5)


def serve_forever(
    db: str | None, *, bind: str, port: int, token: str | None, names: Iterable[str] = ()
) -> None:
    """`nac web`: serve until interrupted."""
    server = WebServer(db, bind=bind, port=port, token=token, names=names)
    helpdesk = server.httpd.helpdesk
    print(
        f"nac web: {server.url} (database {helpdesk.nac.policy_store.path}, read-only"
        f"{', token required' if helpdesk.token is not None else ''}); Ctrl-C stops",
        flush=True,
    )
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
        server.httpd.helpdesk.close()
