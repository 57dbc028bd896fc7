"""``assay ui``: a local dashboard over the run store, bound to 127.0.0.1.

Read-only by default. With ``allow_writes`` one endpoint changes something (marking a run
archived, in ``ui.sqlite`` beside the store, never in the store itself), guarded by a
per-launch token, Origin and Host checks (see :mod:`assay.ui.security`).

    server = make_server(Path(".assay"), port=0)
    print(server.url)
    server.serve_forever()
"""

from __future__ import annotations

import errno
import ipaddress
from pathlib import Path

from assay.errors import UserInputError
from assay.store.runstore import RunStore
from assay.ui.server import DashboardServer

__all__ = ["DashboardServer", "is_loopback", "make_server"]

DEFAULT_PORT = 8765


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def make_server(
    store_dir: Path, host: str = "127.0.0.1", port: int = DEFAULT_PORT, allow_writes: bool = False
) -> DashboardServer:
    """Bind (``port=0``: any free port) without serving yet; the store must already exist."""
    if not RunStore.exists(store_dir):
        raise UserInputError(
            f"No run store in {store_dir}", "run assay run first, or pass --store DIR"
        )
    try:
        return DashboardServer((host, port), store_dir, allow_writes)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise UserInputError(
                f"Port {port} is in use", "pass --port N, or --port 0 for any free port"
            ) from None
        raise UserInputError(f"Cannot listen on {host}:{port}: {exc.strerror}") from None
