"""Terminal rendering of what each endpoint did: shown when it tells something (several
endpoints, one taken out, or ``--concurrency auto``)."""

from __future__ import annotations

from rich import box
from rich.table import Table
from rich.text import Text

from assay.cli.untrusted import visible
from assay.records import AdaptiveLimitUse, EndpointUse


def worth_showing(endpoints: list[EndpointUse]) -> bool:
    return len(endpoints) > 1 or any(e.taken_out or e.limit for e in endpoints)


def endpoints_table(endpoints: list[EndpointUse]) -> Table:
    table = Table(title="Endpoints", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("base URL")
    for column in ("requests", "errors", "slow down\n(429/503)", "taken out"):
        table.add_column(column, justify="right", no_wrap=True)
    auto = any(e.limit for e in endpoints)
    if auto:
        table.add_column("limit (auto)\nend (range, cuts)", justify="right", no_wrap=True)
    for e in endpoints:
        cells = [f"{e.requests:,}", f"{e.errors:,}", f"{e.overloaded:,}", f"{e.taken_out:,}"]
        if auto:
            cells.append(_limit_cell(e.limit))
        table.add_row(Text(visible(e.base_url)), *cells)  # a URL from a config file
    return table


def _limit_cell(limit: AdaptiveLimitUse | None) -> str:
    if limit is None:
        return "–"
    return f"{limit.final} ({limit.lowest}–{limit.highest}, {limit.decreases} cuts)"
