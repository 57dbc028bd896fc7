"""The dashboard's HTTP server: stdlib ``ThreadingHTTPServer``, read-only unless told otherwise."""

from __future__ import annotations

import json
import re
import socket
import sys
import traceback
from collections import deque
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from assay.errors import UserInputError
from assay.report.page import content_policy, report_script
from assay.secrets import redact
from assay.store.runstore import RunStore
from assay.ui.archive import ArchiveBook
from assay.ui.script import DASHBOARD_JS
from assay.ui.security import Guard

MAX_BODY = 64 * 1024
RUN_PATH = re.compile(r"^/runs/([^/]+)$")
API_PATH = re.compile(r"^/api/runs/([^/]+)(?:/(progress|report))?$")
ARCHIVE_PATH = re.compile(r"^/api/runs/([^/]+)/archive$")


class HttpError(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


class DashboardServer(ThreadingHTTPServer):
    """Serves one run store. ``guard.token`` is only handed to pages when writes are allowed."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], store_dir: Path, allow_writes: bool) -> None:
        self.store_dir = store_dir
        self.store = RunStore.open(store_dir, create=False)  # read-only: it only reads
        self.archive = ArchiveBook(store_dir)
        self.allow_writes = allow_writes
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, DashboardHandler)  # on failure it calls server_close()
        self.guard = Guard(port=self.server_address[1])
        self.request_log: deque[tuple[str, str, int]] = deque(maxlen=1000)

    @property
    def url(self) -> str:
        host = str(self.server_address[0])
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        shown = f"[{shown}]" if ":" in shown else shown
        return f"http://{shown}:{self.server_address[1]}/"

    def server_close(self) -> None:
        super().server_close()
        self.store.close()


class DashboardHandler(BaseHTTPRequestHandler):
    server: DashboardServer

    def version_string(self) -> str:
        return "assay-ui"

    # --- methods ---------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._handle(self._get)

    def do_POST(self) -> None:
        self._handle(self._post)

    def do_OPTIONS(self) -> None:  # a CORS preflight: refused, and no Allow-* headers
        self._handle(self._refuse)

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS

    def _handle(self, action: Any) -> None:
        try:
            if not self.server.guard.host_ok(self.headers.get("Host")):
                raise HttpError(HTTPStatus.FORBIDDEN, "unexpected Host header")
            action()
        except HttpError as exc:
            self._send_json(exc.status, {"error": str(exc)})
        except UserInputError as exc:
            self._send_json(HTTPStatus.NOT_FOUND, {"error": str(exc)})
        except Exception:  # the client gets a line, the terminal the traceback
            traceback.print_exc(file=sys.stderr)
            self._send_json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error"})

    def _refuse(self) -> None:
        raise HttpError(HTTPStatus.FORBIDDEN, "method not allowed here")

    # --- routes ----------------------------------------------------------------------------

    def _get(self) -> None:
        from assay.ui import routes

        parts = urlsplit(self.path)
        path, params = unquote(parts.path), parse_qs(parts.query)
        if path == "/":
            return self._send_html(routes.runs(self.server, params))
        if path == "/compare":
            return self._send_html(routes.compare(self.server, params))
        if found := RUN_PATH.match(path):
            return self._send_html(routes.run(self.server, found[1]))
        if path == "/api/runs":
            return self._send_json(HTTPStatus.OK, routes.runs_json(self.server))
        if found := API_PATH.match(path):
            return self._send_json(HTTPStatus.OK, routes.run_json(self.server, found[1], found[2]))
        raise HttpError(HTTPStatus.NOT_FOUND, f"no page at {path}")

    def _post(self) -> None:
        from assay.ui import routes

        if not self.server.allow_writes:
            raise HttpError(HTTPStatus.FORBIDDEN, "read-only dashboard (start with --allow-writes)")
        headers = {name.lower(): value for name, value in self.headers.items()}
        refusal = self.server.guard.write_refusal(headers)
        if refusal is not None:
            raise HttpError(HTTPStatus.FORBIDDEN, refusal)
        found = ARCHIVE_PATH.match(unquote(urlsplit(self.path).path))
        if not found:
            raise HttpError(HTTPStatus.NOT_FOUND, "no such endpoint")
        self._send_json(
            HTTPStatus.OK, routes.set_archived(self.server, found[1], self._json_body())
        )

    def _json_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body too large")
        try:
            return json.loads(self.rfile.read(length) or b"null")
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise HttpError(HTTPStatus.BAD_REQUEST, "body is not JSON") from None

    # --- responses -------------------------------------------------------------------------

    def _send_html(self, html: str) -> None:
        policy = content_policy(report_script() + DASHBOARD_JS, connect="'self'")
        self._send(HTTPStatus.OK, redact(html).encode(), "text/html; charset=utf-8", policy)

    def _send_json(self, status: HTTPStatus, data: Any) -> None:
        body = redact(json.dumps(data, default=str)).encode()  # a store may predate redaction
        self._send(status, body, "application/json", "default-src 'none'")

    def _send(self, status: HTTPStatus, body: bytes, kind: str, policy: str) -> None:
        self.send_response(status)
        for name, value in (
            ("Content-Type", kind),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
            ("X-Frame-Options", "DENY"),
            ("Cross-Origin-Resource-Policy", "same-origin"),
            ("Cross-Origin-Opener-Policy", "same-origin"),
            ("Content-Security-Policy", policy + "; frame-ancestors 'none'"),
        ):
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.server.request_log.append((self.command, self.path, int(status)))

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the log is kept in memory
        pass
