"""``perf.task_ceiling --quick`` runs end to end: a scripted model stands in for the embedded
one, answering each panel prompt in its own way, and every number in the table is one the
benchmark computed from what the server answered."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
from perf import task_ceiling

from assay.testing import Action, ChatRequest, reply
from tests.perf_helpers import embedded_model_served_by, markdown_table

LABELS = {"implicatures": ("no", "yes"), "hyperbaton": ("a", "b")}
PROMPT = "Which is it?\n\n{{input}}\n"


def write_task(folder: Path, name: str, rows: int = 60) -> None:
    first, second = LABELS[name]
    lines = [
        {"id": f"{name}-{i}", "input": f"Row {i} of {name}: speaker {i % 7} says things.",
         "ideal": second if i % 3 == 0 else first}
        for i in range(rows)
    ]  # fmt: skip
    (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    (folder / f"{name}_prompt.md").write_text(PROMPT)


class PanelModel:
    """No label without a format rule; right with demonstrations; else a constant label: the
    first one under the plain rule, the second under the definitions."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def __call__(self, request: ChatRequest) -> Action:
        text = "\n".join(str(m.get("content")) for m in request.messages)
        self.asked.append(text)
        number, task = re.findall(r"Row (\d+) of (\w+)", text)[-1]
        first, second = LABELS[task]
        if "answer with" not in text.lower():
            return reply("It depends on the day.")
        if "## Examples" in text:
            return reply(second if int(number) % 3 == 0 else first)
        return reply(second if "Labels:" in text else first)


def demo_rows(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"^Input: Row (\d+) of", text, re.MULTILINE)]


def held_out_rows(tasks: Path, name: str, count: int) -> list[int]:
    rows = [json.loads(line) for line in (tasks / f"{name}.jsonl").read_text().splitlines()]
    random.Random(0).shuffle(rows)  # perf.optimizer_tasks' split for seed 0
    return [int(r["id"].split("-")[1]) for r in rows[:count]]


def test_quick_panel_scores_each_prompt_on_the_held_out_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    for name in LABELS:
        write_task(tasks, name)
    out = tmp_path / "rows.json"
    model = PanelModel()
    with embedded_model_served_by(model, monkeypatch):
        task_ceiling.main(
            ["--quick", "--tasks-dir", str(tasks), "--tasks", "implicatures,hyperbaton",
             "--markdown", "--json", str(out)]
        )  # fmt: skip

    rows = json.loads(out.read_text())
    assert [(r["task"], r["prompt"]) for r in rows] == [(t, p) for t in LABELS for p in "abcdef"]
    # The starting prompt is scored once per row, though every gain is paired with it.
    assert len(model.asked) == len(rows) * 20
    for task, (first, second) in LABELS.items():
        held = held_out_rows(tasks, task, 20)
        by = {r["prompt"]: r for r in rows if r["task"] == task}
        assert by["a"]["score"] == 0.0 and by["a"]["no_label_share"] == 1.0
        assert by["a"]["constant_label"] is None and by["a"]["gain"] is None
        assert by["a"]["balanced"] == 0.0 and by["a"]["predicted"] == [None] * 20
        share = sum(n % 3 != 0 for n in held) / 20  # the rows whose answer is `first`
        assert by["b"]["constant_label"] == first and by["b"]["constant_share"] == 1.0
        assert by["b"]["score"] == pytest.approx(share) and by["b"]["no_label_share"] == 0.0
        assert by["f"]["constant_label"] == second and by["f"]["score"] == pytest.approx(1 - share)
        # A constant answer tells no rows apart, however the labels are split.
        assert by["b"]["balanced"] == by["f"]["balanced"] == 0.5
        for key in "cde":
            assert by[key]["score"] == 1.0 and by[key]["significant"] == "gain"
            assert by[key]["p_value"] < 0.05 and by[key]["gain"] == 1.0
            assert by[key]["constant_share"] == pytest.approx(share)
            assert by[key]["balanced"] == 1.0 and by[key]["predicted"] == by[key]["expected"]
        # Demonstrations: labels balanced, from the optimizer's rows only, e reverses d.
        four, eight, back = (demo_rows(by[k]["text"]) for k in "cde")
        assert len(four) == 4 and len(eight) == 8 and back == eight[::-1]
        assert [n % 3 == 0 for n in eight].count(True) == 4
        assert not set(eight) & set(held) and not set(four) & set(held)
    printed = capsys.readouterr().out
    table = markdown_table(printed, "Prompt panel, held-out test")
    assert [row["prompt"][0] for row in table] == [r["prompt"] for r in rows]
    assert "selection on test" in printed
    # Every prompt with a format rule beats a starting prompt whose answers hold no label.
    assert "implicatures: significant gains over a in 5 of 5 comparisons" in printed


def test_rows_optimizer_scores_the_prompts_without_demonstrations_on_the_optimizer_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    write_task(tasks, "hyperbaton")
    out = tmp_path / "rows.json"
    model = PanelModel()
    with embedded_model_served_by(model, monkeypatch):
        task_ceiling.main(
            ["--quick", "--tasks-dir", str(tasks), "--tasks", "hyperbaton", "--rows",
             "optimizer", "--markdown", "--json", str(out)]
        )  # fmt: skip

    rows = json.loads(out.read_text())
    assert [r["prompt"] for r in rows] == ["a", "b", "f"]
    held = set(held_out_rows(tasks, "hyperbaton", 20))
    asked = {int(re.findall(r"Row (\d+) of", text)[-1]) for text in model.asked}
    assert len(asked) == 40 and not asked & held  # the 40 optimizer rows, no held-out one
    assert len(model.asked) == 3 * 40 and all(r["n"] == 40 for r in rows)
    share = sum(n % 3 != 0 for n in asked) / 40
    by = {r["prompt"]: r for r in rows}
    assert by["b"]["score"] == pytest.approx(share) and by["b"]["gain"] == pytest.approx(share)
    assert "Prompt panel, the optimizer's own rows" in capsys.readouterr().out
