"""Shared helpers for the report and dashboard tests: real runs to look at, and a real browser.

The browser is the system's Chromium (Debian packages ``chromium`` and ``chromium-driver``,
see scripts/install-browser.sh) driven by Playwright's Python package; nothing here downloads
a browser. Browser tests skip when Chromium is absent, except in CI (``CI=true``), where a
missing browser is a failure. Screenshots go to a temporary folder, unless ``ASSAY_SCREENSHOTS``
names one (``make screenshots`` regenerates docs/screenshots that way).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from assay.benchmark import runner
from assay.benchmark.config import RunConfig
from assay.data import demo_path, load_dataset
from assay.evaluation.config import ScoringConfig
from assay.evaluation.session import open_cache
from assay.jobs import Session
from assay.optimizer.records import IterationRecord
from assay.pricing import PriceTable
from assay.providers.specs import resolve_model
from assay.records import ModelConfig, Price
from assay.scoring.judge import JudgeConfig
from assay.store.run_record import StoredRun
from assay.store.runstore import RunStore
from assay.testing import Action, ChatRequest, ScriptedServer, error, reply

CHROMIUM = os.environ.get("ASSAY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REPO_ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS_ENV = "ASSAY_SCREENSHOTS"
"""Where to save the screenshots instead of a temporary folder (``make screenshots``)."""
XSS_SCRIPT = "<script>window.__xss=1</script>"
XSS_IMG = '<img src=x onerror="window.__xss=2">'
N_SAMPLES = 20
T = TypeVar("T")


# --- the browser ------------------------------------------------------------------------------


def browser_missing_reason() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} not found (run scripts/install-browser.sh)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (run scripts/install-browser.sh)"
    return None


def require_browser() -> None:
    """Skip without a browser, but fail in CI, or when asked to regenerate the screenshots."""
    reason = browser_missing_reason()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"browser tests must run in CI: {reason}")
    if screenshots_wanted() is not None:
        pytest.fail(f"{SCREENSHOTS_ENV} is set but the browser tests cannot run: {reason}")
    pytest.skip(reason)


@contextmanager
def chromium() -> Iterator[Any]:
    """Headless Chromium with a fresh profile in a temporary directory.

    Yields a Playwright ``BrowserContext`` (a persistent context is how Playwright takes a
    ``--user-data-dir``); ``watched_page`` opens pages in it.
    """
    require_browser()
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="assay-chromium-")
    try:
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def expect(locator: Any) -> Any:
    """Playwright's ``expect`` (its waits work under the pages' CSP; string waits use eval)."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


@dataclass
class Watched:
    """A page with every console error, page error and failed request it produced."""

    page: Any
    problems: list[str]


def watched_page(context: Any, width: int = 1280, height: int = 900) -> Watched:
    page = context.new_page()
    page.set_viewport_size({"width": width, "height": height})
    problems: list[str] = []
    page.on(
        "console",
        lambda m: (
            problems.append(f"console {m.type}: {m.text}")
            if m.type in ("error", "warning")
            else None
        ),
    )
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    return Watched(page, problems)


_PAGE_BOX = (
    "e => { const r = e.getBoundingClientRect(); return [r.top + scrollY, r.bottom + scrollY]; }"
)


def screenshots_wanted() -> Path | None:
    """The folder named by ASSAY_SCREENSHOTS (relative to the repository root), if any."""
    wanted = os.environ.get(SCREENSHOTS_ENV, "").strip()
    if wanted in ("", "0"):  # "0": what once meant "not into docs/"
        return None
    folder = Path(wanted)
    return folder if folder.is_absolute() else REPO_ROOT / folder


def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the browser tests save their screenshots: a pytest temporary folder by default.

    Run ids and timings differ on every run, so a test run that wrote into docs/screenshots
    would change tracked files. Regenerating the docs' images is an explicit action:
    ``make screenshots`` runs the browser tests with ``ASSAY_SCREENSHOTS=docs/screenshots``.
    """
    return screenshots_wanted() or tmp_path_factory.mktemp("screenshots")


def screenshot(
    page: Any,
    name: str,
    *,
    into: Path,
    selectors: list[str] | None = None,
    clip_bottom: float | None = None,
    max_height: float = 4000,
    pad: float = 16,
) -> Path:
    """Save NAME.png in ``into``: the page from the top to ``clip_bottom``, or the box around
    ``selectors``."""
    into.mkdir(parents=True, exist_ok=True)
    path = into / f"{name}.png"
    width = page.viewport_size["width"]
    if selectors:
        boxes = [page.locator(s).first.evaluate(_PAGE_BOX) for s in selectors]
        top = min(b[0] for b in boxes) - pad
        bottom = max(b[1] for b in boxes) + pad
    else:
        top, bottom = 0.0, clip_bottom or page.viewport_size["height"]
    height = min(bottom - top, max_height)
    clip = {"x": 0, "y": max(0.0, top), "width": width, "height": height}
    page.screenshot(path=str(path), full_page=True, clip=clip)
    return path


# --- runs to look at --------------------------------------------------------------------------


class Zoo:
    """Scripted models for the sentiment demo: right on a fixed share of items, by hash.

    ``acc90`` answers one item with markup meant to run in a careless viewer; ``mystery``
    has no known price and fails one item with a 400; ``judge`` grades on a 1-5 scale.
    """

    def __init__(self) -> None:
        samples = load_dataset(demo_path("sentiment.jsonl")).samples[:N_SAMPLES]
        self.truth = {s.input_text(): s.reference or "" for s in samples}
        self.texts = list(self.truth)
        self.xss_text = self.texts[2]
        self.error_text = self.texts[5]

    def __call__(self, request: ChatRequest) -> Action:
        if request.model == "judge":
            return self._judge(request.last_user_text)
        text = request.last_user_text
        digest = hashlib.sha256(f"{request.model}|{text}".encode()).digest()
        delay = 0.002 + digest[1] / 255 * (0.06 if request.model == "acc90" else 0.02)
        if request.model == "mystery" and text == self.error_text:
            return error(400, "scripted bad request")
        share = {"acc90": 90, "acc60": 60, "free": 75, "mystery": 80}.get(request.model, 50)
        truth = self.truth.get(text, "positive")
        answer = (
            truth if digest[0] % 100 < share else {"positive": "negative"}.get(truth, "positive")
        )
        if request.model == "acc90" and text == self.xss_text:
            answer = f"{answer} {XSS_SCRIPT} {XSS_IMG} </script><b>bold?</b>"
        return reply(answer, input_tokens=40, output_tokens=3, delay=delay)

    def _judge(self, prompt: str) -> Action:
        response = _between(prompt, "response")
        reference = _between(prompt, "reference")
        good = reference.strip() and reference.strip().lower() in response.lower()
        verdict = 5 if good else 2
        why = "The response names the reference sentiment." if good else "Wrong sentiment."
        return reply(f"{why} <i>judged</i>\nVERDICT: {verdict}", input_tokens=200, output_tokens=20)


def _between(text: str, tag: str) -> str:
    found = re.search(rf"<{tag}>\n(.*?)\n</{tag}>", text, re.S)
    return found.group(1) if found else ""


@dataclass(frozen=True)
class DemoRuns:
    store_dir: Path
    bench: str  # four models, label metric: the main report
    judged: str  # two models, judge + label, same data: rationale and compare
    optimize: str  # fake optimization iterations
    running: str  # started, partly done, never finished
    xss_sample: str
    error_sample: str


def model(srv: ScriptedServer, name: str, price: Price | None) -> ModelConfig:
    return resolve_model(f"compat/{name}", base_url=srv.base_url, label=name, price=price)


def build_demo_runs(directory: Path) -> DemoRuns:
    """Real runs through the real runner against a scripted server, in ``directory``."""
    zoo = Zoo()
    store = RunStore.open(directory)
    with ScriptedServer(zoo) as srv:
        models = [
            model(srv, "acc90", Price(input_per_mtok=2.5, output_per_mtok=10)),
            model(srv, "acc60", Price(input_per_mtok=0.1, output_per_mtok=0.4)),
            model(srv, "free", Price(input_per_mtok=0, output_per_mtok=0)),
            model(srv, "mystery", None),
        ]
        bench = _run(store, directory, RunConfig(**_base(), models=models))
        judge = JudgeConfig(
            models=[model(srv, "judge", Price(input_per_mtok=0.5, output_per_mtok=1))],
            rubric="Is the sentiment right? Score 1-5.",
        )
        scoring = ScoringConfig(metrics=["label"], judge=judge)
        judged = _run(
            store, directory, RunConfig(**{**_base(), "scoring": scoring}, models=models[:2])
        )
        running = _partial_run(store, directory, RunConfig(**_base(), models=models[:2]))
    samples = {s.input_text(): s.id for s in load_dataset(demo_path("sentiment.jsonl")).samples}
    return DemoRuns(
        directory,
        bench,
        judged,
        _optimize_run(store),
        running,
        samples[zoo.xss_text],
        samples[zoo.error_text],
    )


def _base() -> dict[str, Any]:
    return {
        "data": str(demo_path("sentiment.jsonl")),
        "prompts": [str(demo_path("sentiment_prompt.md"))],
        "scoring": ScoringConfig(metrics=["label"]),
        "limit": N_SAMPLES,
    }


def _services(store: RunStore, directory: Path) -> Session:
    return Session(store, PriceTable.bundled(), open_cache(directory))


def in_thread(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` in its own thread: Playwright's sync API keeps a loop in this one."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _run(store: RunStore, directory: Path, config: RunConfig) -> str:
    plan = runner.prepare(config)
    services = _services(store, directory)
    run_id = runner.start_run(plan, services)
    in_thread(runner.execute_run(plan, services, run_id))
    return run_id


def _partial_run(store: RunStore, directory: Path, config: RunConfig) -> str:
    """A run that recorded 13 of its 40 results and is still marked running."""
    plan = runner.prepare(config)
    run_id = runner.start_run(plan, _services(store, directory))
    source = runner.start_run(plan, _services(store, directory))
    in_thread(runner.execute_run(plan, _services(store, directory), source))
    wanted = {"acc90": 8, "acc60": 5}
    for result in store.results(source):
        if wanted.get(result.variant, 0) > 0:
            wanted[result.variant] -= 1
            store.save_result(result.model_copy(update={"run_id": run_id}))
    return run_id


def _optimize_run(store: RunStore) -> str:
    stored = StoredRun(
        kind="optimize", data="", dataset_sha256="", primary_metric="label", models=["compat/acc60"]
    )
    run_id = store.create_run(stored)
    prompts = [
        "Classify the sentiment.",
        "Classify the sentiment of the review.\nAnswer with one word: positive or negative.",
        "Classify the sentiment of the review.\nAnswer with one word: positive or negative.\n"
        "Ignore <b>markup</b> & sarcasm.",
    ]
    steps = [
        (0.42, 0.40, "baseline", None),
        (0.71, 0.66, "accepted", 0),
        (0.74, 0.64, "rejected", 1),
    ]
    hashes = [hashlib.sha256(p.encode()).hexdigest() for p in prompts]
    for i, (train, val, status, parent) in enumerate(steps):
        record = IterationRecord(
            idx=i,
            strategy="baseline" if parent is None else "iterative",
            status=status,
            reason="" if parent is None else f"scripted {status} step",
            parent_hash=None if parent is None else hashes[parent],
            prompt_hash=hashes[i],
            prompt=prompts[i],
            explanation=f"Step {i}: <script>window.__xss=3</script> keep answers short.",
            train_candidate=train,
            val_candidate=val,
        )
        store.save_iteration(run_id, i, record.model_dump())
    store.set_status(run_id, "complete")
    return run_id
