"""`nac web`: the helpdesk's read-only page, served by the standard library.

One page (search a MAC in any spelling, refusals only, CSV export, the `why` story) and a JSON
endpoint it polls every few seconds for new decisions.  No framework: http.server in threads
is enough for a handful of helpdesk browsers, and it adds no dependency to a RADIUS server.

Read-only by construction: the database is opened with sqlite's ``mode=ro`` (nac.store
``Store.readonly``) and only GET and HEAD are served.  Everything shown comes from the network
(User-Name, NAS-Port-Id...), so the page builds the DOM with ``textContent`` only and the
Content-Security-Policy allows no script but the page's own (by hash).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import io
import json
import logging
import socket
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from nac.app import Nac
from nac.errors import InvalidMacError, NacError, PolicyError

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
const token = new URLSearchParams(location.search).get("token") || "";
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
  const csv = new URLSearchParams(a);
  if (token) csv.set("token", token);
  document.getElementById("csv").href = "export.csv?" + csv.toString();
  try {{
    const resp = await fetch("api/decisions?" + a.toString(), {{headers: {{"X-Nac-Token": token}}}});
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
<table><thead><tr><th>time (UTC)</th><th>MAC</th><th>vendor</th><th>decision</th><th>rule</th>
<th>reason</th><th>switch / AP</th><th>port / SSID</th><th>method</th><th>User-Name</th></tr></thead>
<tbody id="rows"></tbody></table>
<script>{_SCRIPT}</script>
</body></html>
"""


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


_HEADERS: Final = {
    "Content-Security-Policy": (
        f"default-src 'none'; script-src {_csp_hash(_SCRIPT)}; style-src {_csp_hash(_STYLE)}; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the token may be in the URL
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


class Helpdesk:
    """The page's data: one read-only database connection, used by one request at a time."""

    def __init__(self, db: str | None, *, token: str | None = None) -> None:
        self.nac = Nac.readonly(db)
        self.token = token
        self.lock = threading.Lock()
        self._registry_version = self.nac.store.registry_version()
        _ = self.nac.registry  # loaded now, not by the first helpdesk search (~0.5 s)

    def close(self) -> None:
        self.nac.close()

    def authorized(self, given: str | None) -> bool:
        if not self.token:
            return True
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def decisions(self, query: Mapping[str, str], *, limit: int = PAGE_ROWS) -> dict[str, Any]:
        """The rows for the page's filters and, for one MAC, the `why` story."""
        mac = query.get("mac", "").strip() or None
        action = query.get("action") or None
        since = _SINCE.get(query.get("since", "7d"), "7d")
        with self.lock:
            version = self.nac.store.registry_version()
            if version != self._registry_version:  # an import happened: decide with the new one
                self.nac.__dict__.pop("registry", None)
                self._registry_version = version
                _ = self.nac.registry
            rows = self.nac.history(mac=mac, action=action, since=since, limit=limit)
            why = self.nac.why(mac) if mac else None
        return {"rows": rows, "why": why}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    helpdesk: Helpdesk


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "nac-web"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)

    def do_HEAD(self) -> None:
        self._route(body=False)

    def do_GET(self) -> None:
        self._route(body=True)

    def _refuse_method(self) -> None:
        self._send(
            HTTPStatus.METHOD_NOT_ALLOWED,
            b"read-only: GET and HEAD only\n",
            "text/plain",
            extra={"Allow": "GET, HEAD"},
        )

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse_method  # noqa: N815 - http.server's names

    def _route(self, *, body: bool) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        helpdesk = self.server.helpdesk
        given = (
            query.pop("token", None)
            or self.headers.get("X-Nac-Token")
            or _bearer(self.headers.get("Authorization"))
        )
        if not helpdesk.authorized(given):
            self._json(
                HTTPStatus.UNAUTHORIZED,
                {"error": "an access token is required (?token= or X-Nac-Token)"},
                body=body,
            )
            return
        try:
            if url.path == "/":
                self._send(HTTPStatus.OK, _PAGE.encode(), "text/html; charset=utf-8", body=body)
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

    def _json(self, status: HTTPStatus, data: object, *, body: bool = True) -> None:
        # "<" escaped too: the JSON stays inert even if something renders it as HTML.
        text = json.dumps(data, ensure_ascii=False).replace("<", "\\u003c")
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
        self, db: str | None, *, bind: str = "127.0.0.1", port: int = DEFAULT_PORT, token: str | None = None
    ) -> None:
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


def serve_forever(db: str | None, *, bind: str, port: int, token: str | None) -> None:
    """`nac web`: serve until interrupted."""
    server = WebServer(db, bind=bind, port=port, token=token)
    print(
        f"nac web: {server.url} (database {server.httpd.helpdesk.nac.store.path}, read-only"
        f"{', token required' if token else ''}); Ctrl-C stops",
        flush=True,
    )
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
        server.httpd.helpdesk.close()
