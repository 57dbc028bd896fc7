"""Decisions at a margin: one statistical story per comparison, error rates that hold under
repeated looks, adaptive runs that stop spending on settled variants, and the four verdicts in
the recommendation, the table, -o JSON and ``show``."""

from __future__ import annotations

import html
import json
import math
import re
import threading
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pytest

from assay import RunConfig, ScoringConfig, api
from assay.analysis.compare import DecisionSetup, decide
from assay.analysis.decisions import (
    DecisionConfig,
    ItemKey,
    compare_sequential,
    outcome_of,
    seeded_order,
)
from assay.analysis.results import RunReport
from assay.analysis.summary import VariantSummary
from assay.benchmark.adaptive import round_ends
from assay.data import demo_path
from assay.providers.specs import resolve_model
from assay.scoring.sequential import confidence_sequence
from assay.scoring.stats import Aggregate, paired_compare
from assay.store.runstore import RunStore
from assay.testing import Action, ChatRequest, Handler, ScriptedServer, error
from assay.ui import make_server
from tests.run_helpers import LabelZoo, assay, write_prices
from tests.test_crash_resume import Killer, start_and_kill

SENTIMENT = str(demo_path("sentiment.jsonl"))
PROMPT = str(demo_path("sentiment_prompt.md"))
MARGIN = 0.05
ALPHA = 0.05


# --- one method per comparison ---------------------------------------------------------------


@pytest.mark.parametrize("n", [3, 8, 16, 40, 200])
def test_interval_p_value_and_flag_never_disagree(n: int) -> None:
    rng = np.random.default_rng(n)
    for trial in range(40):
        a = rng.integers(0, 2, n).astype(float)
        b = np.clip(a + rng.normal(0.15 * (trial % 3), 0.6, n), 0, 1).round()
        for c in (
            paired_compare(list(a), list(b), seed=trial),
            compare_sequential(
                {str(i): v for i, v in enumerate(a)}, {str(i): v for i, v in enumerate(b)},
                ALPHA, trial, n,
            ),
        ):  # fmt: skip
            assert c.ci_low is not None and c.ci_high is not None and c.p_value is not None
            excludes_zero = c.ci_low > 0 or c.ci_high < 0
            assert excludes_zero == c.significant == (c.p_value < ALPHA), c


# --- validity under repeated looks -----------------------------------------------------------


def _paired_scores(rng: np.random.Generator, n: int, loss: float) -> np.ndarray:
    """B - A per item, with a per-item difficulty both variants share (as real data have)."""
    difficulty = rng.random(n)
    a = (rng.random(n) < 0.3 + 0.6 * difficulty).astype(np.float64)
    b = (rng.random(n) < 0.3 + 0.6 * difficulty - loss).astype(np.float64)
    diffs: np.ndarray = b - a
    return diffs


def _claims_non_inferior(diffs: np.ndarray, looks: int, peeking: bool) -> bool:
    z = NormalDist().inv_cdf(1 - ALPHA / 2)
    step = len(diffs) // looks
    for end in range(step, len(diffs) + 1, step):
        seen = diffs[:end]
        if peeking:  # the fixed-n interval, recomputed at every look
            low = seen.mean() - z * seen.std(ddof=1) / math.sqrt(end)
        else:
            low, _ = confidence_sequence(seen, ALPHA, True, len(diffs))
        if low > -MARGIN:
            return True
    return False


def test_peeking_at_a_fixed_n_interval_fails_and_the_confidence_sequence_holds() -> None:
    """B is worse by exactly the margin, so every non-inferiority claim is an error. One-sided,
    the 95% interval promises at most 2.5%: peeking every round breaks that; the sequence
    keeps it."""
    rng = np.random.default_rng(7)
    runs = [_paired_scores(rng, 1000, MARGIN) for _ in range(300)]
    peeking = sum(_claims_non_inferior(d, 20, peeking=True) for d in runs) / len(runs)
    sequence = sum(_claims_non_inferior(d, 20, peeking=False) for d in runs) / len(runs)
    assert peeking > ALPHA  # more than twice the promised 2.5%
    assert sequence <= ALPHA / 2


def test_the_sequence_still_settles_a_clear_case() -> None:
    rng = np.random.default_rng(3)
    worse = _paired_scores(rng, 1000, 0.3)
    same = _paired_scores(rng, 3000, 0.0)
    _, high = confidence_sequence(worse[:300], ALPHA, True, 1000)
    low, _ = confidence_sequence(same, ALPHA, True, 3000)
    assert high < -MARGIN  # inferior within 300 items
    assert low > -MARGIN  # non-inferior at 0.05 with 3,000 items


def test_seeded_order_is_a_stable_shuffle_of_the_ids() -> None:
    ids = [str(i) for i in range(100)]
    order = seeded_order(ids, 1)
    assert sorted(order) == sorted(ids) and order != ids
    assert seeded_order(reversed(ids), 1) == order  # not the file's order
    assert seeded_order(ids, 2) != order
    assert round_ends(300) == list(range(15, 301, 15))
    assert round_ends(25) == [10, 20, 25]


# --- the four verdicts in the recommendation --------------------------------------------------


def _summary(name: str, values: list[float], cost: float) -> VariantSummary:
    mean = sum(values) / len(values)
    agg = Aggregate(
        mean=mean, ci_low=None, ci_high=None, n_scored=len(values), n_unscored=0, n_errors=0,
        std=None,
    )  # fmt: skip
    return VariantSummary(
        variant=name, model=f"compat/{name}", n_requests=len(values), n_errors=0, score=agg,
        cost_per_1k_usd=cost, task_cost_usd=cost * len(values) / 1000, spent_usd=None,
        judge_cost_usd=0.0, total_cost_usd=cost * len(values) / 1000, latency_p50_ms=None,
        latency_p95_ms=None, latency_mean_ms=None, output_tokens_per_s=None,
        input_tokens_per_request=None, output_tokens_per_request=None,
    )  # fmt: skip


def _recommendation(ref: list[float], cheap: list[float], margin: float | None) -> str:
    values: dict[str, dict[ItemKey, float | None]] = {
        "big": {(str(i), 0): v for i, v in enumerate(ref)},
        "small": {(str(i), 0): v for i, v in enumerate(cheap)},
    }
    summaries = [_summary("big", ref, 2.0), _summary("small", cheap, 0.5)]
    setup = DecisionSetup(config=DecisionConfig(margin=margin), n_samples=len(ref))
    return decide(summaries, values, setup).recommendation


def _scores(n: int, right: int) -> list[float]:
    return [1.0] * right + [0.0] * (n - right)


def test_non_inferior_cheap_variant_is_recommended_with_its_interval() -> None:
    ref = _scores(400, 360)
    cheap = list(ref)
    cheap[0] = 0.0  # one item worse: -0.0025
    text = _recommendation(ref, cheap, MARGIN)
    assert text.startswith("Recommended: small, shown non-inferior to big at a margin of 0.05")
    assert "at 25% of the cost" in text
    assert "small is non-inferior to big at 0.05 (-0.003" in text


def test_inferior_variant_is_named_and_the_reference_recommended() -> None:
    text = _recommendation(_scores(200, 180), _scores(200, 100), MARGIN)
    assert text.startswith("Recommended: big (the highest score); no other variant is shown")
    assert "small is inferior to big by more than 0.05" in text


def test_superior_variant_is_recommended_at_any_margin() -> None:
    text = _recommendation(_scores(200, 100), _scores(200, 180), MARGIN)
    assert text.startswith("Recommended: small")
    assert "big is better than small" not in text  # the best is the reference
    text = _recommendation(_scores(200, 100), _scores(200, 180), None)
    assert text.startswith("Recommended: small (the highest score).")


def test_unsettled_variant_names_the_samples_and_dollars_to_settle_it() -> None:
    ref, cheap = _scores(20, 18), _scores(20, 16)
    text = _recommendation(ref, cheap, MARGIN)
    assert "small is not settled against big at 0.05" in text
    assert "more samples (" in text and " calls, about $" in text


def test_without_a_margin_not_significantly_worse_is_not_as_good() -> None:
    ref, cheap = _scores(20, 18), _scores(20, 16)
    text = _recommendation(ref, cheap, None)
    assert text.startswith("Recommended: big (the highest score).")
    assert "Not significantly worse is not as good" in text
    assert "pass --margin" in text


def test_outcome_rules_at_the_margin() -> None:
    c = paired_compare([1.0] * 50, [1.0] * 49 + [0.0])
    assert outcome_of(c, None) == "not settled"
    assert outcome_of(c, 0.2) == "non-inferior"
    assert outcome_of(c.model_copy(update={"ci_low": -0.5, "ci_high": -0.3}), 0.2) == "inferior"
    assert outcome_of(c.model_copy(update={"ci_low": 0.1, "ci_high": 0.3}), 0.2) == "superior"


# --- adaptive runs through the CLI ------------------------------------------------------------


def _run_args(data: str, prompt: str, base_url: str, prices: Path, *extra: str) -> list[str]:
    return [
        "run", data, prompt, "-m", "compat/acc90", "-m", "compat/acc88", "-m", "compat/acc50",
        "--base-url", base_url, "--metric", "label", "--prices", str(prices),
        "--concurrency", "4", "--json", *extra,
    ]  # fmt: skip


@pytest.fixture
def zoo_prices(tmp_path: Path) -> Path:
    return write_prices(
        tmp_path / "prices.json",
        {"acc90": (2.0, 8.0), "acc88": (0.2, 0.8), "acc50": (0.1, 0.1)},
    )


def test_adaptive_run_stops_calling_a_clearly_worse_variant(
    tmp_path: Path, zoo_prices: Path
) -> None:
    zoo = LabelZoo()
    env = {"ASSAY_STORE": str(tmp_path / "store")}
    with ScriptedServer(zoo) as srv:
        proc = assay(
            *_run_args(SENTIMENT, PROMPT, srv.base_url, zoo_prices, "--margin", "0.05",
                       "--adaptive"),
            env=env,
        )  # fmt: skip
        calls = Counter(request.model for request in srv.requests)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    verdicts = {d["variant"]: d for d in report["decisions"]["variants"]}
    assert report["decisions"]["reference"] == "compat/acc90"
    assert verdicts["compat/acc50"]["outcome"] == "inferior"
    assert verdicts["compat/acc50"]["stopped_early"]
    dropped_at = verdicts["compat/acc50"]["samples"]
    assert calls["acc50"] == dropped_at < 300 == calls["acc90"]  # its later calls never made
    assert report["decisions"]["method"].startswith("confidence sequence")
    assert "compat/acc50 is inferior to compat/acc90 by more than 0.05" in report["recommendation"]
    assert f"settled after {dropped_at} samples" in report["recommendation"]
    show = assay("show", report["run_id"], "--json", env=env)
    assert json.loads(show.stdout)["decisions"] == report["decisions"]


def test_adaptive_needs_a_margin(tmp_path: Path, zoo_prices: Path) -> None:
    proc = assay(
        *_run_args(SENTIMENT, PROMPT, "http://127.0.0.1:9", zoo_prices, "--adaptive"),
        env={"ASSAY_STORE": str(tmp_path / "store")},
    )
    assert proc.returncode == 2
    assert "--adaptive needs --margin" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_baseline_must_name_a_variant(tmp_path: Path, zoo_prices: Path) -> None:
    proc = assay(
        *_run_args(SENTIMENT, PROMPT, "http://127.0.0.1:9", zoo_prices, "--baseline", "gpt9"),
        env={"ASSAY_STORE": str(tmp_path / "store")},
    )
    assert proc.returncode == 2
    assert "--baseline gpt9 is not a variant" in proc.stderr and "compat/acc90" in proc.stderr


@pytest.mark.parametrize("kill_at", [57, 311])
def test_adaptive_run_killed_and_resumed_pays_no_item_twice_and_decides_the_same(
    tmp_path: Path, zoo_prices: Path, kill_at: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    flags = ("--margin", "0.05", "--adaptive", "--baseline", "compat/acc90")
    whole_env = {"ASSAY_STORE": str(tmp_path / "whole")}
    with ScriptedServer(LabelZoo()) as srv:
        whole = assay(*_run_args(SENTIMENT, PROMPT, srv.base_url, zoo_prices, *flags),
                      env=whole_env)  # fmt: skip
        whole_calls = srv.count
    assert whole.returncode == 0, whole.stderr
    expected = json.loads(whole.stdout)

    store_dir = tmp_path / "killed"
    monkeypatch.setenv("ASSAY_STORE", str(store_dir))  # the killed process inherits it
    killer = Killer(LabelZoo())
    with ScriptedServer(killer) as srv:
        start_and_kill(killer, _run_args(SENTIMENT, PROMPT, srv.base_url, zoo_prices, *flags),
                       kill_at)  # fmt: skip
        store = RunStore.open(store_dir)
        (run,) = store.list_runs()
        store.close()
        resumed = assay("run", "--resume", run.id, "--json", env={"ASSAY_STORE": str(store_dir)})
        keys = Counter((r.model, r.last_user_text) for r in srv.requests)
    assert resumed.returncode == 0, resumed.stderr
    got = json.loads(resumed.stdout)
    # Calls in flight at the kill may be sent again (at most --concurrency); no other repeats.
    assert sum(n - 1 for n in keys.values()) <= 4
    assert srv.count <= whole_calls + 4
    assert {d["variant"]: d["outcome"] for d in got["decisions"]["variants"]} == {
        d["variant"]: d["outcome"] for d in expected["decisions"]["variants"]
    }
    assert (
        got["recommendation"]
        .split(" (Method")[0]
        .startswith(expected["recommendation"].split(".")[0])
    )


# --- the same verdicts everywhere ---------------------------------------------------------------


def _outcomes_in_html(page: str) -> dict[str, str]:
    rows = re.findall(r'<tr data-variant="([^"]+)" data-outcome="([^"]+)"', page)
    return {html.unescape(variant): outcome for variant, outcome in rows}


def test_verdicts_agree_in_table_json_show_report_dashboard_and_api(
    tmp_path: Path, zoo_prices: Path
) -> None:
    store = tmp_path / "store"
    env = {"ASSAY_STORE": str(store), "COLUMNS": "200"}
    flags = ("--margin", "0.1", "--baseline", "compat/acc90", "-o", str(tmp_path / "r.json"))
    with ScriptedServer(LabelZoo()) as srv:
        table = assay(
            *[
                a
                for a in _run_args(SENTIMENT, PROMPT, srv.base_url, zoo_prices, *flags)
                if a != "--json"
            ],
            env=env,
        )
        api_report = api.run(
            RunConfig(
                data=SENTIMENT,
                prompts=[PROMPT],
                models=[resolve_model(f"compat/{m}", base_url=srv.base_url)
                        for m in ("acc90", "acc88", "acc50")],
                scoring=ScoringConfig(metrics=["label"]),
                decision=DecisionConfig(margin=0.1, baseline="compat/acc90"),
            ),
            store=store,
            prices=zoo_prices,
        )  # fmt: skip
    assert table.returncode == 0, table.stderr
    written = json.loads((tmp_path / "r.json").read_text())
    expected = {d["variant"]: d["outcome"] for d in written["decisions"]["variants"]}
    assert expected == {
        "compat/acc90": "reference", "compat/acc88": "non-inferior", "compat/acc50": "inferior",
    }  # fmt: skip
    assert {d.variant: d.outcome for d in api_report.decisions.variants} == expected  # type: ignore[union-attr]
    for variant, outcome in expected.items():  # the terminal table: one row per variant
        assert re.search(rf"{re.escape(variant)}\s+{outcome}", table.stdout), table.stdout
    assert "Recommended: compat/acc88, shown non-inferior to compat/acc90" in table.stdout
    show = json.loads(assay("show", written["run_id"], "--json", env=env).stdout)
    assert show["decisions"] == written["decisions"]
    out = tmp_path / "report.html"
    assert assay("report", written["run_id"], "-o", str(out), env=env).returncode == 0
    assert _outcomes_in_html(out.read_text()) == expected
    dashboard = make_server(store, port=0)
    thread = threading.Thread(target=dashboard.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{dashboard.server_address[1]}/runs/{written['run_id']}"
        with urllib.request.urlopen(url, timeout=10) as response:
            assert _outcomes_in_html(response.read().decode()) == expected
    finally:
        dashboard.shutdown()
        dashboard.server_close()


def _four_models_adaptive(
    tmp_path: Path, wrap: Callable[[Handler], Handler] = lambda inner: inner
) -> tuple[RunReport, Counter[str]]:
    """perf.decisions' four scripted models (0.90/0.88/0.75/0.60) on 500 rows, seed 6,
    adaptive at margin 0.05 with the best as reference; the report and calls per model."""
    from perf.decisions import FOUR, LabelModel, _truth, engine_case, label_of

    labels = tuple(f"compat/{label_of(a)}" for a in FOUR)
    case = engine_case(6, 500, tmp_path, labels)
    with ScriptedServer(wrap(LabelModel(6, _truth(500)))) as srv:
        report = api.run(
            RunConfig(
                data=str(case.data),
                prompts=[str(case.prompt)],
                models=[resolve_model(label, base_url=srv.base_url) for label in labels],
                scoring=ScoringConfig(metrics=["label"]),
                seed=6,
                decision=DecisionConfig(margin=0.05, adaptive=True),
            ),
            store=tmp_path / "store",
            prices=case.prices,
        )
        calls = Counter(f"compat/{r.model}" for r in srv.requests)
    return report, calls


def test_a_variant_stopped_against_a_rounds_best_keeps_that_verdict(tmp_path: Path) -> None:
    """Without --baseline the best variant may change between rounds: a variant stopped as
    inferior to the best of its round is reported with that verdict, naming that variant,
    never as "not settled" against a later best."""
    report, _ = _four_models_adaptive(tmp_path)
    assert report.decisions is not None
    stopped = [d for d in report.decisions.variants if d.stopped_early]
    assert stopped and all(d.outcome in ("inferior", "non-inferior", "superior") for d in stopped)
    moved = [d for d in stopped if d.against is not None]
    assert moved, "this seed stops a variant against a reference that later changes"
    for d in moved:
        assert d.against != report.decisions.reference
        assert f"{d.variant} is {d.outcome} to {d.against}" in report.recommendation


def test_margin_and_baseline_from_the_models_config_and_flags_win(
    tmp_path: Path, zoo_prices: Path
) -> None:
    with ScriptedServer(LabelZoo()) as srv:
        config = tmp_path / "models.yaml"
        config.write_text(
            "margin: 0.2\nbaseline: acc50\nmodels:\n"
            + "".join(
                f"  - {{spec: compat/{m}, label: {m}, base_url: '{srv.base_url}'}}\n"
                for m in ("acc90", "acc50")
            )
        )
        common = ["run", SENTIMENT, PROMPT, "--config", str(config), "--metric", "label",
                  "--limit", "40", "--prices", str(zoo_prices), "--json"]  # fmt: skip
        env = {"ASSAY_STORE": str(tmp_path / "store")}
        from_file = json.loads(assay(*common, env=env).stdout)["decisions"]
        flagged = json.loads(assay(*common, "--margin", "0.01", env=env).stdout)["decisions"]
    assert (from_file["margin"], from_file["reference"]) == (0.2, "acc50")
    assert (flagged["margin"], flagged["reference"]) == (0.01, "acc50")


def test_adaptive_with_repeats_compares_samples_not_repeats(
    tmp_path: Path, zoo_prices: Path
) -> None:
    with ScriptedServer(LabelZoo()) as srv:
        proc = assay(
            *_run_args(SENTIMENT, PROMPT, srv.base_url, zoo_prices, "--margin", "0.05",
                       "--adaptive", "--repeats", "2", "--limit", "60", "--temperature", "0.7"),
            env={"ASSAY_STORE": str(tmp_path / "store")},
        )  # fmt: skip
        calls = Counter(request.model for request in srv.requests)
    assert proc.returncode == 0, proc.stderr
    decisions = json.loads(proc.stdout)["decisions"]
    for d in decisions["variants"]:
        if d["comparison"] is not None:
            assert d["comparison"]["n"] == d["samples"] <= 60  # samples, each of 2 repeats
        assert calls[d["variant"].removeprefix("compat/")] == 2 * d["samples"]


@pytest.mark.parametrize(("model", "failing"), [("acc75", 1), ("acc88", 25)])
def test_unscored_samples_do_not_move_a_variants_stopping_point(
    tmp_path: Path, model: str, failing: int
) -> None:
    """Rounds count samples run, scored or not: a variant whose first samples failed is
    stopped (or not) where the executor stopped it, and says so."""
    from perf.decisions import ITEM

    def failing_first(inner: Handler) -> Handler:
        def handler(request: ChatRequest) -> Action | Awaitable[Action]:
            found = ITEM.search(request.last_user_text)
            if request.model == model and found and int(found.group(1)) in bad:
                return error(400, "scripted bad request")
            return inner(request)

        return handler

    order = seeded_order([str(i) for i in range(1, 501)], 6)  # as engine_case orders them
    bad = {int(sid) - 1 for sid in order[:failing]}  # sample ids are 1-based rows
    report, calls = _four_models_adaptive(tmp_path, failing_first)
    assert report.decisions is not None
    for d in report.decisions.variants:
        assert d.samples == calls[d.variant]  # what was run, scored or not
        assert d.stopped_early == (calls[d.variant] < 500)
        if d.stopped_early:
            assert d.outcome in ("inferior", "non-inferior", "superior")
