from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from assay.data import Dataset, FieldMapping, demo_names, demo_path, load_dataset
from assay.errors import DataError, UserInputError


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def jsonl(*rows: Any) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def error_of(path: Path, mapping: FieldMapping | None = None) -> DataError:
    with pytest.raises(DataError) as info:
        load_dataset(path, mapping)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    return info.value


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


# ---------------------------------------------------------------- messages format


def test_messages_final_assistant_turn_is_the_reference(tmp_path: Path) -> None:
    rows = [
        {"messages": [{"role": "system", "content": "Be brief."}, user("2+2?")]},
        {"messages": [user("Capital of France?"), {"role": "assistant", "content": "Paris"}]},
    ]
    ds = load_dataset(write(tmp_path, "d.jsonl", jsonl(*rows)))
    assert ds.format == "messages"
    first, second = ds.samples
    assert [m.role for m in first.messages] == ["system", "user"]
    assert first.reference is None
    assert [m.role for m in second.messages] == ["user"]
    assert second.reference == "Paris"
    assert second.fields["input"] == "Capital of France?"
    assert (first.id, second.id, first.line, second.line) == ("1", "2", 1, 2)
    assert ds.n_with_reference == 1
    assert ds.has_reference  # some rows have one: a reference metric leaves the rest unscored


def test_openai_evals_input_and_ideal(tmp_path: Path) -> None:
    rows = [
        {"input": [user("Spell cat")], "ideal": "c-a-t", "id": "a"},
        {"input": [user("Say 1")], "ideal": 1, "id": "b"},
        {"input": [user("True?")], "ideal": ["true"], "id": "c"},
    ]
    ds = load_dataset(write(tmp_path, "evals.jsonl", jsonl(*rows)))
    assert ds.format == "messages"
    assert [s.reference for s in ds.samples] == ["c-a-t", "1", "true"]
    assert ds.has_reference
    assert [s.id for s in ds.samples] == ["a", "b", "c"]
    assert ds.samples[0].fields["input"] == "Spell cat"


def test_messages_with_ideal_keeps_all_turns(tmp_path: Path) -> None:
    turns = [user("hi"), {"role": "assistant", "content": "hello"}]
    ds = load_dataset(write(tmp_path, "d.jsonl", jsonl({"messages": turns, "ideal": "x"})))
    assert [m.role for m in ds.samples[0].messages] == ["user", "assistant"]
    assert ds.samples[0].reference == "x"


def test_messages_text_parts_and_developer_role(tmp_path: Path) -> None:
    parts = [{"type": "text", "text": "Hello "}, {"type": "text", "text": "world"}]
    row = {
        "messages": [{"role": "developer", "content": "Sys"}, {"role": "user", "content": parts}]
    }
    ds = load_dataset(write(tmp_path, "d.jsonl", jsonl(row)))
    assert [(m.role, m.content) for m in ds.samples[0].messages] == [
        ("system", "Sys"),
        ("user", "Hello world"),
    ]


def test_metadata_and_extra_fields(tmp_path: Path) -> None:
    row = {"messages": [user("q")], "metadata": {"source": "x"}, "topic": "math"}
    sample = load_dataset(write(tmp_path, "d.jsonl", jsonl(row))).samples[0]
    assert sample.metadata == {"source": "x"}
    assert sample.fields == {"topic": "math", "input": "q"}


# ---------------------------------------------------------------- alpaca and sharegpt


def test_alpaca_with_and_without_input_and_output(tmp_path: Path) -> None:
    rows = [
        {"instruction": "Translate to French", "input": "cat", "output": "chat"},
        {"instruction": "Name a colour"},
        {"instruction": "Say hi", "input": ""},
    ]
    ds = load_dataset(write(tmp_path, "a.jsonl", jsonl(*rows)))
    assert ds.format == "alpaca"
    assert ds.samples[0].messages[0].content == "Translate to French\n\ncat"
    assert ds.samples[0].reference == "chat"
    assert ds.samples[1].messages[0].content == "Name a colour"
    assert ds.samples[1].reference is None
    assert ds.samples[2].messages[0].content == "Say hi"
    assert ds.samples[0].fields["instruction"] == "Translate to French"
    assert ds.samples[0].fields["input"] == "cat"
    assert ds.reference_field == "output"


def test_sharegpt_trailing_gpt_turn_is_reference(tmp_path: Path) -> None:
    rows = [
        {
            "conversations": [
                {"from": "system", "value": "Be nice"},
                {"from": "human", "value": "Hi"},
                {"from": "gpt", "value": "Hello!"},
            ]
        },
        {"conversations": [{"from": "human", "value": "Open question"}]},
    ]
    ds = load_dataset(write(tmp_path, "s.jsonl", jsonl(*rows)))
    assert ds.format == "sharegpt"
    assert [m.role for m in ds.samples[0].messages] == ["system", "user"]
    assert ds.samples[0].reference == "Hello!"
    assert ds.samples[1].reference is None
    assert ds.samples[0].fields["input"] == "Hi"


# ---------------------------------------------------------------- flat and csv


def test_flat_auto_detects_input_and_reference(tmp_path: Path) -> None:
    rows = [
        {"id": "r1", "review": "Great film", "label": "positive", "stars": 5},
        {"id": "r2", "review": "Dull", "label": True},
        {"id": "r3", "review": "Fine", "label": None},
    ]
    ds = load_dataset(write(tmp_path, "f.jsonl", jsonl(*rows)))
    assert ds.format == "flat"
    assert (ds.input_field, ds.reference_field) == ("review", "label")
    assert ds.samples[0].messages[0].content == "Great film"
    assert [s.reference for s in ds.samples] == ["positive", "true", None]
    assert ds.samples[0].fields["stars"] == 5
    assert ds.fields == ["id", "review", "label", "stars"]


def test_flat_detection_is_case_insensitive_and_ordered(tmp_path: Path) -> None:
    row = {"Question": "Why?", "Answer": "Because", "text": "other"}
    ds = load_dataset(write(tmp_path, "f.jsonl", jsonl(row)))
    assert ds.input_field == "text"  # "text" ranks before "question"
    assert ds.samples[0].reference == "Because"


def test_label_free_flat_dataset(tmp_path: Path) -> None:
    ds = load_dataset(write(tmp_path, "f.jsonl", jsonl({"text": "a"}, {"text": "b"})))
    assert ds.reference_field is None
    assert [s.reference for s in ds.samples] == [None, None]
    assert ds.n_with_reference == 0
    assert not ds.has_reference


def test_field_mapping_with_nested_dotted_paths(tmp_path: Path) -> None:
    rows = [
        {"meta": {"text": "nested input", "gold": {"answer": 42}}, "text": "decoy"},
        {"meta": {"text": "second", "gold": {"answer": "x"}}, "text": "decoy"},
    ]
    mapping = FieldMapping(input_field="meta.text", output_field="meta.gold.answer")
    ds = load_dataset(write(tmp_path, "n.jsonl", jsonl(*rows)), mapping)
    assert ds.format == "flat"
    assert ds.samples[0].messages[0].content == "nested input"
    assert [s.reference for s in ds.samples] == ["42", "x"]
    assert "meta.gold.answer" in ds.fields


def test_mapping_reads_structured_rows_as_flat(tmp_path: Path) -> None:
    row = {"instruction": "ignored", "body": "use me"}
    ds = load_dataset(write(tmp_path, "m.jsonl", jsonl(row)), FieldMapping(input_field="body"))
    assert ds.format == "flat"
    assert ds.samples[0].messages[0].content == "use me"


def test_csv_with_reference_and_multiline_value(tmp_path: Path) -> None:
    text = 'id,text,label\n\nr1,"Good, really",positive\nr2,"two\nlines",\nr3,bad,negative\n'
    ds = load_dataset(write(tmp_path, "d.csv", text))
    assert ds.format == "csv"
    assert [s.line for s in ds.samples] == [3, 4, 6]
    assert ds.samples[0].messages[0].content == "Good, really"
    assert ds.samples[1].messages[0].content == "two\nlines"
    assert [s.reference for s in ds.samples] == ["positive", None, "negative"]
    assert ds.n_with_reference == 2


def test_csv_label_free_and_tsv(tmp_path: Path) -> None:
    ds = load_dataset(write(tmp_path, "d.csv", "question\nWhat?\nWho?\n"))
    assert [s.reference for s in ds.samples] == [None, None]
    tsv = load_dataset(write(tmp_path, "d.tsv", "prompt\tanswer\nhi, there\tyes\n"))
    assert tsv.samples[0].messages[0].content == "hi, there"
    assert tsv.samples[0].reference == "yes"


def test_csv_with_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", "body,gold\nhello,hi\n")
    ds = load_dataset(path, FieldMapping(input_field="body", output_field="gold"))
    assert (ds.samples[0].messages[0].content, ds.samples[0].reference) == ("hello", "hi")


def test_json_list_of_records_has_real_line_numbers(tmp_path: Path) -> None:
    text = '[\n  {"text": "a", "label": "x"},\n\n  {\n    "text": "b"\n  }\n]\n'
    ds = load_dataset(write(tmp_path, "d.json", text))
    assert ds.format == "flat"
    assert [s.line for s in ds.samples] == [2, 4]
    assert [s.id for s in ds.samples] == ["2", "4"]


def test_jsonl_named_json_is_read_as_jsonl(tmp_path: Path) -> None:
    ds = load_dataset(write(tmp_path, "d.json", jsonl({"text": "a"}, {"text": "b"})))
    assert len(ds) == 2


def test_blank_lines_are_skipped_and_lines_stay_right(tmp_path: Path) -> None:
    text = '\n{"text": "a"}\n   \n\n{"text": "b"}\n\n'
    ds = load_dataset(write(tmp_path, "d.jsonl", text))
    assert [s.line for s in ds.samples] == [2, 5]


def test_unicode_line_separator_inside_json_string(tmp_path: Path) -> None:
    text = json.dumps({"text": "a\u2028b"}, ensure_ascii=False) + '\n{"text": "c"}\n'
    ds = load_dataset(write(tmp_path, "d.jsonl", text))
    assert [s.line for s in ds.samples] == [1, 2]


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    data = b"\xef\xbb\xbf" + jsonl({"text": "caf\u00e9"}).encode()
    path = write(tmp_path, "bom.jsonl", data)
    ds = load_dataset(path)
    assert ds.samples[0].messages[0].content == "caf\u00e9"
    assert ds.content_hash == hashlib.sha256(data).hexdigest()
    csv_ds = load_dataset(write(tmp_path, "bom.csv", b"\xef\xbb\xbftext\nhi\n"))
    assert csv_ds.fields == ["text"]


def test_numeric_ids_and_content_hash(tmp_path: Path) -> None:
    path = write(tmp_path, "d.jsonl", jsonl({"id": 7, "text": "a"}))
    ds = load_dataset(path)
    assert ds.samples[0].id == "7"
    assert ds.content_hash == hashlib.sha256(path.read_bytes()).hexdigest()
    assert isinstance(ds, Dataset)


# ---------------------------------------------------------------- malformed files


def test_invalid_json_line(tmp_path: Path) -> None:
    path = write(tmp_path, "d.jsonl", '{"text": "a"}\n\n{"text": "b",}\n')
    err = error_of(path)
    assert err.line == 3
    assert str(err).startswith(f"{path}:3: invalid JSON")


@pytest.mark.parametrize(
    ("line", "kind"), [("[1, 2]", "a list"), ("42", "a number"), ('"hi"', "a string")]
)
def test_json_line_that_is_not_an_object(tmp_path: Path, line: str, kind: str) -> None:
    path = write(tmp_path, "d.jsonl", '{"text": "a"}\n' + line + "\n")
    err = error_of(path)
    assert err.line == 2
    assert f"expected a JSON object, got {kind}" in str(err)


def test_empty_file(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, "d.jsonl", ""))
    assert err.line is None
    assert "the file is empty" in str(err)


def test_file_with_only_blank_lines(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, "d.jsonl", "\n  \n\n"))
    assert err.line is None
    assert "only blank lines" in str(err)


def test_missing_input_field_in_first_row_lists_fields(tmp_path: Path) -> None:
    path = write(tmp_path, "d.jsonl", "\n" + jsonl({"body": "x", "gold": "y"}))
    err = error_of(path)
    assert err.line == 2
    assert "no input field found among: body, gold" in str(err)
    assert "--input-field" in str(err)


def test_missing_input_field_in_later_row(tmp_path: Path) -> None:
    path = write(tmp_path, "d.jsonl", jsonl({"text": "a"}, {"txt": "b"}))
    err = error_of(path)
    assert err.line == 2
    assert "no input field 'text'" in str(err)
    assert "fields in this row: txt" in str(err)


def test_empty_input_value(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, "d.jsonl", jsonl({"text": "a"}, {"text": "  "})))
    assert err.line == 2
    assert "field 'text' is empty" in str(err)


def test_input_that_is_not_text(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, "d.jsonl", jsonl({"text": {"a": 1}})))
    assert err.line == 1
    assert "field 'text' must be text, got an object" in str(err)


def test_messages_not_a_list(tmp_path: Path) -> None:
    path = write(tmp_path, "d.jsonl", jsonl({"messages": [user("a")]}, {"messages": "hi"}))
    err = error_of(path)
    assert err.line == 2
    assert "'messages' must be a list of turns, got a string" in str(err)


def test_message_missing_role(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, "d.jsonl", jsonl({"messages": [{"content": "a"}]})))
    assert err.line == 1
    assert "message 1 has no 'role'" in str(err)


def test_message_unknown_role(tmp_path: Path) -> None:
    rows = [{"messages": [user("a")]}, {"messages": [user("b"), {"role": "bot", "content": "c"}]}]
    err = error_of(write(tmp_path, "d.jsonl", jsonl(*rows)))
    assert err.line == 2
    assert "message 2 has unknown role 'bot'" in str(err)
    assert "use system, user or assistant" in str(err)


@pytest.mark.parametrize(
    ("content", "kind"), [(5, "a number"), (None, "null"), ([{"type": "image_url"}], "a list")]
)
def test_message_content_not_a_string(tmp_path: Path, content: Any, kind: str) -> None:
    row = {"messages": [{"role": "user", "content": content}]}
    err = error_of(write(tmp_path, "d.jsonl", jsonl(row)))
    assert err.line == 1
    assert f"message 1 content must be a string, got {kind}" in str(err)


def test_message_missing_content(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, "d.jsonl", jsonl({"messages": [{"role": "user"}]})))
    assert "message 1 has no 'content'" in str(err)


def test_empty_messages_list(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, "d.jsonl", "\n\n" + jsonl({"messages": []})))
    assert err.line == 3
    assert "'messages' is empty" in str(err)


def test_messages_with_only_an_assistant_turn(tmp_path: Path) -> None:
    row = {"messages": [{"role": "assistant", "content": "x"}]}
    err = error_of(write(tmp_path, "d.jsonl", jsonl(row)))
    assert err.line == 1
    assert "has no user turn" in str(err)


def test_sharegpt_unknown_from(tmp_path: Path) -> None:
    turns = [{"from": "human", "value": "a"}, {"from": "bard", "value": "b"}]
    err = error_of(write(tmp_path, "d.jsonl", jsonl({"conversations": turns})))
    assert err.line == 1
    assert "turn 2 has unknown 'from' value 'bard'" in str(err)
    assert "use human, gpt or system" in str(err)


def test_sharegpt_value_not_a_string(tmp_path: Path) -> None:
    turns = [{"from": "human", "value": 3}]
    err = error_of(write(tmp_path, "d.jsonl", jsonl({"conversations": turns})))
    assert "turn 1 'value' must be a string, got a number" in str(err)


def test_mapping_field_that_does_not_exist(tmp_path: Path) -> None:
    path = write(tmp_path, "d.jsonl", jsonl({"text": "a", "meta": {"x": 1}}))
    err = error_of(path, FieldMapping(input_field="body"))
    assert err.line == 1
    assert "no input field 'body'" in str(err)
    assert "fields in this row: text, meta, meta.x" in str(err)
    err = error_of(path, FieldMapping(output_field="gold"))
    assert "no reference field 'gold'" in str(err)


def test_mapping_same_field_twice(tmp_path: Path) -> None:
    path = write(tmp_path, "d.jsonl", jsonl({"text": "a"}))
    with pytest.raises(UserInputError, match="both 'text'"):
        load_dataset(path, FieldMapping(input_field="text", output_field="text"))


def test_csv_header_with_empty_column_name(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, "d.csv", "text,,label\na,b,c\n"))
    assert err.line == 1
    assert "column 2 of the header has no name" in str(err)


def test_csv_missing_header_names_the_columns_seen(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, "d.csv", "I loved it,positive\nAwful,negative\n"))
    assert err.line == 1
    assert "no input field found among: I loved it, positive" in str(err)
    assert "is line 1 the header row?" in str(err)


def test_csv_header_only(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, "d.csv", "text,label\n\n"))
    assert err.line == 1
    assert "no rows after the header" in str(err)


def test_csv_ragged_row(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, "d.csv", 'text,label\n"a\nb",x\nc,d,e\n'))
    assert err.line == 4
    assert "row has 3 values but the header (line 1) has 2 columns" in str(err)


def test_csv_short_row(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, "d.csv", "id,text,label\n1,a,x\n2,b\n"))
    assert err.line == 3
    assert "row has 2 values" in str(err)


def test_csv_mapping_column_missing(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", "text,label\na,x\n")
    err = error_of(path, FieldMapping(input_field="body"))
    assert err.line == 1
    assert "no column 'body'" in str(err)
    assert "columns: text, label" in str(err)
    err = error_of(path, FieldMapping(output_field="gold"))
    assert (err.line, err.message.split(": ", 1)[1]) == (1, "no column 'gold'")


def test_csv_duplicate_column(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, "d.csv", "text,text\na,b\n"))
    assert err.line == 1
    assert "duplicate column names: text" in str(err)


def test_non_utf8_bytes_name_the_line(tmp_path: Path) -> None:
    data = b'{"text": "a"}\n{"text": "caf\xe9"}\n'
    err = error_of(write(tmp_path, "d.jsonl", data))
    assert err.line == 2
    assert "not valid UTF-8 (byte 0xe9 at column 14)" in str(err)
    assert "re-encode the file as UTF-8" in str(err)
    err = error_of(write(tmp_path, "d.csv", b"text\nok\nna\xefve\n"))
    assert err.line == 3


def test_utf16_file(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, "d.jsonl", jsonl({"text": "a"}).encode("utf-16")))
    assert "UTF-16" in str(err)


def test_duplicate_ids(tmp_path: Path) -> None:
    rows = [{"id": "a", "text": "x"}, {"id": "b", "text": "y"}, {"id": "a", "text": "z"}]
    err = error_of(write(tmp_path, "d.jsonl", jsonl(*rows)))
    assert err.line == 3
    assert "duplicate id 'a' (first on line 1)" in str(err)


def test_bad_id_type(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, "d.jsonl", jsonl({"id": [1], "text": "x"})))
    assert "'id' must be a string or an integer, got a list" in str(err)


@pytest.mark.parametrize(("value", "kind"), [({"a": 1}, "an object"), (["a", "b"], "a list")])
def test_reference_not_text(tmp_path: Path, value: Any, kind: str) -> None:
    path = write(
        tmp_path, "d.jsonl", jsonl({"text": "a", "label": "x"}, {"text": "b", "label": value})
    )
    err = error_of(path)
    assert err.line == 2
    assert f"reference 'label' must be a string, number or boolean, got {kind}" in str(err)


def test_numbers_and_booleans_become_reference_strings(tmp_path: Path) -> None:
    rows = [
        {"text": "a", "answer": 3},
        {"text": "b", "answer": 2.5},
        {"text": "c", "answer": False},
    ]
    ds = load_dataset(write(tmp_path, "d.jsonl", jsonl(*rows)))
    assert [s.reference for s in ds.samples] == ["3", "2.5", "false"]


def test_metadata_not_an_object(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, "d.jsonl", jsonl({"text": "a", "metadata": "x"})))
    assert "'metadata' must be an object, got a string" in str(err)


def test_file_that_does_not_exist(tmp_path: Path) -> None:
    err = error_of(tmp_path / "nope.jsonl")
    assert err.line is None
    assert "file not found" in str(err)


def test_directory_instead_of_a_file(tmp_path: Path) -> None:
    err = error_of(tmp_path)
    assert err.line is None
    assert "is a directory" in str(err)


def test_unknown_extension(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, "d.txt", "hello\n"))
    assert "unknown dataset format '.txt'" in str(err)
    assert len(load_dataset(write(tmp_path, "e.txt", jsonl({"text": "a"})))) == 1


def test_mixed_structured_formats(tmp_path: Path) -> None:
    rows = [{"messages": [user("a")]}, {"instruction": "b"}]
    err = error_of(write(tmp_path, "d.jsonl", "\n" + jsonl(*rows)))
    assert err.line == 3
    assert "mixed formats: this row is alpaca but line 2 is messages" in str(err)


def test_flat_row_in_a_messages_file(tmp_path: Path) -> None:
    rows = [{"messages": [user("a")]}, {"text": "b"}]
    err = error_of(write(tmp_path, "d.jsonl", jsonl(*rows)))
    assert err.line == 2
    assert "no 'messages' field, but line 1 is in messages format" in str(err)
    assert "fields in this row: text" in str(err)


def test_structured_row_in_a_flat_file(tmp_path: Path) -> None:
    rows = [{"text": "a"}, {"conversations": [{"from": "human", "value": "b"}]}]
    err = error_of(write(tmp_path, "d.jsonl", jsonl(*rows)))
    assert err.line == 2
    assert "mixed formats: this row is sharegpt but line 1 is flat" in str(err)


def test_json_file_errors(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, "d.json", '[\n  {"text": "a"},\n  {"text": }\n]\n'))
    assert err.line == 3
    assert "invalid JSON" in str(err)
    err = error_of(write(tmp_path, "e.json", '{"rows": []}'))
    assert "expected a list of records, got an object" in str(err)
    err = error_of(write(tmp_path, "f.json", '[\n  {"text": "a"},\n  7\n]'))
    assert err.line == 3
    assert "expected a JSON object, got a number" in str(err)
    err = error_of(write(tmp_path, "g.json", "[]"))
    assert "the list of records is empty" in str(err)


# ---------------------------------------------------------------- demo data


def test_demo_sentiment_loads_and_is_balanced() -> None:
    ds = load_dataset(demo_path("sentiment.jsonl"))
    assert ds.format == "flat"
    assert len(ds) == 300
    assert ds.has_reference
    labels = [s.reference for s in ds.samples]
    assert labels.count("positive") == labels.count("negative") == 150
    assert all(s.id.startswith("movie-") for s in ds.samples)
    for sample in ds.samples:
        rating = sample.fields["rating"]
        assert rating >= 1.5 if sample.reference == "positive" else rating <= -1.5


def test_demo_summaries_load_with_references() -> None:
    ds = load_dataset(demo_path("summaries.jsonl"))
    assert len(ds) == 20
    assert ds.has_reference
    assert ds.reference_field == "summary"


def test_demo_files_are_listed_and_unknown_names_fail() -> None:
    assert {"sentiment.jsonl", "NOTICE.md", "summary_rubric.md"} <= set(demo_names())
    with pytest.raises(UserInputError, match="demo files: "):
        demo_path("nope.jsonl")
