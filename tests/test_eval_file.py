"""The eval as a file (``assay.yaml``): schema, ``assay run`` reading it, flags over it, sweeps,
inline prompts, one-line errors at file:line, and ``assay init``."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import jsonschema
import pytest
import yaml

from assay.benchmark.eval_file import json_schema_text, run_config
from assay.benchmark.eval_load import load_eval
from assay.cli.eval_flags import file_overrides
from assay.data import demo_path
from assay.engine.engine import EngineConfig
from assay.jobs import BenchmarkJob, Session
from assay.store.runstore import RunStore
from assay.testing import ScriptedServer
from tests.run_helpers import LabelZoo, assay

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "schemas" / "assay.schema.json"
EXAMPLE = ROOT / "examples" / "ci" / "assay.yaml"


def project(tmp_path: Path) -> Path:
    """A folder holding a dataset and a prompt, as a user's repository would."""
    folder = tmp_path / "repo"
    (folder / "data").mkdir(parents=True)
    shutil.copy(demo_path("sentiment.jsonl"), folder / "data" / "reviews.jsonl")
    shutil.copy(demo_path("sentiment_prompt.md"), folder / "prompt.md")
    return folder


def write_eval(
    folder: Path, srv: ScriptedServer, extra: str = "", name: str = "assay.yaml"
) -> Path:
    path = folder / name
    path.write_text(
        f"""\
data: data/reviews.jsonl
prompts: [prompt.md]
models:
  - {{spec: compat/acc90, label: careful, base_url: "{srv.base_url}"}}
  - {{spec: compat/acc60, label: quick, base_url: "{srv.base_url}"}}
metrics: [label]
limit: 8
{extra}""",
        encoding="utf-8",
    )
    return path


def results(out: Path) -> dict[str, object]:
    data = json.loads(out.read_text())
    assert isinstance(data, dict)
    return data


def variants(report: dict[str, object]) -> dict[str, dict[str, object]]:
    listed = report["variants"]
    assert isinstance(listed, list)
    return {v["variant"]: v for v in listed}


def n_scored(variant: dict[str, object]) -> int:
    score = variant["score"]
    assert isinstance(score, dict)
    return int(score["n_scored"])


# --------------------------------------------------------------------------- the schema


def test_the_committed_schema_is_the_one_the_model_generates() -> None:
    assert SCHEMA.read_text(encoding="utf-8") == json_schema_text(), (
        "regenerate it: .venv/bin/python -m assay.benchmark.eval_file > schemas/assay.schema.json"
    )


def test_the_example_and_an_init_file_validate_against_the_schema(tmp_path: Path) -> None:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.validate(yaml.safe_load(EXAMPLE.read_text()), schema)
    folder = project(tmp_path)
    assert assay("init", "data/reviews.jsonl", "prompt.md", cwd=folder).returncode == 0
    written = yaml.safe_load((folder / "assay.yaml").read_text())
    jsonschema.validate(written, schema)
    with pytest.raises(jsonschema.ValidationError):  # the schema refuses what the loader does
        jsonschema.validate({**written, "modles": []}, schema)


# --------------------------------------------------------------------------- assay run


def test_run_with_no_arguments_reads_assay_yaml(tmp_path: Path) -> None:
    folder = project(tmp_path)
    with ScriptedServer(LabelZoo()) as srv:
        write_eval(folder, srv)
        proc = assay("run", "-o", "out.json", cwd=folder)
        models = Counter(r.model for r in srv.requests)
    assert proc.returncode == 0, proc.stderr
    assert models == {"acc90": 8, "acc60": 8}  # limit: 8, both models of the file
    report = results(folder / "out.json")
    assert report["primary_metric"] == "label"
    assert {k: n_scored(v) for k, v in variants(report).items()} == {"careful": 8, "quick": 8}


def test_eval_paths_are_read_from_the_file_folder(tmp_path: Path) -> None:
    folder = project(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with ScriptedServer(LabelZoo()) as srv:
        path = write_eval(folder, srv, name="evals.yaml")
        proc = assay("run", "--eval", str(path), "--json", cwd=elsewhere)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["dataset"]["path"] == str(folder / "data" / "reviews.jsonl")


def test_flags_given_override_the_file_and_defaults_do_not(tmp_path: Path) -> None:
    folder = project(tmp_path)
    with ScriptedServer(LabelZoo()) as srv:
        write_eval(folder, srv, "generation: {max_tokens: 33, temperature: 0.4}\n")
        # --limit and --temperature are typed; --max-tokens is left at its default (256)
        proc = assay("run", "--limit", "3", "--temperature", "0", cwd=folder)
        bodies = [r.body for r in srv.requests]
    assert proc.returncode == 0, proc.stderr
    assert len(bodies) == 6  # 3 rows x 2 models: the flag's limit, not the file's 8
    assert {b["max_tokens"] for b in bodies} == {33}  # the file's value, not the flag default
    assert {b["temperature"] for b in bodies} == {0}  # the flag's value over the file's 0.4


def test_model_and_data_flags_replace_the_file_s(tmp_path: Path) -> None:
    folder = project(tmp_path)
    other = tmp_path / "few.jsonl"
    other.write_text(
        "".join(json.dumps({"text": f"review {i}", "label": "positive"}) + "\n" for i in range(4))
    )
    with ScriptedServer(LabelZoo()) as srv:
        write_eval(folder, srv)
        flags = ("-m", "compat/solo", "--base-url", srv.base_url)
        proc = assay("run", "--eval", "assay.yaml", str(other), *flags, cwd=folder)
        models = Counter(r.model for r in srv.requests)
        # DATA without --eval: ./assay.yaml is not read, so PROMPT is needed too
        alone = assay("run", str(other), *flags, cwd=folder)
    assert proc.returncode == 0, proc.stderr
    assert models == {"solo": 4}  # the flag's model on the flag's data (the file's prompt)
    assert alone.returncode == 2 and "needs DATA and PROMPT" in alone.stderr


def test_a_sweep_makes_a_labelled_variant_per_combination(tmp_path: Path) -> None:
    folder = project(tmp_path)
    sweep = "sweeps: {temperature: [0.0, 0.7], max_tokens: [16, 64]}\nlimit: 3\n"
    with ScriptedServer(LabelZoo()) as srv:
        path = write_eval(folder, srv, sweep)
        path.write_text(path.read_text().replace("limit: 8\n", ""))
        proc = assay("run", "--json", cwd=folder)
        sent = Counter((r.model, r.body["temperature"], r.body["max_tokens"]) for r in srv.requests)
    assert proc.returncode == 0, proc.stderr
    labels = set(variants(json.loads(proc.stdout)))
    assert labels == {
        f"{m} t={t} max={n}" for m in ("careful", "quick") for t in ("0", "0.7") for n in (16, 64)
    }
    # each combination's own settings reach the server, 3 rows each
    assert sent == {(m, t, n): 3 for m in ("acc90", "acc60") for t in (0.0, 0.7) for n in (16, 64)}


def test_a_sweep_settings_are_estimated_and_budgeted_as_sent(tmp_path: Path) -> None:
    """The estimate and each request (which the budget bounds) carry the variant's own
    max_tokens, not the run's."""
    folder = project(tmp_path)
    with ScriptedServer(LabelZoo()) as srv:
        path = write_eval(folder, srv, "sweeps: {max_tokens: [10, 1000]}\n")
    config = run_config(load_eval(path).spec, path, EngineConfig())
    job = BenchmarkJob.prepare(Session.open(tmp_path / "store"), config)
    estimates = {e.label: e.max_output_tokens for e in job.estimate()}
    assert estimates == {"careful max=10": 80, "careful max=1000": 8000,
                         "quick max=10": 80, "quick max=1000": 8000}  # fmt: skip
    sample = next(job.plan.iter_samples())
    sent = {v.key: job.plan.request(v, sample, 0).params.max_tokens for v in job.plan.variants}
    assert sent == {"careful max=10": 10, "careful max=1000": 1000,
                    "quick max=10": 10, "quick max=1000": 1000}  # fmt: skip


def test_inline_prompts_are_variants_named_by_the_file(tmp_path: Path) -> None:
    folder = project(tmp_path)
    with ScriptedServer(LabelZoo()) as srv:
        path = write_eval(folder, srv)
        text = path.read_text().replace(
            "prompts: [prompt.md]",
            'prompts:\n  - prompt.md\n  - {name: terse, text: "Sentiment? One word."}',
        )
        path.write_text(text.replace("  - {spec: compat/acc60", "  # - {spec: compat/acc60"))
        proc = assay("run", "--json", cwd=folder)
        systems = Counter(r.messages[0]["content"] for r in srv.requests)
    assert proc.returncode == 0, proc.stderr
    assert set(variants(json.loads(proc.stdout))) == {"prompt", "terse"}
    assert systems["Sentiment? One word."] == 8


def test_every_key_reaches_the_run_config(tmp_path: Path) -> None:
    folder = project(tmp_path)
    (folder / "rubric.md").write_text("Score 1-5: is the label right?")
    path = folder / "assay.yaml"
    path.write_text(
        """\
data: {path: data/reviews.jsonl, input_field: text, output_field: label}
prompts: [prompt.md]
models: [{spec: compat/m, label: m, base_url: "http://127.0.0.1:9/v1", params: {top_k: 3}}]
metrics: [label, "json-schema:schema.json"]
judge: {model: [compat/j1, compat/j2], rubric: rubric.md, base_url: "http://127.0.0.1:9/v1",
        dimensions: [accuracy], repeats: 2, max_tokens: 300}
margin: 0.05
baseline: m
adaptive: true
budget: {max_cost: 1.5, max_calls: 99}
generation: {max_tokens: 40, temperature: 0.3, top_p: 0.9}
repeats: 2
limit: 7
seed: 5
concurrency: 3
gate: {fail_under: 0.4, fail_if_worse_than: some-run-id}
"""
    )
    loaded = load_eval(path)
    config = run_config(loaded.spec, path, EngineConfig(timeout_s=9))
    assert config.data == str(folder / "data/reviews.jsonl")
    assert config.prompts == [str(folder / "prompt.md")]
    assert (config.mapping.input_field, config.mapping.output_field) == ("text", "label")
    assert config.models[0].params == {"top_k": 3}
    assert config.scoring.metrics == ["label", f"json-schema:{folder / 'schema.json'}"]
    judge = config.scoring.judge
    assert judge is not None and [m.model for m in judge.models] == ["j1", "j2"]
    assert judge.rubric == "Score 1-5: is the label right?"
    assert (judge.dimensions, judge.repeats, judge.max_tokens) == (["accuracy"], 2, 300)
    d = config.decision
    assert (d.margin, d.baseline, d.adaptive) == (0.05, "m", True)
    assert config.engine.budget.max_cost_usd == 1.5 and config.engine.budget.max_calls == 99
    assert (config.engine.concurrency, config.engine.timeout_s) == (3, 9)
    p = config.params
    assert (p.max_tokens, p.temperature, p.top_p, p.seed) == (40, 0.3, 0.9, 5)
    assert (config.repeats, config.limit, config.seed) == (2, 7, 5)
    assert loaded.gate().fail_under == 0.4 and loaded.gate().fail_if_worse_than == "some-run-id"


def test_an_inline_rubric_and_judge_flags_over_the_file(tmp_path: Path) -> None:
    folder = project(tmp_path)
    rubric = tmp_path / "cli_rubric.md"
    rubric.write_text("The flag's rubric.")
    path = folder / "assay.yaml"
    path.write_text(
        "data: data/reviews.jsonl\nprompts: [prompt.md]\nmodels: [{spec: local/smollm2}]\n"
        "judge: {model: compat/j, base_url: 'http://127.0.0.1:9/v1', rubric_text: 'Inline.'}\n"
    )
    judge = run_config(load_eval(path).spec, path, EngineConfig()).scoring.judge
    assert judge is not None and judge.rubric == "Inline." and judge.rubric_path is None
    values = {"judge_criteria": rubric, "judge_repeats": 3, "judge": "compat/a,compat/b"}
    given = {"judge_criteria", "judge_repeats", "judge"}
    overridden = load_eval(path, file_overrides(values, given)).spec
    judge = run_config(overridden, path, EngineConfig()).scoring.judge
    assert judge is not None and judge.rubric == "The flag's rubric."
    assert judge.repeats == 3 and [m.model for m in judge.models] == ["a", "b"]


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("data: x.jsonl\nprompts: [p.md]\nmodle: 3\n", "assay.yaml:3: modle: unknown key"),
        (
            "data: x.jsonl\nprompts: [p.md]\nmodels:\n  - spec: local/smollm2\n    lable: x\n",
            "assay.yaml:5: models[0].lable: unknown key (allowed here: spec, label,",
        ),
        (
            "data: x.jsonl\nprompts: [p.md]\ngeneration:\n  max_tokens: 0\n",
            "assay.yaml:4: generation.max_tokens: Input should be greater than or equal to 1",
        ),
        ("data: {path: 3}\nprompts: [p.md]\n", "assay.yaml:1: data.path: Input should be a"),
        ("prompts: [p.md]\n", "assay.yaml: data: missing"),
        ("data: x\nprompts: [p.md\n", "assay.yaml:3: not valid YAML"),
        ("data: x\ndata: y\nprompts: [p.md]\n", "assay.yaml:2: 'data' is given twice"),
        ("- data\n", "assay.yaml: an eval file is a mapping of keys"),
        (
            "data: x\nprompts:\n  - {text: '  '}\n",
            "assay.yaml:3: prompts[0].text: the prompt text is blank",
        ),
        (
            "data: x\nprompts: [p.md]\nsweeps: {temperature: [0.1, 0.1]}\n",
            "assay.yaml:3: sweeps.temperature: a value is listed twice",
        ),
        (
            "data: x\nprompts: [p.md]\njudge:\n  model: a/b\n",
            "assay.yaml:3: judge: give the judge one rubric",
        ),
        (
            "data: x\nprompts: [p.md]\ngate: {fail_under: 2}\n",
            "assay.yaml:3: gate.fail_under: Input should be less than or equal to 1",
        ),
    ],
)
def test_a_bad_file_is_one_line_at_file_and_line(tmp_path: Path, body: str, expected: str) -> None:
    (tmp_path / "assay.yaml").write_text(body)
    proc = assay("run", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"error: {expected}"), proc.stderr


def test_a_judge_flag_over_a_file_without_a_judge_names_what_is_missing(tmp_path: Path) -> None:
    folder = project(tmp_path)
    with ScriptedServer(LabelZoo()) as srv:
        write_eval(folder, srv, "gate: {fail_under: 0.5}\n")
        proc = assay("run", "--judge-repeats", "2", cwd=folder)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: assay.yaml: judge.model: missing"), proc.stderr


def test_no_data_and_no_eval_file_says_how_to_write_one(tmp_path: Path) -> None:
    proc = assay("run", cwd=tmp_path)
    assert proc.returncode == 2
    assert "./assay.yaml or --eval FILE" in proc.stderr and "assay init" in proc.stderr
    missing = assay("run", "--eval", "nope.yaml", cwd=tmp_path)
    assert missing.returncode == 2 and "No eval file nope.yaml" in missing.stderr


def test_eval_with_resume_or_demo_is_refused(tmp_path: Path) -> None:
    (tmp_path / "assay.yaml").write_text("data: x\nprompts: [p]\n")
    demo = assay("run", "--demo", "--eval", "assay.yaml", cwd=tmp_path)
    resume = assay("run", "--resume", "abc", "--eval", "assay.yaml", cwd=tmp_path)
    assert demo.returncode == 2 and "drop --eval or --demo" in demo.stderr
    assert resume.returncode == 2 and "drop --eval and --demo" in resume.stderr


# --------------------------------------------------------------------------- assay init


def test_init_writes_a_commented_file_that_runs(tmp_path: Path) -> None:
    folder = project(tmp_path)
    proc = assay("init", "data/reviews.jsonl", "prompt.md", cwd=folder)
    assert proc.returncode == 0, proc.stderr
    text = (folder / "assay.yaml").read_text()
    assert "metrics: [label]  # the references are labels: negative, positive" in text
    assert "# judge:" in text and text.count("\n#") > 10  # commented keys to fill in
    with ScriptedServer(LabelZoo()) as srv:
        run = assay(
            "run", "-m", "compat/acc90", "--base-url", srv.base_url, "--limit", "4", cwd=folder
        )
        assert srv.count == 4
    assert run.returncode == 0, run.stderr


def test_init_on_free_text_references_leaves_the_metric_to_the_user(tmp_path: Path) -> None:
    out = tmp_path / "evals" / "summaries.yaml"
    out.parent.mkdir()
    proc = assay(
        "init", str(demo_path("summaries.jsonl")), str(demo_path("sentiment_prompt.md")),
        "-o", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"--eval {out}" in proc.stdout
    spec = yaml.safe_load(out.read_text())
    assert "metrics" not in spec and "judge" not in spec  # both left commented out
    assert "# judge:" in out.read_text()
    # paths are written relative to the file's folder, and read back from it
    assert (out.parent / spec["data"]).resolve() == demo_path("summaries.jsonl").resolve()
    run = assay("run", "--eval", str(out))
    assert run.returncode == 2 and "Nothing to score with" in run.stderr


def test_init_keeps_the_field_flags_and_refuses_to_overwrite(tmp_path: Path) -> None:
    folder = project(tmp_path)
    args = ("init", "data/reviews.jsonl", "prompt.md", "--output-field", "label")
    assert assay(*args, cwd=folder).returncode == 0
    first = (folder / "assay.yaml").read_text()
    assert "data: {path: data/reviews.jsonl, output_field: label}" in first
    again = assay(*args, cwd=folder)
    assert again.returncode == 2 and "assay.yaml exists" in again.stderr
    assert (folder / "assay.yaml").read_text() == first


def test_init_checks_the_prompt_against_the_data(tmp_path: Path) -> None:
    folder = project(tmp_path)
    (folder / "slots.md").write_text("Review: {{no_such_field}}")
    proc = assay("init", "data/reviews.jsonl", "slots.md", cwd=folder)
    assert proc.returncode == 2 and "no_such_field" in proc.stderr
    assert not (folder / "assay.yaml").exists()


@pytest.mark.model
def test_the_ci_example_passes_its_gate_on_the_embedded_model(tmp_path: Path) -> None:
    from tests.run_helpers import assay_process

    junit = tmp_path / "junit.xml"
    proc = assay_process(
        "run", "--eval", str(EXAMPLE), "--store", str(tmp_path / "s"), "--junit", str(junit),
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Gate passed" in proc.stdout and 'failures="0"' in junit.read_text()
    store = RunStore.open(tmp_path / "s", create=False)
    assert len(store.list_runs()) == 1


@pytest.mark.parametrize(
    "value", ["x.jsonl", "true", "null", "1.5", ".inf", "on", "a: b", "#x", "@x", 'say "hi"']
)
def test_init_writes_values_yaml_reads_back_unchanged(value: str) -> None:
    from assay.benchmark.eval_init import scalar

    assert yaml.safe_load(f"key: {scalar(value)}") == {"key": value}
