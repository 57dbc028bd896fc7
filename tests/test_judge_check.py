"""``judge check``: agreement figures computed by hand, rows and labels, the check over HTTP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from assay.cli.judge_cmds import register
from assay.errors import DataError, UserInputError
from assay.scoring.judge import JudgeConfig, build_judge
from assay.scoring.judge_check import (
    Agreement,
    Thresholds,
    agreement,
    check_judge,
    check_pairwise,
    cohen_kappa,
    load_check_rows,
    verdict_for,
)
from assay.scoring.judge_parse import DEFAULT_SCALE, Scale
from assay.scoring.pairwise import PairwiseJudge
from assay.testing import Action, ChatRequest, ScriptedServer, reply
from tests.conftest import compat_model, make_engine

RUBRIC = "Is the answer correct?\nScale: 1-5\n"


# ---------------------------------------------------------------- figures by hand


def test_agreement_on_a_five_point_scale_matches_the_hand_computation() -> None:
    human = [1, 2, 3, 4, 5, 3]
    judge = [1, 3, 3, 5, 5, None]
    # Scored pairs (h, j): (1,1) (2,3) (3,3) (4,5) (5,5); n = 5, one unscored of 6.
    # exact: 3 of 5 = 0.6.  adjacent (|h - j| <= 1): 5 of 5 = 1.0.
    # Quadratic weights w(i, j) = (i - j)^2 / (k - 1)^2 with k = 5, so (i - j)^2 / 16.
    # Observed weighted disagreement: (0 + 1/16 + 0 + 1/16 + 0) / 5 = 1/40 = 0.025.
    # Marginals: human 1..5 each 1/5; judge p(1) = 1/5, p(3) = 2/5, p(5) = 2/5.
    # Expected: (1/5) * sum over human i of [1/5 w(i,1) + 2/5 w(i,3) + 2/5 w(i,5)]
    #   i=1: 0 + 2/5*4/16 + 2/5*16/16 = 0.5
    #   i=2: 1/5*1/16 + 2/5*1/16 + 2/5*9/16 = 21/80 = 0.2625
    #   i=3: 1/5*4/16 + 0 + 2/5*4/16 = 12/80 = 0.15
    #   i=4: 1/5*9/16 + 2/5*1/16 + 2/5*1/16 = 13/80 = 0.1625
    #   i=5: 1/5*16/16 + 2/5*4/16 + 0 = 24/80 = 0.3
    #   sum = 1.375, times 1/5 = 0.275.
    # kappa = 1 - 0.025 / 0.275 = 1 - 1/11 = 10/11.
    result = agreement(human, judge, DEFAULT_SCALE)
    assert (result.n, result.n_scored, result.n_unscored) == (6, 5, 1)
    assert result.unscored_share == pytest.approx(1 / 6)
    assert result.exact == pytest.approx(0.6)
    assert result.adjacent == pytest.approx(1.0)
    assert result.kappa == pytest.approx(10 / 11)
    assert result.kappa_weights == "quadratic"
    assert result.kappa_ci is None  # fewer than 10 scored items: no interval


def test_agreement_on_pass_fail_is_unweighted_kappa() -> None:
    human = ["pass", "pass", "fail", "fail", "pass", "fail", "pass", "fail"]
    judge = [1, 1, 0, 1, 0, 0, 1, None]
    # Scored pairs: (1,1) (1,1) (0,0) (0,1) (1,0) (0,0) (1,1); n = 7.
    # p_o = 5/7.  Human: 4 pass, 3 fail; judge: 4 pass, 3 fail.
    # p_e = (4/7)^2 + (3/7)^2 = 25/49.
    # kappa = (5/7 - 25/49) / (1 - 25/49) = (10/49) / (24/49) = 5/12.
    result = agreement(human, judge, Scale.pass_fail())
    assert result.exact == pytest.approx(5 / 7)
    assert result.kappa == pytest.approx(5 / 12)
    assert result.kappa_weights == "unweighted"
    assert result.adjacent is None


def test_kappa_is_undefined_when_chance_agreement_is_perfect() -> None:
    assert cohen_kappa([3, 3, 3], [3, 3, 3], [1, 2, 3, 4, 5], "quadratic") is None
    assert cohen_kappa([], [], [1, 2], "unweighted") is None
    result = agreement([1, 2], [None, None], DEFAULT_SCALE)
    assert result.kappa is None and result.exact is None and result.unscored_share == 1.0


def test_perfect_agreement_has_kappa_one_and_an_interval() -> None:
    labels = [1, 2, 3, 4, 5] * 4
    result = agreement(labels, list(labels), DEFAULT_SCALE)
    assert result.kappa == pytest.approx(1.0)
    assert result.kappa_ci is not None
    assert result.kappa_ci[0] == pytest.approx(1.0)


def test_human_labels_must_be_on_the_scale() -> None:
    with pytest.raises(ValueError, match="outside"):
        agreement([6], [5], DEFAULT_SCALE)
    with pytest.raises(ValueError, match="not on"):
        agreement(["pass"], [1], DEFAULT_SCALE)


def figures(kappa: float | None, unscored: float, n_scored: int = 50) -> Agreement:
    return Agreement(
        n=100,
        n_scored=n_scored,
        n_unscored=0,
        unscored_share=unscored,
        exact=0.5,
        adjacent=0.9,
        kappa=kappa,
        kappa_weights="quadratic",
    )


@pytest.mark.parametrize(
    ("kappa", "unscored", "level"),
    [
        (0.75, 0.0, "trustworthy"),
        (0.6, 0.05, "trustworthy"),
        (0.75, 0.10, "use with care"),
        (0.5, 0.0, "use with care"),
        (0.4, 0.2, "use with care"),
        (0.39, 0.0, "do not optimize against this judge"),
        (0.9, 0.3, "do not optimize against this judge"),
        (None, 0.0, "do not optimize against this judge"),
    ],
)
def test_verdict_thresholds(kappa: float | None, unscored: float, level: str) -> None:
    got, line = verdict_for(figures(kappa, unscored), Thresholds())
    assert got == level
    assert line.startswith(level)
    assert "kappa >= 0.6 and unscored <= 5%" in line and "kappa >= 0.4" in line


def test_small_samples_are_flagged() -> None:
    _, line = verdict_for(figures(0.8, 0.0, n_scored=12), Thresholds())
    assert "only 12 items" in line


# ---------------------------------------------------------------- rows and labels


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_labels_join_by_id(tmp_path: Path) -> None:
    data = write_jsonl(
        tmp_path / "data.jsonl",
        [
            {"id": "a", "input": "q1", "response": "r1", "reference": "ref"},
            {"id": "b", "input": "q2", "response": "r2"},
            {"id": 3, "input": "q3", "response": "r3"},
        ],
    )
    labels = write_jsonl(
        tmp_path / "labels.jsonl", [{"id": "a", "human": 4}, {"id": 3, "human": 2}]
    )
    rows = load_check_rows(data, DEFAULT_SCALE, labels)
    assert [(r.id, r.human) for r in rows.rows] == [("a", 4), ("3", 2)]
    assert rows.n_unlabelled == 1
    assert rows.rows[0].sample().reference == "ref"
    assert rows.rows[0].sample().input_text() == "q1"


def test_label_errors_name_the_file_and_line(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "data.jsonl", [{"id": "a", "input": "q", "response": "r"}])
    bad = write_jsonl(tmp_path / "l1.jsonl", [{"id": "a", "human": 9}])
    with pytest.raises(DataError, match=r"l1.jsonl:1: human label 9 is outside"):
        load_check_rows(data, DEFAULT_SCALE, bad)
    stray = write_jsonl(tmp_path / "l2.jsonl", [{"id": "a", "human": 1}, {"id": "z", "human": 1}])
    with pytest.raises(DataError, match=r"l2.jsonl:2: id 'z' is not in"):
        load_check_rows(data, DEFAULT_SCALE, stray)
    inline = write_jsonl(tmp_path / "d2.jsonl", [{"input": "q", "response": "r", "human": "pass"}])
    with pytest.raises(DataError, match=r"d2.jsonl:1: human label 'pass' is not on"):
        load_check_rows(inline, DEFAULT_SCALE)
    assert load_check_rows(inline, Scale.pass_fail()).rows[0].human == 1
    (tmp_path / "broken.jsonl").write_text('{"input": "q"\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"broken.jsonl:1: not valid JSON"):
        load_check_rows(tmp_path / "broken.jsonl", DEFAULT_SCALE)
    unlabelled = write_jsonl(tmp_path / "d3.jsonl", [{"input": "q", "response": "r"}])
    with pytest.raises(UserInputError, match="No labelled rows"):
        load_check_rows(unlabelled, DEFAULT_SCALE)


# ---------------------------------------------------------------- the check over HTTP

VERDICT_BY_RESPONSE = {"good": "VERDICT: 5", "ok": "VERDICT: 3", "bad": "VERDICT: 1"}


def response_of(request: ChatRequest, tag: str = "response") -> str:
    content = str(request.messages[1]["content"])
    return content.split(f"<{tag}>\n", 1)[1].split(f"\n</{tag}>", 1)[0]


def pointwise_judge(request: ChatRequest) -> Action:
    text = VERDICT_BY_RESPONSE.get(response_of(request), "I cannot decide.")
    return reply("Reasons.\n" + text)


ROWS = [
    {"id": "r1", "input": "q", "response": "good", "human": 5},
    {"id": "r2", "input": "q", "response": "good", "human": 4},
    {"id": "r3", "input": "q", "response": "ok", "human": 3},
    {"id": "r4", "input": "q", "response": "bad", "human": 1},
    {"id": "r5", "input": "q", "response": "bad", "human": 2},
    {"id": "r6", "input": "q", "response": "junk", "human": 3},
]


async def test_check_judge_reports_agreement(tmp_path: Path) -> None:
    rows = load_check_rows(write_jsonl(tmp_path / "d.jsonl", ROWS), DEFAULT_SCALE).rows
    with ScriptedServer(pointwise_judge) as srv:
        cfg = JudgeConfig(models=[compat_model(srv, "j")], rubric=RUBRIC, max_parse_retries=1)
        async with make_engine() as engine:
            report = await check_judge(rows, build_judge(cfg, engine))
    a = report.agreement
    assert (a.n, a.n_scored, a.n_unscored) == (6, 5, 1)
    assert a.exact == pytest.approx(3 / 5) and a.adjacent == pytest.approx(1.0)
    expected = cohen_kappa([5, 4, 3, 1, 2], [5, 5, 3, 1, 1], range(1, 6), "quadratic")
    assert a.kappa == pytest.approx(expected)
    assert report.verdict == "use with care"  # kappa is high but 17% unscored is over 5%
    assert report.judge_calls == 5 + 2  # five parsed at once, the junk one asked twice
    assert report.judge_cost_usd is None  # scripted models have no price
    junk = next(item for item in report.items if item.id == "r6")
    assert junk.status == "unscored" and junk.judge is None
    assert junk.reason.startswith("judge reply unparsable")
    assert [item.judge for item in report.items[:2]] == ["5", "5"]


async def test_check_judge_measures_stability_across_repeats(tmp_path: Path) -> None:
    wobble = iter(["VERDICT: 2", "VERDICT: 4"])

    def judge(request: ChatRequest) -> Action:
        if response_of(request) == "wobbly":
            return reply(next(wobble))
        return reply("VERDICT: 4")

    rows_in = [
        {"id": "s", "input": "q", "response": "steady", "human": 4},
        {"id": "w", "input": "q", "response": "wobbly", "human": 3},
    ]
    rows = load_check_rows(write_jsonl(tmp_path / "d.jsonl", rows_in), DEFAULT_SCALE).rows
    with ScriptedServer(judge) as srv:
        cfg = JudgeConfig(models=[compat_model(srv, "j")], rubric=RUBRIC, repeats=2)
        async with make_engine() as engine:
            report = await check_judge(rows, build_judge(cfg, engine))
    assert report.repeat_stability == pytest.approx(0.5) and report.n_repeat_items == 2
    by_id = {item.id: item for item in report.items}
    assert by_id["s"].stable is True and by_id["w"].stable is False
    assert by_id["w"].judge == "3"  # mean of 2 and 4
    assert report.agreement.exact == 1.0


def pairwise_judge(request: ChatRequest) -> Action:
    first, second = response_of(request, "response_a"), response_of(request, "response_b")
    if "good" in first:
        return reply("WINNER: A")
    if "good" in second:
        return reply("WINNER: B")
    return reply("The first one.\nWINNER: A")  # position bias when neither is good


async def test_check_pairwise_reports_order_consistency(tmp_path: Path) -> None:
    rows_in = [
        {"id": "p1", "input": "q", "response_a": "good", "response_b": "bad", "human": "A"},
        {"id": "p2", "input": "q", "response_a": "bad", "response_b": "good", "human": "B"},
        {"id": "p3", "input": "q", "response_a": "meh", "response_b": "meh!", "human": "tie"},
        {"id": "p4", "input": "q", "response_a": "meh", "response_b": "bad", "human": "A"},
    ]
    pairs = load_check_rows(write_jsonl(tmp_path / "p.jsonl", rows_in), DEFAULT_SCALE).pairs
    with ScriptedServer(pairwise_judge) as srv:
        cfg = JudgeConfig(models=[compat_model(srv, "j")], rubric=RUBRIC)
        async with make_engine() as engine:
            report = await check_pairwise(pairs, PairwiseJudge(cfg, engine))
    assert report.mode == "pairwise"
    assert report.order_consistency == pytest.approx(0.5)
    assert report.agreement.exact == pytest.approx(3 / 4)
    assert [item.judge for item in report.items] == ["A", "B", "tie", "tie"]
    assert [item.order_consistent for item in report.items] == [True, True, False, False]
    assert report.judge_calls == 8


# ---------------------------------------------------------------- the command


def cli_app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """Test root."""

    register(app)
    return app


def test_judge_check_command(tmp_path: Path) -> None:
    unlabelled = [{k: v for k, v in r.items() if k != "human"} for r in ROWS]
    data = write_jsonl(tmp_path / "d.jsonl", unlabelled)
    labels = write_jsonl(tmp_path / "l.jsonl", [{"id": r["id"], "human": r["human"]} for r in ROWS])
    rubric = tmp_path / "rubric.md"
    rubric.write_text(RUBRIC, encoding="utf-8")
    with ScriptedServer(pointwise_judge) as srv:
        args = [
            "judge",
            "check",
            str(data),
            "--judge",
            "compat/j",
            "--judge-base-url",
            srv.base_url,
            "--judge-criteria",
            str(rubric),
            "--labels",
            str(labels),
            "--store",
            str(tmp_path / "store"),
        ]
        result = CliRunner().invoke(cli_app(), [*args, "--json"])
        assert result.exit_code == 0, result.output
        report = json.loads(result.output)
        assert report["agreement"]["n_scored"] == 5
        assert report["verdict"] == "use with care"
        assert (tmp_path / "store" / "cache.sqlite").exists()
        table = CliRunner().invoke(cli_app(), args)
    assert table.exit_code == 0, table.output
    assert "weighted kappa" in table.output and "Verdict" in table.output
    assert "use with care" in table.output
    assert "Unscored, most often (1x): judge reply unparsable" in table.output
