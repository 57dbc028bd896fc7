"""Hostile data, prompts, configs and model replies, each through the real CLI.

The contract: a hostile input never leaves a run `running` or prints "Unexpected …, report it".
Text Assay can repair (half of an emoji) is repaired and said so; a reply it cannot use is
scored or made that sample's error while the run goes on; a file it cannot read safely (a
FIFO, a device, a record nested past any use) is one `error:` line before any call; and no
control code from a reply, an error body or a data file reaches the terminal.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from assay.benchmark.config import RunConfig
from assay.data import datasets
from assay.store.runstore import ResultRecord, RunStore
from assay.testing import Action, ChatRequest, ScriptedServer, error, reply
from tests.run_helpers import assay

ESC = "\x1b"
CLEAR = "\x1b[2J"
TITLE = "\x1b]0;pwned\x07"
DEEP = "[" * 1200 + "]" * 1200

ROWS = [
    {"id": "r1", "text": "a fine film", "label": "positive"},
    {"id": "r2", "text": "a dull film", "label": "negative"},
    {"id": "r3", "text": "a fun ride", "label": "positive"},
    {"id": "r4", "text": "a slow mess", "label": "negative"},
]
TRUTH = {r["text"]: r["label"] for r in ROWS}


class Model:
    """Answers each row's label, unless ``special`` maps its text to another action."""

    def __init__(self, special: dict[str, Action] | None = None) -> None:
        self.special = special or {}
        self.seen: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, request: ChatRequest) -> Action:
        text = request.last_user_text
        with self._lock:
            self.seen.append(text)
        if text in self.special:
            return self.special[text]
        return reply(TRUTH.get(text, "positive"), input_tokens=10, output_tokens=1)


@pytest.fixture
def served() -> Iterator[Callable[..., ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(model: Callable[[ChatRequest], Action]) -> ScriptedServer:
        servers.append(ScriptedServer(model).start())
        return servers[-1]

    yield start
    for srv in servers:
        srv.stop()


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def prompt_file(tmp_path: Path, text: str = "Classify: positive or negative.\n") -> Path:
    path = tmp_path / "prompt.md"
    path.write_text(text, encoding="utf-8")
    return path


def run_args(data: Path, prompt: Path, srv: ScriptedServer, *extra: str) -> list[str]:
    return ["run", str(data), str(prompt), "-m", "compat/m", "--base-url", srv.base_url, *extra]


def run_json(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert proc.returncode == 0, proc.stderr
    assert "Unexpected" not in proc.stderr
    report: dict[str, Any] = json.loads(proc.stdout)
    assert report["status"] == "complete", report
    return report


def stored(run_id: str) -> tuple[str, list[ResultRecord]]:
    store = RunStore.open(os.environ["ASSAY_STORE"], create=False)
    return store.get_run(run_id).status, store.results(run_id)


def one_error_line(proc: subprocess.CompletedProcess[str], *parts: str) -> str:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    (line,) = lines
    assert line.startswith("error: ") and "Unexpected" not in line, line
    for part in parts:
        assert part in line, line
    return line


def no_runs() -> bool:
    return (
        not RunStore.exists(os.environ["ASSAY_STORE"])
        or not RunStore.open(os.environ["ASSAY_STORE"], create=False).list_runs()
    )


# ---------------------------------------------------------------- half an emoji (surrogates)

SURROGATE_ROW = '{"id": "s1", "text": "great \\ud83d", "label": "positive"}\n'


def test_a_lone_surrogate_in_data_is_repaired_with_a_warning_naming_the_line(
    tmp_path: Path, served: Callable[..., ScriptedServer]
) -> None:
    data = tmp_path / "cut.jsonl"
    data.write_text(json.dumps(ROWS[0]) + "\n" + SURROGATE_ROW, encoding="utf-8")
    model = Model()
    srv = served(model)
    proc = assay(*run_args(data, prompt_file(tmp_path), srv, "--metric", "label"))
    assert proc.returncode == 0, proc.stderr
    warning = f"warning: {data}:2: "
    assert warning in proc.stderr and "U+FFFD" in proc.stderr, proc.stderr
    assert "great \ufffd" in model.seen  # the repaired text is what was sent
    (run,) = RunStore.open(os.environ["ASSAY_STORE"], create=False).list_runs()
    assert run.status == "complete"
    assert assay("show", run.id, "--samples").returncode == 0
    inspected = assay("inspect", str(data), "--json")
    assert inspected.returncode == 0, inspected.stderr
    assert warning in inspected.stderr
    assert json.loads(inspected.stdout)["rows"] == 2


@pytest.mark.parametrize("cache", [True, False], ids=["cache", "no-cache"])
def test_a_reply_or_error_body_with_a_lone_surrogate_does_not_stop_the_run(
    tmp_path: Path, served: Callable[..., ScriptedServer], cache: bool
) -> None:
    half = "\ud83d"  # json.dumps sends it as the escape "\ud83d", as a cut stream would
    model = Model(
        {
            ROWS[0]["text"]: reply(f"posit{half}ive", input_tokens=10, output_tokens=1),
            ROWS[1]["text"]: error(400, f"bad input {half}"),
        }
    )
    srv = served(model)
    data = write_rows(tmp_path / "d.jsonl", ROWS)
    extra = [] if cache else ["--no-cache"]
    args = run_args(data, prompt_file(tmp_path), srv, "--metric", "label", "--json", *extra)
    report = run_json(assay(*args))
    (variant,) = report["variants"]
    assert (variant["score"]["n_scored"], variant["n_errors"]) == (3, 1)
    status, results = stored(report["run_id"])
    by_id = {r.sample_id: r for r in results}
    assert status == "complete"
    assert by_id["r1"].completion is not None
    assert by_id["r1"].completion.text == "posit\ufffdive"
    assert by_id["r2"].error is not None and "bad input \ufffd" in by_id["r2"].error
    assert assay("show", report["run_id"], "--samples").returncode == 0


# ---------------------------------------------------------------- deep JSON replies


@pytest.mark.parametrize("metric", ["json", "json-schema"])
def test_json_metrics_score_a_reply_nested_1200_deep_as_zero(
    tmp_path: Path, served: Callable[..., ScriptedServer], metric: str
) -> None:
    deep = reply(DEEP, input_tokens=10, output_tokens=1)
    special = {r["text"]: deep for r in ROWS[1:]}
    special[ROWS[0]["text"]] = reply("[]", input_tokens=10, output_tokens=1)
    srv = served(Model(special))
    if metric == "json-schema":
        schema = tmp_path / "schema.json"
        schema.write_text('{"type": "array"}')
        metric = f"json-schema:{schema}"
    data = write_rows(tmp_path / "d.jsonl", ROWS)
    report = run_json(
        assay(*run_args(data, prompt_file(tmp_path), srv, "--metric", metric, "--json"))
    )
    (variant,) = report["variants"]
    assert variant["n_errors"] == 0
    assert variant["score"]["n_scored"] == len(ROWS)
    assert variant["score"]["mean"] == pytest.approx(1 / len(ROWS))  # only "[]" parses


# ---------------------------------------------------------------- terminal control codes


def test_no_control_code_from_replies_errors_or_data_reaches_the_terminal(
    tmp_path: Path, served: Callable[..., ScriptedServer]
) -> None:
    rows = [
        {"id": f"r{CLEAR}1", "text": f"a fine film{TITLE}", "label": "positive"},
        *ROWS[1:],
    ]
    model = Model(
        {
            rows[0]["text"]: reply(f"{CLEAR}{TITLE}positive", input_tokens=10, output_tokens=1),
            ROWS[1]["text"]: error(400, f"{TITLE}bad [/yellow] input"),
        }
    )
    srv = served(model)
    data = write_rows(tmp_path / "d.jsonl", rows)
    prompt = prompt_file(tmp_path)
    ran = assay(*run_args(data, prompt, srv, "--metric", "label"))
    assert ran.returncode == 0, ran.stderr
    (run,) = RunStore.open(os.environ["ASSAY_STORE"], create=False).list_runs()
    shown = assay("show", run.id, "--samples", env={"COLUMNS": "300"})
    assert shown.returncode == 0, shown.stderr
    assert "\\x1b]0;pwned\\x07positive" in shown.stdout  # shown, escaped, never obeyed
    inspected = assay("inspect", str(data), str(prompt))
    assert inspected.returncode == 0, inspected.stderr
    for proc in (ran, shown, inspected):
        assert ESC not in proc.stdout + proc.stderr


def test_an_error_line_quoting_a_hostile_server_has_no_control_code(
    tmp_path: Path, served: Callable[..., ScriptedServer]
) -> None:
    srv = served(lambda request: error(401, f"{TITLE}denied [/yellow] {CLEAR}"))
    data = write_rows(tmp_path / "d.jsonl", ROWS)
    proc = assay(*run_args(data, prompt_file(tmp_path), srv, "--metric", "label"))
    assert proc.returncode != 0
    assert "Unexpected" not in proc.stderr and "Traceback" not in proc.stderr
    assert ESC not in proc.stdout + proc.stderr
    (run,) = RunStore.open(os.environ["ASSAY_STORE"], create=False).list_runs()
    assert run.status == "failed"


# ---------------------------------------------------------------- files that are not files

# A FIFO blocks an open() forever and /dev/zero never ends: run these in a process of their
# own, with a timeout and an address-space cap, so a regression fails instead of hanging the
# suite or eating the machine's memory.
_MEMORY_CAP = 2 << 30


def _capped() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (_MEMORY_CAP, _MEMORY_CAP))


def assay_capped(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "assay", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=_capped,
    )


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe.jsonl"
    os.mkfifo(path)
    return path


def test_a_fifo_as_data_prompt_or_models_config_is_one_error_line(
    tmp_path: Path, fifo: Path
) -> None:
    data = write_rows(tmp_path / "d.jsonl", ROWS)
    prompt = prompt_file(tmp_path)
    task = ["-m", "compat/m", "--base-url", "http://127.0.0.1:9/v1", "--metric", "label"]
    cases = [
        ["inspect", str(fifo)],
        ["run", str(fifo), str(prompt), *task],
        ["inspect", str(data), str(fifo)],
        ["run", str(data), str(fifo), *task],
        ["run", str(data), str(prompt), "--config", str(fifo), "--metric", "label"],
    ]
    for args in cases:
        one_error_line(assay_capped(*args), str(fifo), "FIFO")
    assert no_runs()


def test_a_fifo_as_prices_rubric_or_json_schema_is_one_error_line(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.json"  # a name each reader accepts, so only the FIFO is wrong
    os.mkfifo(fifo)
    data = write_rows(tmp_path / "d.jsonl", ROWS)
    run = ["run", str(data), str(prompt_file(tmp_path)), "-m", "compat/m"]
    run += ["--base-url", "http://127.0.0.1:9/v1"]
    cases = [
        [*run, "--metric", "label", "--prices", str(fifo)],
        [
            *run,
            "--judge",
            "compat/j",
            "--judge-base-url",
            "http://127.0.0.1:9/v1",
            "--judge-criteria",
            str(fifo),
        ],
        [*run, "--metric", f"json-schema:{fifo}"],
    ]
    for args in cases:
        one_error_line(assay_capped(*args), str(fifo), "FIFO")
    assert no_runs()


@pytest.mark.parametrize("role", ["data", "prompt"])
def test_dev_zero_as_data_or_prompt_is_one_error_line(tmp_path: Path, role: str) -> None:
    data = write_rows(tmp_path / "d.jsonl", ROWS)
    args = ["/dev/zero", str(prompt_file(tmp_path))] if role == "data" else [str(data), "/dev/zero"]
    one_error_line(assay_capped("inspect", *args), "/dev/zero", "character device")


def test_a_huge_line_in_a_regular_file_is_refused_at_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(datasets, "MAX_LINE_BYTES", 4096)  # the real cap is 64 MiB
    data = tmp_path / "zeros.jsonl"
    data.write_bytes(json.dumps(ROWS[0]).encode() + b"\n" + b"\0" * 10_000)
    one_error_line(assay("inspect", str(data)), f"{data}:2", "longer than 4,096 bytes")


def _nested(depth: int) -> str:
    return '{"text": "x", "label": "positive", "n": ' + "[" * depth + "]" * depth + "}"


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("deep1200.jsonl", _nested(1200), ":2: the record nests"),
        ("deep300.jsonl", _nested(300), ":2: the record nests"),
        ("deep.json", "[\n" + json.dumps(ROWS[0]) + ",\n" + _nested(1200) + "\n]", "nests"),
        ("digits.jsonl", '{"text": "x", "label": "positive", "n": ' + "7" * 5000 + "}", ":2:"),
    ],
)
def test_hostile_json_in_data_is_one_error_line_with_its_line(
    tmp_path: Path, served: Callable[..., ScriptedServer], name: str, content: str, expected: str
) -> None:
    data = tmp_path / name
    if name.endswith(".jsonl"):
        content = json.dumps(ROWS[0]) + "\n" + content + "\n"
    data.write_text(content)
    one_error_line(assay("inspect", str(data)), f"{data}", expected)
    model = Model()
    srv = served(model)
    one_error_line(assay(*run_args(data, prompt_file(tmp_path), srv, "--metric", "label")))
    assert model.seen == [] and no_runs()


def test_a_binary_models_config_is_one_error_line(tmp_path: Path) -> None:
    config = tmp_path / "models.yaml"
    config.write_bytes(bytes(range(256)) * 4)
    data = write_rows(tmp_path / "d.jsonl", ROWS)
    args = ["run", str(data), str(prompt_file(tmp_path)), "--config", str(config)]
    one_error_line(assay(*args, "--metric", "label"), str(config), "UTF-8")
    assert no_runs()


def test_a_store_that_is_a_file_is_one_error_line(
    tmp_path: Path, served: Callable[..., ScriptedServer]
) -> None:
    store = tmp_path / "not-a-folder"
    store.write_text("precious")
    srv = served(Model())
    data = write_rows(tmp_path / "d.jsonl", ROWS)
    run = run_args(data, prompt_file(tmp_path), srv, "--metric", "label")
    for args in (run, ["runs"], ["show", "x"], ["report", "x"]):
        one_error_line(assay(*args, "--store", str(store)), str(store), "not a folder")
    assert store.read_text() == "precious"


# ---------------------------------------------------------------- smaller traps


def test_a_slot_with_a_brace_missing_is_warned_about_in_inspect_and_the_plan(
    tmp_path: Path, served: Callable[..., ScriptedServer]
) -> None:
    prompt = prompt_file(tmp_path, "Classify the review.\n\nReview: {{text}\n")
    data = write_rows(tmp_path / "d.jsonl", ROWS)
    warning = f"warning: {prompt}:3: '{{{{text}}' is not a slot"
    inspected = assay("inspect", str(data), str(prompt))
    assert inspected.returncode == 0, inspected.stderr
    assert warning in inspected.stderr
    srv = served(Model())
    ran = assay(*run_args(data, prompt, srv, "--metric", "label"))
    assert ran.returncode == 0, ran.stderr
    assert warning in ran.stderr
    fine = prompt_file(tmp_path, 'Review: {{text}} {{ id }}, as JSON: {"a": {"b": 1}}\n')
    assert "warning" not in assay("inspect", str(data), str(fine)).stderr


def test_percent_and_underscore_in_a_run_id_prefix_are_not_wildcards(
    tmp_path: Path, served: Callable[..., ScriptedServer]
) -> None:
    srv = served(Model())
    data = write_rows(tmp_path / "d.jsonl", ROWS)
    report = run_json(
        assay(*run_args(data, prompt_file(tmp_path), srv, "--metric", "label", "--json"))
    )
    run_id: str = report["run_id"]
    for pattern in ("%", "_", run_id[:4] + "%", "_" + run_id[1:]):
        one_error_line(assay("show", pattern), "No run")
    assert assay("show", run_id[:10]).returncode == 0  # a real prefix still works


def test_rows_without_a_label_are_unscored_not_a_dataset_error(
    tmp_path: Path, served: Callable[..., ScriptedServer]
) -> None:
    rows = [ROWS[0], {"id": "x", "text": ROWS[1]["text"]}, {**ROWS[2], "label": ""}, ROWS[3]]
    data = write_rows(tmp_path / "d.jsonl", rows)
    srv = served(Model())
    prompt = prompt_file(tmp_path)
    report = run_json(assay(*run_args(data, prompt, srv, "--metric", "label", "--json")))
    (variant,) = report["variants"]
    assert (variant["score"]["n_scored"], variant["score"]["n_unscored"]) == (2, 2)
    assert variant["score"]["mean"] == 1.0
    none = write_rows(tmp_path / "none.jsonl", [{"text": r["text"]} for r in ROWS])
    one_error_line(assay(*run_args(none, prompt, srv, "--metric", "label")), "references")


@pytest.mark.parametrize("repeats", ["1001", str(10**12)])
def test_repeats_has_a_sane_maximum(
    tmp_path: Path, served: Callable[..., ScriptedServer], repeats: str
) -> None:
    model = Model()
    srv = served(model)
    data = write_rows(tmp_path / "d.jsonl", ROWS)
    args = run_args(data, prompt_file(tmp_path), srv, "--metric", "label", "--repeats", repeats)
    one_error_line(assay(*args), "--repeats", "1000")
    assert model.seen == [] and no_runs()
    with pytest.raises(ValueError, match="1000"):  # the API refuses it too
        RunConfig(data=str(data), prompts=["p.md"], models=[], repeats=int(repeats))
