"""The dashboard's pages, built from the report's pieces: runs list, run detail, compare."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from assay.report import fmt
from assay.report.data import RunView
from assay.report.html import Markup, el, join, void
from assay.report.optimize_data import optimize_result
from assay.report.page import render_page, report_script
from assay.report.sections import run_section
from assay.store.runstore import RunRecord
from assay.ui.script import DASHBOARD_JS


@dataclass(frozen=True)
class PageContext:
    """What every page needs to know about the server it is served by."""

    token: str | None  # set only when writes are allowed
    store_label: str

    @property
    def writes(self) -> bool:
        return self.token is not None


def page(ctx: PageContext, title: str, body: Markup) -> str:
    head = void("meta", name="assay-token", content=ctx.token) if ctx.token else Markup("")
    return render_page(
        title,
        body,
        script=report_script() + DASHBOARD_JS,
        nav=_nav(ctx),
        head=head,
        connect="'self'",
    )


def _nav(ctx: PageContext) -> Markup:
    mode = "writes allowed" if ctx.writes else "read-only"
    links = [
        el("span", "assay", class_="brand"),
        el("a", "Runs", href="/"),
        el("a", "Compare", href="/compare"),
        el("span", f"{ctx.store_label} · {mode}", class_="right"),
    ]
    return el("header", el("nav", links), class_="topbar")


def run_url(run_id: str) -> str:
    return "/runs/" + quote(run_id, safe="")


def api_url(run_id: str, what: str) -> str:
    return f"/api/runs/{quote(run_id, safe='')}/{what}"


# --- runs list -------------------------------------------------------------------------------


RUN_COLUMNS = ["Run", "Kind", "Status", "Started", "Models", "Best score", "Data", "Progress"]


def runs_page(
    ctx: PageContext, runs: list[RunRecord], archived: set[str], show_archived: bool
) -> str:
    shown = [r for r in runs if show_archived or r.id not in archived]
    hidden = len(runs) - len(shown)
    parts = [
        el("h1", "Runs"),
        el("p", f"{len(shown)} runs, newest first.", class_="sub"),
        el("section", el("div", _runs_table(shown, archived), class_="table-wrap"), class_="card"),
    ]
    if hidden or show_archived:
        label = f"Show {hidden} archived" if hidden else "Hide archived"
        parts.append(el("p", el("a", label, href="/?archived=1" if hidden else "/"), class_="note"))
    if not runs:
        parts.append(el("p", "No runs yet: start one with assay run DATA PROMPT -m MODEL"))
    return page(ctx, "Assay runs", join(parts))


def _runs_table(runs: list[RunRecord], archived: set[str]) -> Markup:
    head = el("thead", el("tr", [el("th", h, scope="col") for h in RUN_COLUMNS]))
    body = el("tbody", [_run_row(r, r.id in archived) for r in runs])
    return el("table", [head, body], class_="runs")


def _run_row(run: RunRecord, archived: bool) -> Markup:
    models = ", ".join(sorted(set(run.config.models)))
    status = [el("span", run.status, class_="pill " + _STATUS_TONE.get(run.status, "mid"))]
    if archived:
        status.append(el("span", "archived", class_="pill"))
    cells = [
        el("td", el("a", run.id, href=run_url(run.id), class_="mono")),
        el("td", run.kind),
        el("td", join(status)),
        el("td", fmt.when(run.created_at), class_="num"),
        el("td", models),
        el("td", best_score(run), class_="num"),
        _data_cell(run.config.data),
        el("td", _progress_cell(run)),
    ]
    return el("tr", cells, class_="archived" if archived else None, data_run=run.id)


def best_score(run: RunRecord) -> str:
    """The best variant's mean from the summary the run saved when it ended ("" if none); for
    an optimize run, its final prompt's mean on the held-out test split."""
    if run.kind == "optimize":
        return _optimize_score(run)
    best: tuple[float, str] | None = None
    for v in (run.summary or {}).get("variants", []) if isinstance(run.summary, dict) else []:
        mean = (v.get("score") or {}).get("mean") if isinstance(v, dict) else None
        if isinstance(mean, int | float) and (best is None or mean > best[0]):
            best = (float(mean), str(v.get("variant", "")))
    return "" if best is None else f"{best[0]:.3f} {best[1]}"


def _optimize_score(run: RunRecord) -> str:
    result = optimize_result(run)
    if result is None or result.final.test.mean is None:
        return ""
    return f"{result.final.test.mean:.3f} final prompt (test)"


def _data_cell(path: str) -> Markup:
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    return el("td", name, class_="model-spec data", title=path or None)


_STATUS_TONE = {"complete": "good", "running": "front", "stopped": "warn", "failed": "bad"}


def _progress_cell(run: RunRecord) -> Markup:
    if run.status != "running":
        return Markup("")
    return progress_box(run.id, compact=True)


def progress_box(run_id: str, compact: bool = False, reload: bool = False) -> Markup:
    """Filled in and refreshed every 2 s by the page script from the progress endpoint."""
    parts = [
        el("div", el("span", "", style="width: 0%"), class_="progress"),
        el("div", "…", class_="progress-label note"),
    ]
    if not compact:
        parts.append(el("ul", "", class_="progress-variants note"))
    return el(
        "div",
        parts,
        class_="live",
        data_progress_url=api_url(run_id, "progress"),
        data_reload=reload,
    )


# --- one run ---------------------------------------------------------------------------------


def run_page(ctx: PageContext, view: RunView, archived: bool) -> str:
    parts = [_run_actions(ctx, view.run, archived)]
    if view.run.status == "running":
        live = [el("h2", "Live progress"), progress_box(view.run.id, reload=True)]
        parts.append(el("section", live, class_="card", data_part="live"))
    parts.append(run_section(view))
    return page(ctx, f"Run {view.run.id}", join(parts))


def _run_actions(ctx: PageContext, run: RunRecord, archived: bool) -> Markup:
    parts = [
        el("a", "← All runs", href="/"),
        el("a", "Compare with another run", href="/compare?a=" + quote(run.id, safe="")),
    ]
    if archived:
        parts.append(el("span", "archived", class_="pill"))
    if ctx.writes:
        label = "Unarchive" if archived else "Archive"
        parts.append(
            el(
                "button",
                label,
                type="button",
                class_="button",
                data_archive_url=api_url(run.id, "archive"),
                data_archived="true" if archived else "false",
            )
        )
    return el("div", parts, class_="toolbar")
