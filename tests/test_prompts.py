from __future__ import annotations

import json
from pathlib import Path

import pytest

from assay.data import PromptTemplate, demo_path, load_dataset, load_prompt
from assay.errors import DataError
from assay.records import Message, Sample, sha256_text


def sample(**fields: object) -> Sample:
    return Sample(
        id="1",
        line=1,
        messages=(Message(role="user", content=str(fields.get("text", ""))),),
        fields=dict(fields),
    )


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


# ---------------------------------------------------------------- slots


def test_slots_with_whitespace_and_dots_each_once() -> None:
    tpl = PromptTemplate.from_text("{{a}} {{ b }} {{  meta.text  }} {{a}} {{\tc-d\t}}")
    assert tpl.slots == ["a", "b", "meta.text", "c-d"]
    assert tpl.is_template


@pytest.mark.parametrize(
    "text",
    [
        "Plain system prompt.",
        "Return {} or {x} or { {a} }",
        "Not slots: {{ }} {{1abc}} {{ a b }} {{ a | upper }} {{.a}}",
        'JSON: {"a": {"b": 1}} and {{"k": "v"}}',
        r"Backslashes \{\{x\}\} \n",
    ],
)
def test_text_without_valid_slots_has_none(text: str) -> None:
    assert PromptTemplate.from_text(text).slots == []


def test_hash_is_sha256_of_text() -> None:
    tpl = PromptTemplate.from_text("hi {{x}}")
    assert tpl.hash == sha256_text("hi {{x}}")


# ---------------------------------------------------------------- render


def test_no_slots_is_a_system_prompt_before_the_sample() -> None:
    tpl = PromptTemplate.from_text("Answer in one word.")
    msgs = tpl.render(sample(text="Is water wet?"))
    assert msgs == (
        Message(role="system", content="Answer in one word."),
        Message(role="user", content="Is water wet?"),
    )


def test_prompt_system_comes_before_the_samples_own_system() -> None:
    own = Sample(
        id="1",
        line=1,
        messages=(Message(role="system", content="Row rules"), Message(role="user", content="q")),
    )
    msgs = PromptTemplate.from_text("Prompt rules").render(own)
    assert [(m.role, m.content) for m in msgs] == [
        ("system", "Prompt rules"),
        ("system", "Row rules"),
        ("user", "q"),
    ]


def test_template_fills_slots_and_keeps_other_braces_literal() -> None:
    text = (
        'Review: {{ text }}\nReply as JSON like {"label": "positive", "score": {}}\n'
        "Stars: {{meta.stars}} {0} {{{{ not a slot }}}} \\n {{ missing-looking }"
    )
    msgs = PromptTemplate.from_text(text).render(sample(text="Great!", meta={"stars": 5}))
    assert msgs == (
        Message(
            role="user",
            content=(
                'Review: Great!\nReply as JSON like {"label": "positive", "score": {}}\n'
                "Stars: 5 {0} {{{{ not a slot }}}} \\n {{ missing-looking }"
            ),
        ),
    )


def test_template_keeps_the_samples_system_messages() -> None:
    own = Sample(
        id="1",
        line=1,
        messages=(Message(role="system", content="S"), Message(role="user", content="q")),
        fields={"input": "q"},
    )
    msgs = PromptTemplate.from_text("Q: {{input}}").render(own)
    assert [(m.role, m.content) for m in msgs] == [("system", "S"), ("user", "Q: q")]


def test_fill_writes_non_text_values_as_json() -> None:
    tpl = PromptTemplate.from_text("{{n}}|{{b}}|{{none}}|{{obj}}|{{lst}}")
    out = tpl.fill({"n": 2.5, "b": True, "none": None, "obj": {"é": 1}, "lst": [1, "x"]})
    assert out == '2.5|true||{"é": 1}|[1, "x"]'


def test_slot_value_with_braces_is_not_reexpanded() -> None:
    tpl = PromptTemplate.from_text("{{a}} {{b}}")
    assert tpl.fill({"a": "{{b}}", "b": "B"}) == "{{b}} B"


def test_exact_key_with_a_dot_wins_over_nesting() -> None:
    tpl = PromptTemplate.from_text("{{meta.text}}")
    assert tpl.fill({"meta.text": "flat", "meta": {"text": "nested"}}) == "flat"


def test_render_missing_field_is_a_data_error() -> None:
    tpl = PromptTemplate.from_text("line one\n{{ body }}", path="p.md")
    with pytest.raises(DataError) as info:
        tpl.render(sample(text="x", label="y"))
    assert info.value.line == 2
    assert str(info.value) == (
        "p.md:2: slot {{body}} has no matching field (fields available: text, label)"
    )


# ---------------------------------------------------------------- check_slots


def test_check_slots_names_the_slot_line_and_fields(tmp_path: Path) -> None:
    data = write(tmp_path, "d.jsonl", json.dumps({"text": "a", "meta": {"lang": "en"}}) + "\n")
    prompt = write(tmp_path, "p.md", "Classify.\n\nText: {{text}}\nTopic: {{ topic }}\n")
    tpl = load_prompt(prompt)
    with pytest.raises(DataError) as info:
        tpl.check_slots(load_dataset(data))
    err = info.value
    assert (err.path, err.line) == (str(prompt), 4)
    assert "\n" not in str(err)
    assert f"slot {{{{topic}}}} has no matching field in {data}" in str(err)
    assert "fields available: text, meta, meta.lang" in str(err)


def test_check_slots_passes_with_nested_fields(tmp_path: Path) -> None:
    row = {"doc": {"body": "b"}, "text": "t"}
    data = write(tmp_path, "d.jsonl", json.dumps(row) + "\n")
    PromptTemplate.from_text("{{doc.body}} {{text}}").check_slots(load_dataset(data))


def test_check_slots_reports_a_field_missing_from_some_rows(tmp_path: Path) -> None:
    rows = [{"text": "a", "topic": "x"}, {"text": "b"}, {"text": "c"}]
    data = write(tmp_path, "d.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError) as info:
        PromptTemplate.from_text("{{topic}}").check_slots(load_dataset(data))
    assert f"in {data} line 2 (2 of 3 rows lack it)" in str(info.value)
    assert info.value.path == "<prompt>"


def test_check_slots_refuses_the_reference_field(tmp_path: Path) -> None:
    data = write(tmp_path, "d.jsonl", json.dumps({"text": "a", "label": "pos"}) + "\n")
    with pytest.raises(DataError, match=r"slot \{\{label\}\} is the reference field"):
        PromptTemplate.from_text("{{text}} -> {{label}}").check_slots(load_dataset(data))


def test_system_prompt_needs_no_fields(tmp_path: Path) -> None:
    data = write(tmp_path, "d.jsonl", json.dumps({"text": "a"}) + "\n")
    PromptTemplate.from_text("Be brief. {json: 1}").check_slots(load_dataset(data))


# ---------------------------------------------------------------- load_prompt


def test_load_prompt_strips_surrounding_whitespace_and_bom(tmp_path: Path) -> None:
    path = write(tmp_path, "p.md", b"\xef\xbb\xbf\n  Say hi.\r\nThen stop.\n\n")
    tpl = load_prompt(path)
    assert tpl.text == "Say hi.\nThen stop."
    assert tpl.path == str(path)
    assert tpl.hash == PromptTemplate.from_text("Say hi.\nThen stop.").hash


@pytest.mark.parametrize(
    ("content", "expected"),
    [("", "the prompt file is empty"), ("\n \n", "the prompt file is empty")],
)
def test_empty_prompt(tmp_path: Path, content: str, expected: str) -> None:
    path = write(tmp_path, "p.md", content)
    with pytest.raises(DataError, match=expected):
        load_prompt(path)


def test_missing_prompt_and_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="prompt file not found"):
        load_prompt(tmp_path / "nope.md")
    with pytest.raises(DataError, match="is a directory"):
        load_prompt(tmp_path)


def test_non_utf8_prompt_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "p.md", b"ok\ncaf\xe9\n")
    with pytest.raises(DataError) as info:
        load_prompt(path)
    assert info.value.line == 2
    assert "re-encode the prompt file as UTF-8" in str(info.value)


def test_demo_prompts_render_the_demo_data() -> None:
    data = load_dataset(demo_path("sentiment.jsonl"))
    for name in ("sentiment_prompt.md", "sentiment_prompt_terse.md", "summary_rubric.md"):
        tpl = load_prompt(demo_path(name))
        assert tpl.slots == []
        tpl.check_slots(data)
        msgs = tpl.render(data.samples[0])
        assert [m.role for m in msgs] == ["system", "user"]
