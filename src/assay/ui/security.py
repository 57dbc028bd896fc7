"""Who may talk to the dashboard: loopback names only, and writes only from its own pages.

- **DNS rebinding**: every request must name the server by IP literal or ``localhost`` with
  the right port in its ``Host`` header; a rebound name like ``evil.example:8765`` is refused.
- **CSRF**: a write needs the per-launch token in ``X-Assay-Token`` (pages served with writes
  enabled carry it), an ``Origin`` equal to the server's own, ``Sec-Fetch-Site: same-origin``
  when the browser sends it, and ``Content-Type: application/json``. Another site can send
  neither the header (that needs a CORS preflight, which is refused: no
  ``Access-Control-Allow-*`` header is ever sent) nor JSON from a plain form.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

TOKEN_HEADER = "X-Assay-Token"


def new_token() -> str:
    return secrets.token_urlsafe(32)


def split_host(value: str) -> tuple[str, int | None]:
    """``"127.0.0.1:8765"`` -> (``"127.0.0.1"``, 8765); ``"[::1]:80"`` -> (``"::1"``, 80)."""
    if value.startswith("["):
        name, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        name, _, port = value.rpartition(":") if ":" in value else (value, "", "")
    return name.lower(), int(port) if port.isdigit() else None


def is_ip_or_localhost(name: str) -> bool:
    if name == "localhost":
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Guard:
    port: int
    token: str = field(default_factory=new_token, repr=False)

    def host_ok(self, host: str | None) -> bool:
        """The Host header names this server by IP or ``localhost`` and its port."""
        if not host:
            return False
        name, port = split_host(host.strip())
        return port == self.port and is_ip_or_localhost(name)

    def write_refusal(self, headers: Mapping[str, str]) -> str | None:
        """Why a state-changing request is refused, or None when it may proceed.

        ``headers`` has lower-case names.
        """
        origin = headers.get("origin")
        if origin is None or origin != f"http://{headers.get('host', '')}":
            return "cross-origin or missing Origin"
        if headers.get("sec-fetch-site", "same-origin") != "same-origin":
            return "not a same-origin request"
        media = (headers.get("content-type") or "").split(";")[0].strip().lower()
        if media != "application/json":
            return "the body must be application/json"
        given = headers.get(TOKEN_HEADER.lower()) or ""
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            return f"missing or wrong {TOKEN_HEADER}"
        return None
