"""Generated datasets, prompts, models configs and model replies, thrown at the real CLI.

For every generated input, ``assay inspect``, ``assay run``, ``assay show --samples`` and
``assay report`` must:

1. exit 0, or exit non-zero with exactly one ``error:`` line on stderr (its last line, after
   any plan, progress or warnings) that is not the catch-all "Unexpected …"; never a traceback;
2. leave no run ``running``: a run ends ``complete`` with exit 0, or ``failed`` with exit 1;
3. never let a key the process knows reach stdout, stderr, the results file, the HTML report
   or any byte of any file in the run store's folder (the store and the cache);
4. print no terminal control code (ESC, or the one-character CSI U+009B).

Hypothesis runs derandomized, so CI sees the same examples on every run. Each example gets a
fresh store folder; one scripted server serves a whole test, its handler set per example.
Retries go without backoff here (``no_backoff``): when a retry happens changes nothing these
properties check, and backoff would cost seconds per example.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from assay.engine.retry import RetryPolicy
from assay.store.runstore import RunStore
from assay.testing import Action, ChatRequest, ScriptedServer, error, no_choices, raw, reply
from tests.run_helpers import assay

# The providers' key variables the runs below read: OPENAI_API_KEY for openai/* models, and
# OPENAI_COMPAT_API_KEY, which compat/* models send to their --base-url when it is set.
OPENAI_KEY = "sk-test-SECRET1234567890abcdef"
COMPAT_KEY = "sk-compat-PROP-5b7d9f1a3c5e7092"
KEYS = {"OPENAI_API_KEY": OPENAI_KEY, "OPENAI_COMPAT_API_KEY": COMPAT_KEY}
WINDOW = 12  # assay.secrets.MIN_RUN: any 12 characters copied from a key are a leak

PROPERTY = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

ROWS = [
    {"id": "r1", "text": "a fine film", "label": "positive"},
    {"id": "r2", "text": "a dull film", "label": "negative"},
    {"id": "r3", "text": "a fun ride", "label": "positive"},
    {"id": "r4", "text": "a slow mess", "label": "negative"},
]
PROMPT = "Classify the review as positive or negative.\n\n{{text}}\n"
METRICS = ["exact", "label", "label:positive,negative", "contains", "json"]

# --------------------------------------------------------------------------- text

HOSTILE = [
    "\x1b[2J",  # clears the screen
    "\x1b]0;pwned\x07",  # sets the window title
    "\x9b31m",  # a one-character CSI
    "\ud83d",  # half of an emoji, as JavaScript writes a cut one
    "\udfff",
    "\x00",
    "\r\n",
    "\t",
    "\u202e",  # right-to-left override
    "\ufeff",  # byte-order mark
    "中文文本，测试。",
    "日本語のテキスト",
    "[bold red]markup[/]",
    "<script>alert(1)</script>",
    "{{text}}",
    "{{label}}",
    "%s %d %(text)s",
    "positive",
    "negative",
]


def key_echoes() -> st.SearchStrategy[str]:
    """A key as a careless server echoes it: whole, without its ``sk-`` prefix, or its end."""
    return st.sampled_from([OPENAI_KEY, COMPAT_KEY]).flatmap(
        lambda k: st.sampled_from([k, k.removeprefix("sk-"), k[-WINDOW:], f"Bearer {k}"])
    )


def long_text() -> st.SearchStrategy[str]:
    return st.builds(
        lambda c, n: c * n, st.sampled_from(["x", "é", "字", "a b "]), st.integers(1, 20_000)
    )


def hostile_text(keys: bool = True) -> st.SearchStrategy[str]:
    """Unicode with lone surrogates, controls, ANSI escapes, CJK and (with ``keys``) echoed
    keys; now and then a very long string."""
    pieces = [
        st.text(max_size=12),
        st.sampled_from(HOSTILE),
        st.characters(categories=["Cs", "Cc", "Cf", "Co"]),
    ]
    piece = st.one_of(*pieces, key_echoes()) if keys else st.one_of(*pieces)
    return st.one_of(st.lists(piece, max_size=5).map("".join), long_text())


# A key as a row's id or a model's label is stored as-is (the xfail tests at the end):
# generated ids and labels hold none, so the properties test everything else.
ROW_IDS = hostile_text(keys=False)
LABEL_NAMES = hostile_text(keys=False)


def json_values(text: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    """JSON values nested a few levels, holding ``text`` strings."""
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        text,
    )
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
        ),
        max_leaves=6,
    )


def deep_json() -> st.SearchStrategy[str]:
    """An array or an object nested up to 1,500 deep (past Python's recursion limit)."""
    return st.builds(
        lambda obj, n: '{"a":' * n + "1" + "}" * n if obj else "[" * n + "]" * n,
        st.booleans(),
        st.integers(1, 1500),
    )


def encoded(text: str) -> bytes:
    """UTF-8, with a lone surrogate written as its (invalid) three bytes."""
    return text.encode("utf-8", "surrogatepass")


# --------------------------------------------------------------------------- datasets

LABELS = st.one_of(st.sampled_from(["positive", "negative"]), hostile_text())


def row_texts() -> st.SearchStrategy[str]:
    """Hostile text that is not blank, so the row itself is valid."""
    return st.builds(
        lambda head, tail: head + tail, st.sampled_from(["a ", "字", "é"]), hostile_text()
    )


def flat_rows() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"text": row_texts(), "label": LABELS}, optional={"id": ROW_IDS, "x": LABELS}
    )


def message_rows() -> st.SearchStrategy[dict[str, Any]]:
    user = st.fixed_dictionaries({"role": st.just("user"), "content": row_texts()})
    assistant = st.fixed_dictionaries({"role": st.just("assistant"), "content": LABELS})
    turns = st.tuples(user, assistant).map(list)
    return st.fixed_dictionaries({"messages": turns})


def wild_rows() -> st.SearchStrategy[dict[str, Any]]:
    """Missing, extra and wrongly typed fields, in any of the formats' keys."""
    value = json_values(hostile_text())
    keys = ["text", "label", "messages", "instruction", "input", "output", "conversations", "x"]
    optional = {k: value for k in keys} | {"id": json_values(ROW_IDS)}
    return st.fixed_dictionaries({}, optional=optional)


JUNK_LINES = [
    "{not json",
    "",
    "   ",
    "[1, 2",
    "null",
    "42",
    '"text"',
    '{"text": "a"',
    "\x00",
    '{"text": ' + "1" * 5000 + "}",  # a 5,000-digit number
    '{"text": ' + "[" * 150 + "]" * 150 + "}",  # nested past any use
    "[" * 1500 + "]" * 1500,
]


def as_jsonl(rows: st.SearchStrategy[dict[str, Any]], raw: bool) -> st.SearchStrategy[str]:
    """One JSON line; with ``raw``, written as UTF-8 now and then, where a lone surrogate
    cannot be written (it becomes invalid bytes)."""
    ascii_only = st.sampled_from([True, False]) if raw else st.just(True)
    return st.tuples(rows, ascii_only).map(lambda r: json.dumps(r[0], ensure_ascii=r[1]))


def jsonl_file(line: st.SearchStrategy[str]) -> st.SearchStrategy[bytes]:
    lines = st.lists(line, min_size=1, max_size=5)
    end = st.sampled_from(["\n", ""])
    return st.builds(lambda ls, e: encoded("\n".join(ls) + e), lines, end)


@st.composite
def csv_file(draw: st.DrawFn, ragged: bool) -> bytes:
    """A CSV with a header; ``ragged`` rows may have too few or too many cells."""
    others = draw(st.lists(st.sampled_from(["label", "id", "x"]), unique=True))
    header = [*others, "text"]
    row = st.tuples(*(ROW_IDS if name == "id" else row_texts() for name in header)).map(list)
    if ragged:  # a cell too few or too many
        row = st.tuples(row, st.integers(-1, 1)).map(
            lambda r: (r[0] + ["extra"])[: len(r[0]) + r[1]]
        )
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(draw(st.lists(row, min_size=1, max_size=4)))
    # A lone surrogate has no UTF-8 form: a well-formed CSV has U+FFFD there instead.
    return encoded(out.getvalue()) if ragged else out.getvalue().encode("utf-8", "replace")


def good_datasets() -> st.SearchStrategy[tuple[str, bytes]]:
    """Datasets Assay should accept: well-formed rows that hold hostile text."""
    return st.one_of(
        jsonl_file(as_jsonl(flat_rows(), raw=False)).map(lambda b: ("data.jsonl", b)),
        jsonl_file(as_jsonl(message_rows(), raw=False)).map(lambda b: ("data.jsonl", b)),
        csv_file(ragged=False).map(lambda b: ("data.csv", b)),
    )


def wild_datasets() -> st.SearchStrategy[tuple[str, bytes]]:
    """Invalid JSON lines, wrong types, missing fields, deep nesting, ragged CSV, empty files
    and bytes that are no text."""
    rows = st.one_of(flat_rows(), message_rows(), wild_rows())
    line = st.one_of(as_jsonl(rows, raw=True), st.sampled_from(JUNK_LINES))
    return st.one_of(
        jsonl_file(line).map(lambda b: ("data.jsonl", b)),
        csv_file(ragged=True).map(lambda b: ("data.csv", b)),
        st.sampled_from([("data.jsonl", b""), ("data.csv", b"")]),
        st.binary(max_size=64).map(lambda b: ("data.jsonl", b)),
    )


def datasets() -> st.SearchStrategy[tuple[str, bytes]]:
    """A dataset file's name and bytes; two in three are well formed."""
    return st.one_of(good_datasets(), good_datasets(), wild_datasets())


# --------------------------------------------------------------------------- prompts

PROMPT_PIECES = [
    "Classify the review as positive or negative.\n",
    "{{text}}",
    "{{ text }}",
    "{{text}",  # a brace missing
    "{text}}",
    "{{text",
    "{{ 1 + 1 }}",
    "{{",
    "}}",
    "{}",
    "{0}",
    "%",
    "%s",
    "%(text)s",
    "\\",
    "\n",
    "提示：",
]
WRONG_SLOTS = ["{{label}}", "{{missing}}", "{{messages}}", "{{text.x}}"]


def prompts() -> st.SearchStrategy[bytes]:
    """Templates with slots, broken slots, braces, ``%`` and hostile text; some name fields
    the data may not have; some are empty."""
    piece = st.one_of(st.sampled_from(PROMPT_PIECES), hostile_text())
    wild = st.one_of(piece, st.sampled_from(WRONG_SLOTS))
    # A well-formed prompt file is UTF-8, so a lone surrogate in it is U+FFFD.
    good = st.lists(piece, max_size=7).map(
        lambda p: "".join([PROMPT_PIECES[0], *p]).encode("utf-8", "replace")
    )
    return st.one_of(good, good, st.lists(wild, max_size=8).map(lambda p: encoded("".join(p))))


# --------------------------------------------------------------------------- replies


def reply_texts() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(["positive", "negative", "", '{"label": "positive"}']),
        hostile_text(),
        json_values(hostile_text()).map(json.dumps),
        deep_json(),
        key_echoes().map(lambda k: f"my key is {k}"),
    )


def replies() -> st.SearchStrategy[Action]:
    return st.builds(
        reply,
        reply_texts(),
        usage=st.booleans(),
        finish_reason=st.sampled_from(["stop", "length"]),
    )


def actions() -> st.SearchStrategy[Action]:
    """What the server answers: a reply (with or without usage), an error whose body may echo
    a key, a body that is not JSON, or a reply without choices."""
    return st.one_of(
        replies(),
        st.builds(
            error,
            st.sampled_from([400, 401, 403, 404, 422, 429, 500, 503]),
            hostile_text(),
            retry_after=st.just(0.0),
        ),
        st.builds(
            raw,
            st.sampled_from([200, 500, 502]),
            st.one_of(st.binary(max_size=64), hostile_text().map(encoded)),
            st.just({"Content-Type": "text/plain"}),
        ),
        st.just(no_choices()),
    )


class Script:
    """Answers each item with one of ``actions``, chosen by a hash of its text, so every
    attempt at one item gets the same answer."""

    def __init__(self, actions: Sequence[Action]) -> None:
        self.actions = list(actions)

    def __call__(self, request: ChatRequest) -> Action:
        digest = hashlib.sha256(request.last_user_text.encode("utf-8", "surrogatepass")).digest()
        return self.actions[digest[0] % len(self.actions)]


# --------------------------------------------------------------------------- models configs

HOSTED = ["openai/gpt-4o-mini", "openrouter/x/y", "groq/llama"]
HEADERS = st.fixed_dictionaries(
    {"X-Api-Key": key_echoes(), "Content-Type": st.just("application/json")}
)


# Configs are generated before the server's port is known: its host is written as SERVER and
# replaced with the scripted server's host:port when the file is written.
SERVER = "scripted.invalid"
URL = f"http://{SERVER}/v1"


def endpoints(url: str) -> st.SearchStrategy[str]:
    """The scripted server, plain or with a key as the password in the URL."""
    return st.sampled_from([url, url.replace("http://", f"http://user:{OPENAI_KEY}@")])


@st.composite
def good_entries(draw: st.DrawFn, url: str) -> dict[str, Any]:
    """A models-config entry Assay should run: its endpoint is always the scripted server,
    so nothing here may reach a real provider with the test's keys."""
    entry: dict[str, Any] = {
        "spec": draw(st.sampled_from(["compat/m", "compat/m2", *HOSTED])),
        "base_url": draw(endpoints(url)),
    }
    options: dict[str, st.SearchStrategy[Any]] = {
        "label": LABEL_NAMES,
        "api_key_env": st.sampled_from(["OPENAI_COMPAT_API_KEY", "OPENAI_API_KEY"]),
        "params": st.fixed_dictionaries(
            {}, optional={"extra_headers": HEADERS, "temperature": st.floats(0, 2)}
        ),
        "price": st.fixed_dictionaries(
            {"input_per_mtok": st.floats(0, 10), "output_per_mtok": st.floats(0, 10)}
        ),
    }
    return entry | {name: draw(s) for name, s in options.items() if draw(st.booleans())}


@st.composite
def wild_entries(draw: st.DrawFn, url: str) -> dict[str, Any]:
    """An entry with wrong specs, URLs, key variables (a key pasted as one), params, prices
    and keys. A hosted spec still points at the scripted server."""
    no_slash = hostile_text().filter(lambda s: "/" not in s)
    spec = draw(st.one_of(st.sampled_from(["compat/m", *HOSTED, "nope/x", "compat"]), no_slash))
    entry: dict[str, Any] = {"spec": spec}
    if spec in HOSTED:
        entry["base_url"] = draw(endpoints(url))
    elif draw(st.booleans()):
        entry["base_url"] = draw(st.one_of(endpoints(url), st.sampled_from(["not a url", ""])))
    options: dict[str, st.SearchStrategy[Any]] = {
        "label": json_values(LABEL_NAMES),
        "api_key_env": st.sampled_from([OPENAI_KEY, "ASSAY_PROP_UNSET_KEY", "a b", ""]),
        "params": st.one_of(
            st.fixed_dictionaries({"max_tokens": st.integers(-5, 5), "temperature": LABELS}),
            json_values(hostile_text()),
        ),
        "price": st.one_of(
            st.fixed_dictionaries({"input_per_mtok": st.floats(-1, 1), "output": st.none()}),
            json_values(hostile_text()),
        ),
        "extra": hostile_text(),
    }
    return entry | {name: draw(s) for name, s in options.items() if draw(st.booleans())}


@st.composite
def models_configs(draw: st.DrawFn) -> tuple[str, bytes]:
    """A models config's name and bytes: YAML or JSON, valid or not."""
    entry = st.one_of(good_entries(URL), good_entries(URL), wild_entries(URL))
    entries = draw(st.lists(entry, min_size=1, max_size=2))
    document = draw(
        st.one_of(
            st.just({"models": entries}),
            st.just({"models": entries}),
            st.just(entries),
            st.just({"models": []}),
            json_values(hostile_text()),
        )
    )
    form = draw(st.sampled_from(["yaml", "json", "yaml", "json", "broken"]))
    if form == "broken":  # not YAML or JSON at all
        return "models.yaml", encoded(draw(st.sampled_from(["models: [", "{", "\t- x"])))
    if form == "json":
        return "models.json", encoded(json.dumps(document))
    return "models.yaml", encoded(yaml.safe_dump(document))


# --------------------------------------------------------------------------- checks


@dataclass
class Example:
    """One example's folder: its inputs, a fresh run store, and what the commands wrote."""

    root: Path
    procs: list[subprocess.CompletedProcess[str]] = field(default_factory=list)
    outputs: list[Path] = field(default_factory=list)

    @property
    def store(self) -> Path:
        return self.root / "store"

    def write(self, name: str, data: bytes) -> Path:
        path = self.root / name
        path.write_bytes(data)
        return path

    def output(self, name: str) -> Path:
        self.outputs.append(self.root / name)
        return self.root / name

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        proc = assay(*args, env={**KEYS, "ASSAY_STORE": str(self.store)}, timeout=60)
        self.procs.append(proc)
        check_outcome(proc)
        return proc


@contextmanager
def new_example() -> Iterator[Example]:
    with tempfile.TemporaryDirectory(prefix="assay-prop-") as folder:
        yield Example(Path(folder))


def check_outcome(proc: subprocess.CompletedProcess[str]) -> None:
    """Exit 0, or one ``error:`` line that is not the catch-all; never a traceback or ESC."""
    shown = proc.stdout + proc.stderr
    assert "Traceback" not in shown, shown[-3000:]
    assert "\x1b" not in shown and "\x9b" not in shown, shown[-3000:]
    if proc.returncode == 0:
        return
    lines = proc.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], proc.stderr[-3000:]
    assert not errors[0].startswith("error: Unexpected"), errors[0]


def ended_runs(ex: Example, run: subprocess.CompletedProcess[str]) -> list[str]:
    """The store's runs, each ended: ``complete`` exactly when the run command exited 0."""
    if not RunStore.exists(ex.store):
        return []
    store = RunStore.open(ex.store, create=False)
    try:
        runs = store.list_runs(limit=1000)
    finally:
        store.close()
    for record in runs:
        assert record.status in ("complete", "failed"), (record.id, record.status)
        assert (record.status == "complete") == (run.returncode == 0), (record.status, run)
    return [record.id for record in runs]


def check_no_key(ex: Example) -> None:
    """No run of ``WINDOW`` characters of a key in any output or any file of the store."""
    blobs = [encoded(p.stdout + p.stderr) for p in ex.procs]
    blobs += [p.read_bytes() for p in ex.outputs if p.is_file()]
    if ex.store.exists():
        blobs += [p.read_bytes() for p in sorted(ex.store.rglob("*")) if p.is_file()]
    for key in KEYS.values():
        for start in range(len(key) - WINDOW + 1):
            window = key[start : start + WINDOW].encode()
            assert not any(window in blob for blob in blobs), (key, window)


def run_show_report(ex: Example, *run_args: str) -> None:
    """``run`` (``-o`` results), then ``show --samples`` and ``report`` of every run it made."""
    run = ex.cli("run", *run_args, "-o", str(ex.output("results.json")))
    # The statistics (--hypothesis-show-statistics) show how many examples got to a run.
    event(f"run exit {run.returncode}")
    for run_id in ended_runs(ex, run):
        ex.cli("show", run_id, "--samples")
        report = ex.cli("report", run_id, "-o", str(ex.output("report.html")))
        assert report.returncode != 0 or ex.outputs[-1].is_file()
    check_no_key(ex)


# --------------------------------------------------------------------------- properties


@pytest.fixture(scope="module", autouse=True)
def no_backoff() -> Iterator[None]:
    """Retries go at once: a fault retried with backoff would cost seconds per example, and
    when a retry happens does not change what these properties check."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(RetryPolicy, "delay_s", lambda self, error, attempt, rng: 0.0)
        yield


@pytest.fixture(scope="module")
def srv() -> Iterator[ScriptedServer]:
    with ScriptedServer(Script([reply("positive")])) as server:
        yield server


@PROPERTY
@given(data=datasets(), prompt=prompts())
def test_inspect_any_dataset_and_prompt(data: tuple[str, bytes], prompt: bytes) -> None:
    with new_example() as ex:
        ex.cli("inspect", str(ex.write(*data)), str(ex.write("prompt.md", prompt)))
        ex.cli("inspect", str(ex.write(*data)), "--json")
        check_no_key(ex)


@settings(PROPERTY, max_examples=40)
@given(
    data=st.one_of(good_datasets(), datasets()),  # most get as far as a run
    prompt=prompts(),
    answer=st.one_of(replies(), actions()),
    metric=st.sampled_from(METRICS),
    as_json=st.booleans(),
)
def test_run_and_report_any_dataset_and_prompt(
    srv: ScriptedServer,
    data: tuple[str, bytes],
    prompt: bytes,
    answer: Action,
    metric: str,
    as_json: bool,
) -> None:
    srv.handler = Script([answer])
    with new_example() as ex:
        data_file, prompt_file = ex.write(*data), ex.write("prompt.md", prompt)
        flags = ["--json"] if as_json else []
        run_show_report(ex, str(data_file), str(prompt_file), "-m", "compat/m",
                        "--base-url", srv.base_url, "--metric", metric, *flags)  # fmt: skip


@PROPERTY
# Found by this property: a reply echoing a key reached cache.sqlite in the store's folder.
@example(script=[reply(f"my key is {OPENAI_KEY}")], metric="exact", as_json=False)
@given(
    script=st.lists(actions(), min_size=1, max_size=4),
    metric=st.sampled_from(METRICS),
    as_json=st.booleans(),
)
def test_run_and_report_any_replies(
    srv: ScriptedServer, script: list[Action], metric: str, as_json: bool
) -> None:
    srv.handler = Script(script)
    with new_example() as ex:
        data_file = ex.write("data.jsonl", encoded("".join(json.dumps(r) + "\n" for r in ROWS)))
        prompt_file = ex.write("prompt.md", encoded(PROMPT))
        flags = ["--json"] if as_json else []
        run_show_report(ex, str(data_file), str(prompt_file), "-m", "compat/m",
                        "--base-url", srv.base_url, "--metric", metric, *flags)  # fmt: skip


def served(body: bytes, srv: ScriptedServer) -> bytes:
    """``body`` with the SERVER placeholder pointing at ``srv``."""
    return body.replace(SERVER.encode(), srv.base_url.split("/")[2].encode())


def labelled(label: str) -> tuple[str, bytes]:
    return "models.yaml", encoded(
        f"models:\n- {{spec: compat/m, base_url: '{URL}', label: {label}}}\n"
    )


@PROPERTY
# Found by this property: a label with a lone surrogate was "Unexpected …" when the run was
# saved, and one with ESC reached the terminal raw in the plan and the progress bar.
@example(config=labelled('"\\uD800"'))
@example(config=labelled('"\\e[2J"'))
@given(config=models_configs())
def test_run_and_report_any_models_config(srv: ScriptedServer, config: tuple[str, bytes]) -> None:
    srv.handler = Script([reply("positive")])
    name, body = config
    with new_example() as ex:
        config_file = ex.write(name, served(body, srv))
        data_file = ex.write("data.jsonl", encoded("".join(json.dumps(r) + "\n" for r in ROWS)))
        prompt_file = ex.write("prompt.md", encoded(PROMPT))
        run_show_report(ex, str(data_file), str(prompt_file), "--config", str(config_file),
                        "--metric", "label")  # fmt: skip


# --------------------------------------------------------------------------- known findings


@pytest.mark.xfail(
    strict=True,
    reason="a row id holding a key is stored as-is in the sample_id columns of results, "
    "scores and samples (only the JSON bodies are redacted); redacting it needs a stable "
    "replacement id where assay.data.datasets reads ids",
)
def test_a_key_in_a_row_id_never_reaches_the_store(srv: ScriptedServer) -> None:
    srv.handler = Script([reply("positive")])
    with new_example() as ex:
        row = {"text": "a fine film", "label": "positive", "id": OPENAI_KEY}
        data_file = ex.write("data.jsonl", encoded(json.dumps(row) + "\n"))
        prompt_file = ex.write("prompt.md", encoded(PROMPT))
        run_show_report(ex, str(data_file), str(prompt_file), "-m", "compat/m",
                        "--base-url", srv.base_url, "--metric", "label")  # fmt: skip


def test_credentials_in_a_base_url_are_refused_before_any_call(srv: ScriptedServer) -> None:
    srv.handler = Script([reply("positive")])
    with new_example() as ex:
        data_file = ex.write("data.jsonl", encoded(json.dumps(ROWS[0]) + "\n"))
        url = srv.base_url.replace("http://", "http://user:url-pass-PROP-8d6b4f2a@")
        before = srv.count
        run = ex.cli("run", str(data_file), str(ex.write("prompt.md", encoded(PROMPT))),
                     "-m", "compat/m", "--base-url", url, "--metric", "label")  # fmt: skip
        assert run.returncode == 2 and srv.count == before
        assert "holds credentials" in run.stderr and "url-pass-PROP" not in run.stderr


@pytest.mark.xfail(
    strict=True,
    reason="a model label holding a key is stored as-is as the variant of results and scores "
    "(only the JSON bodies are redacted); a label is an identifier, like a row id",
)
def test_a_key_as_a_model_label_never_reaches_the_store(srv: ScriptedServer) -> None:
    srv.handler = Script([reply("positive")])
    with new_example() as ex:
        config_file = ex.write("models.yaml", served(labelled(OPENAI_KEY)[1], srv))
        data_file = ex.write("data.jsonl", encoded(json.dumps(ROWS[0]) + "\n"))
        prompt_file = ex.write("prompt.md", encoded(PROMPT))
        run_show_report(ex, str(data_file), str(prompt_file), "--config", str(config_file),
                        "--metric", "label")  # fmt: skip
