"""What each dashboard URL returns, as plain functions of the server's state."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from assay.report.data import is_benchmark, load_view
from assay.ui.compare import CompareQuery, compare_page
from assay.ui.pages import PageContext, run_page, runs_page
from assay.ui.progress import progress

if TYPE_CHECKING:
    from assay.ui.server import DashboardServer

Params = dict[str, list[str]]


def context(server: DashboardServer) -> PageContext:
    token = server.guard.token if server.allow_writes else None
    return PageContext(token=token, store_label=str(server.store_dir))


def runs(server: DashboardServer, params: Params) -> str:
    show_archived = (params.get("archived") or ["0"])[0] == "1"
    records = server.store.list_runs(500)
    return runs_page(context(server), records, server.archive.archived(), show_archived)


def run(server: DashboardServer, run_id: str) -> str:
    view = load_view(server.store, run_id)
    return run_page(context(server), view, view.run.id in server.archive.archived())


def compare(server: DashboardServer, params: Params) -> str:
    return compare_page(context(server), server.store, CompareQuery.from_params(params))


def runs_json(server: DashboardServer) -> list[dict[str, Any]]:
    archived = server.archive.archived()
    return [
        {**r.model_dump(exclude={"config", "summary"}), "archived": r.id in archived}
        for r in server.store.list_runs(500)
    ]


def run_json(server: DashboardServer, run_id: str, part: str | None) -> dict[str, Any]:
    if part == "progress":
        return progress(server.store, run_id)
    record = server.store.get_run(run_id)
    if part == "report" and is_benchmark(record):
        from assay.analysis.run_analysis import analyse

        return analyse(server.store, record.id).model_dump(mode="json", by_alias=True)
    return record.model_dump(mode="json")


def set_archived(server: DashboardServer, run_id: str, body: Any) -> dict[str, Any]:
    from assay.ui.server import HttpError

    if not isinstance(body, dict) or not isinstance(body.get("archived"), bool):
        from http import HTTPStatus

        raise HttpError(HTTPStatus.BAD_REQUEST, 'send {"archived": true} or {"archived": false}')
    record = server.store.get_run(run_id)
    server.archive.set_archived(record.id, body["archived"])
    return {"run_id": record.id, "archived": body["archived"]}
