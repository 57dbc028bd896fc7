"""Reading what the perf scripts print, and where the optional peers live."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from assay.testing import Handler, ScriptedServer

PEERS_VENV = Path(os.environ.get("ASSAY_PEERS_VENV", "/tmp/peers-venv"))
"""The peers' own virtual environment (the perf scripts' default ``--peers-venv``)."""


def markdown_table(printed: str, title: str) -> list[dict[str, str]]:
    """The rows, keyed by column, of the ``--markdown`` table whose title starts with ``title``."""
    lines = printed.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(f"**{title}")]
    assert len(starts) == 1, f"one table titled {title!r} expected in:\n{printed}"
    table = lines[starts[0] + 1 :]
    while table and not table[0].startswith("|"):
        table.pop(0)
    header, separator, *body = table
    assert separator.startswith("|---"), separator
    columns = _cells(header)
    rows = []
    for line in body:
        if not line.startswith("|"):
            break
        cells = _cells(line)
        assert len(cells) == len(columns), line
        rows.append(dict(zip(columns, cells, strict=True)))
    return rows


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def peer_or_skip(executable: str, package: str) -> Path:
    """``PEERS_VENV/bin/EXECUTABLE``, or skip the test: the peers are optional."""
    path = PEERS_VENV / "bin" / executable
    if not path.exists():
        pytest.skip(
            f"{package} is not installed in {PEERS_VENV} (python -m venv {PEERS_VENV} && "
            f"{PEERS_VENV}/bin/pip install {package}; or set ASSAY_PEERS_VENV)"
        )
    return path


@contextmanager
def embedded_model_served_by(
    model: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ScriptedServer]:
    """``local/smollm2`` resolved to a scripted server answering with ``model``: the perf
    scripts run their real code paths without the model's minutes."""
    import assay.providers.specs as specs

    real_resolve = specs.resolve_model
    with ScriptedServer(model) as srv:

        def resolve(spec: str, **kw: Any) -> Any:
            assert spec == "local/smollm2"
            return real_resolve("compat/smollm2", base_url=srv.base_url)

        monkeypatch.setattr(specs, "resolve_model", resolve)
        monkeypatch.setenv("OPENAI_COMPAT_API_KEY", "x")
        yield srv


class StandInModelServer:
    """Stands in for ``optimizer_peers.ModelServer`` (the embedded model, minutes of CPU here):
    a scripted server whose calls are counted by role, as the real server counts them."""

    def __init__(self, handler: Handler) -> None:
        self._server = ScriptedServer(handler)

    def __enter__(self) -> StandInModelServer:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()

    @property
    def base_url(self) -> str:
        return self._server.base_url

    def roles(self) -> list[str]:
        """The model each call named, in order ("reasoner" for a reasoning call)."""
        raise NotImplementedError

    def counts(self) -> dict[str, int]:
        reasoning = self.roles().count("reasoner")
        return {"task": len(self.roles()) - reasoning, "reasoning": reasoning, "errors": 0}
