"""API keys never leave the environment: not into the run store, the cache, a report, a log
line, stdout, stderr or ``--json`` output, whatever the command, and not when a server's
error message echoes the key back (as OpenAI's 401 does: "Incorrect API key provided: sk-...").
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from assay.data import demo_path
from assay.testing import Action, ChatRequest, ScriptedServer, error, reply
from tests.optimize_helpers import MAGIC, proposal, small_dataset
from tests.run_helpers import assay

KEYS = {
    "OPENAI_API_KEY": "sk-assay-TEST-openai-7f3a9c1e5b2d4f60",
    "ANTHROPIC_API_KEY": "sk-ant-assay-TEST-2b8d4f6a0c1e3a5b",
    "OPENROUTER_API_KEY": "sk-or-assay-TEST-9e1c3a5b7d0f2e4c",
    "MY_GATEWAY_KEY": "gw-assay-TEST-4c6e8a0b2d1f3e5a",
}
PROMPT = demo_path("sentiment_prompt.md")
GOOD = f"Classify the sentiment of the movie review. {MAGIC}: positive or negative."
JUDGE_MARK = "You are an impartial evaluator"


def fake_model(request: ChatRequest) -> Action:
    """Judge, reasoner or task model, by what is asked."""
    system = next((m["content"] for m in request.messages if m["role"] == "system"), "")
    if system.startswith(JUDGE_MARK):
        return reply("The label is clear and correct.\nVERDICT: 4")
    if request.model.endswith("reasoner"):
        return reply(proposal(GOOD), input_tokens=300, output_tokens=50)
    return reply("positive", input_tokens=30, output_tokens=1)


@dataclass
class Session:
    """Every command's output, kept for the scan at the end."""

    root: Path
    url: str
    outputs: list[tuple[str, str]] = field(default_factory=list)

    def cli(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        proc = assay(*args)
        self.outputs.append((" ".join(args[:2]) + " stdout", proc.stdout))
        self.outputs.append((" ".join(args[:2]) + " stderr", proc.stderr))
        if ok:
            assert proc.returncode == 0, proc.stderr
        return proc


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    return KEYS


def models_config(root: Path, url: str) -> Path:
    path = root / "models.yaml"
    path.write_text(
        "models:\n"
        f"  - spec: openrouter/meta/llama\n    base_url: {url}\n"
        f"  - spec: compat/gateway\n    base_url: {url}\n    api_key_env: MY_GATEWAY_KEY\n"
    )
    return path


def assert_no_key_anywhere(session: Session, keys: dict[str, str]) -> None:
    files = [p for p in session.root.rglob("*") if p.is_file()]
    assert any(p.name == "runs.sqlite" for p in files) and any(p.suffix == ".html" for p in files)
    for path in files:
        data = path.read_bytes()
        for name, value in keys.items():
            assert value.encode() not in data, f"{name} found in {path}"
            assert value[-12:].encode() not in data, f"the end of {name} found in {path}"
    for label, text in session.outputs:
        for name, value in keys.items():
            assert value not in text and value[-12:] not in text, f"{name} in {label}"


@pytest.fixture
def session(
    tmp_path: Path, keys: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Session]:
    monkeypatch.setenv("ASSAY_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("ASSAY_LOG", str(tmp_path / "assay.log"))  # if logging is ever added
    with ScriptedServer(fake_model) as srv:
        yield Session(tmp_path, srv.base_url)
        sent = [dict(r.headers) for r in srv.requests]
    # The keys were really used: each reached the server in its own header.
    auth = " ".join(h.get("authorization", "") + " " + h.get("x-api-key", "") for h in sent)
    assert all(value in auth for value in keys.values())


def test_no_command_writes_or_prints_a_key(session: Session, keys: dict[str, str]) -> None:
    root, url = session.root, session.url
    data = small_dataset(root / "d.jsonl", 30)
    rubric = root / "rubric.md"
    rubric.write_text("Score 1-5: is the sentiment label right?\n")
    config = models_config(root, url)
    run_args = [
        "run", str(data), str(PROMPT), "-m", "openai/gpt-4o-mini",
        "-m", "anthropic/claude-haiku-4-5", "--base-url", url, "--config", str(config),
        "--metric", "label", "--judge", "openai/gpt-4o-mini", "--judge-base-url", url,
        "--judge-criteria", str(rubric), "--limit", "6",
    ]  # fmt: skip
    first = json.loads(session.cli(*run_args, "--json", "-o", str(root / "r.json")).stdout)
    assert first["status"] == "complete" and len(first["variants"]) == 4
    assert all(v["score"]["n_scored"] == 6 for v in first["variants"])
    session.cli(*run_args, "--repeats", "2")  # the table output, with its preflight
    runs = json.loads(session.cli("runs", "--json").stdout)
    second = next(r["id"] for r in runs if r["id"] != first["run_id"])
    opt_args = [
        "optimize", str(data), str(PROMPT), "-m", "openai/gpt-4o-mini", "--base-url", url,
        "--reasoning-model", "openrouter/meta/reasoner", "--reasoning-base-url", url,
        "--metric", "label", "--max-iterations", "1", "--batch-size", "4",
    ]  # fmt: skip
    opt = json.loads(
        session.cli(
            *opt_args, "--json", "-o", str(root / "best.md"), "--results-json", str(root / "o.json")
        ).stdout
    )
    session.cli(*opt_args)
    compare = ["compare", "--variant-a", "openai/gpt-4o-mini", "--variant-b", "compat/gateway"]
    for args in (
        ["runs"],
        ["show", first["run_id"]],
        ["show", first["run_id"], "--samples"],
        ["show", first["run_id"], "--json"],
        ["show", opt["run_id"]],
        ["show", opt["run_id"], "--json"],
        [*compare, first["run_id"], second],
        [*compare, first["run_id"], second, "--json"],
        ["report", first["run_id"], second, "-o", str(root / "report.html")],
        ["report", opt["run_id"], "-o", str(root / "opt-report.html")],
        ["inspect", str(data), str(PROMPT)],
        ["inspect", str(data), str(PROMPT), "--json"],
        ["prices"],
        ["prices", "--json"],
        ["prices", "gpt-4o"],
    ):
        session.cli(*args)
    labels = root / "labels.jsonl"
    labels.write_text(
        "".join(
            json.dumps({"input": f"review {i}", "response": "positive", "human": 4}) + "\n"
            for i in range(6)
        )
    )
    judge_args = ["judge", "check", str(labels), "--judge", "openai/gpt-4o-mini"]
    judge_args += ["--judge-base-url", url, "--judge-criteria", str(rubric)]
    session.cli(*judge_args)
    session.cli(*judge_args, "--json")
    session.cli("--debug", "runs")  # debug mode on a command that works
    assert_no_key_anywhere(session, keys)


# --------------------------------------------------------------------------- echoed keys


def echoing_401(keys: dict[str, str]) -> ScriptedServer:
    """OpenAI's wording: the 401 message quotes the key that was sent."""

    def handler(request: ChatRequest) -> Action:
        sent = request.headers.get("x-api-key") or request.headers.get("authorization", "")
        key = sent.removeprefix("Bearer ")
        assert key in keys.values()  # the provider really sent a key
        return error(
            401,
            f"Incorrect API key provided: {key}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            code="invalid_api_key",
        )

    return ScriptedServer(handler)


@pytest.mark.parametrize(
    ("spec", "env"),
    [
        ("openai/gpt-4o-mini", "OPENAI_API_KEY"),
        ("anthropic/claude-haiku-4-5", "ANTHROPIC_API_KEY"),
        ("openrouter/meta/llama", "OPENROUTER_API_KEY"),
        ("config:compat/gateway", "MY_GATEWAY_KEY"),
    ],
)
def test_a_401_that_echoes_the_key_does_not_leak_it(
    tmp_path: Path,
    keys: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    spec: str,
    env: str,
) -> None:
    monkeypatch.setenv("ASSAY_STORE", str(tmp_path / "store"))
    data = small_dataset(tmp_path / "d.jsonl", 3)
    session = Session(tmp_path, "")
    with echoing_401(keys) as srv:
        if spec.startswith("config:"):
            config = tmp_path / "gw.yaml"
            config.write_text(
                f"models:\n  - spec: {spec.removeprefix('config:')}\n"
                f"    base_url: {srv.base_url}\n    api_key_env: {env}\n"
            )
            models = ["--config", str(config)]
        else:
            models = ["-m", spec, "--base-url", srv.base_url]
        common = [str(data), str(PROMPT), *models, "--metric", "label"]
        proc = session.cli("run", *common, "--json", "-o", str(tmp_path / "r.json"), ok=False)
        assert proc.returncode != 0
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
        assert "Incorrect API key provided: ***" in lines[0]  # the message, redacted
        assert env in lines[0]  # and the variable to check
        run_id = json.loads(proc.stdout)["run_id"]
        session.cli("show", run_id, "--samples")
        if env == "OPENAI_API_KEY":  # tracebacks hold no key either
            debug = session.cli("--debug", "run", *common, ok=False)
            assert debug.returncode != 0 and "Traceback" in debug.stderr
        if not spec.startswith("config:"):  # (optimize takes -m only)
            reasoner = ["--reasoning-model", "compat/r", "--reasoning-base-url", srv.base_url]
            proc = session.cli(
                "optimize", str(small_dataset(tmp_path / "o.jsonl", 20)), str(PROMPT), *models,
                *reasoner, "--metric", "label", ok=False,
            )  # fmt: skip
            assert proc.returncode != 0 and "Incorrect API key provided: ***" in proc.stderr
    assert_no_key_anywhere_but_html(session, keys)


def assert_no_key_anywhere_but_html(session: Session, keys: dict[str, str]) -> None:
    for path in (p for p in session.root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        for name, value in keys.items():
            assert value.encode() not in data, f"{name} found in {path}"
    for label, text in session.outputs:
        for name, value in keys.items():
            assert value not in text, f"{name} in {label}"
