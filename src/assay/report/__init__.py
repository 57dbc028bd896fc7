"""``assay report``: one self-contained HTML file over one or more runs in the run store.

    from assay.report import render_report
    html = render_report(RunStore.open(), ["20261128-101500-a1b2c3"])

The file needs no network: styles, script and charts (SVG) are inline, and every piece of
model or dataset text is escaped. The dashboard (:mod:`assay.ui`) reuses :func:`run_section`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from assay.errors import UserInputError
from assay.files import refuse_clobber, write_atomic
from assay.report.data import RunView, load_view
from assay.report.html import Markup, el, join
from assay.report.page import render_page
from assay.report.sections import anchor, run_section
from assay.secrets import redact
from assay.store.runstore import RunStore

__all__ = ["RunView", "load_view", "render_report", "run_section", "write_report"]


def render_report(store: RunStore, run_ids: Sequence[str]) -> str:
    """The whole HTML document for these runs (one section each, in the order given)."""
    views = [load_view(store, run_id) for run_id in run_ids]
    body = join([_contents(views), *(run_section(v) for v in views), _footer()])
    title = "Assay report: " + ", ".join(v.run.id for v in views)
    return render_page(title, body)


def write_report(store: RunStore, run_ids: Sequence[str], path: str | Path) -> Path:
    """Written atomically, never into the run store's folder, with every known secret
    redacted (a store written by an older Assay may still hold one)."""
    out = Path(path)
    refuse_clobber(out, [store.path.parent])
    html = redact(render_report(store, run_ids))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserInputError(f"Cannot write {out}: {exc.strerror or exc}") from None
    write_atomic(out, html)
    return out


def _contents(views: list[RunView]) -> Markup:
    if len(views) < 2:
        return Markup("")
    links = [
        el("li", el("a", f"{v.run.kind} run {v.run.id}", href="#" + anchor(v.run.id)))
        for v in views
    ]
    return el(
        "nav", [el("h2", "Runs in this report"), el("ul", links, class_="toc")], class_="card"
    )


def _footer() -> Markup:
    return el("footer", "Made with assay · every number here is computed from the run store.")
