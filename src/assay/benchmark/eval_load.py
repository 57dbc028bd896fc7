"""Reading ``assay.yaml``: one error line per problem, at ``file:line`` where the file has one.

Flags given on the command line arrive as ``overrides``, written in the file's own keys
(``{"generation": {"max_tokens": 64}}``); each replaces that key of the file, and a key the
file does not have is added. So a flag always wins over the file, and the file over the
built-in defaults.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from assay.analysis.gate import GateConfig
from assay.benchmark.eval_file import EvalFile
from assay.errors import UserInputError
from assay.files import NotRegularFileError, open_regular

EVAL_FILE = "assay.yaml"  # what `assay run` reads when given no data
MAX_EVAL_BYTES = 1 << 20
SCHEMA_HINT = "see schemas/assay.schema.json"

Key = str | int


@dataclass(frozen=True)
class LoadedEval:
    path: Path
    spec: EvalFile

    def gate(self) -> GateConfig:
        """The file's gate, its baseline results file (if it names one) found from the file's
        folder; a run id is left as it is."""
        gate = self.spec.gate
        named = gate.fail_if_worse_than
        if named is None or not (self.path.parent / named).is_file():
            return gate
        return gate.model_copy(update={"fail_if_worse_than": str(self.path.parent / named)})


def load_eval(path: Path, overrides: Mapping[str, Any] | None = None) -> LoadedEval:
    text = _read(path)
    node, data = _parse(path, text)
    merged = merged_with(_normalised(data), overrides or {})
    try:
        spec = EvalFile.model_validate(merged)
    except ValidationError as exc:
        raise _located(path, node, merged, overrides or {}, exc) from None
    return LoadedEval(path, spec)


def _read(path: Path) -> str:
    try:
        with open_regular(path) as f:
            raw = f.read(MAX_EVAL_BYTES + 1)
    except FileNotFoundError:
        raise UserInputError(
            f"No eval file {path}", "write one with: assay init DATA PROMPT (or pass DATA PROMPT)"
        ) from None
    except NotRegularFileError as exc:
        raise UserInputError(f"Eval file {path} is {exc.kind}", "give a YAML file") from None
    except OSError as exc:
        raise UserInputError(f"Cannot read eval file {path}: {exc.strerror}") from None
    if len(raw) > MAX_EVAL_BYTES:
        raise UserInputError(f"Eval file {path} is larger than 1 MiB", "is this the eval file?")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise UserInputError(f"{path}:{line}: not UTF-8 text", "save it as UTF-8") from None


def _parse(path: Path, text: str) -> tuple[yaml.Node | None, Any]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        where = f"{path}:{line}" if line else str(path)
        raise UserInputError(f"{where}: not valid YAML ({exc.problem})") from None
    except (yaml.YAMLError, RecursionError) as exc:
        raise UserInputError(f"{path}: not valid YAML ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise UserInputError(
            f"{path}: an eval file is a mapping of keys (data, prompts, models, metrics, …)",
            "write one with: assay init DATA PROMPT",
        )
    _refuse_duplicate_keys(path, node)
    _refuse_lone_surrogates(path, data)
    return node, data


def _refuse_duplicate_keys(path: Path, node: yaml.Node | None) -> None:
    """YAML keeps the last of two equal keys silently; a repeated key is a mistake."""
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key, value in node.value:
            if key.value in seen:
                line = key.start_mark.line + 1
                raise UserInputError(f"{path}:{line}: {key.value!r} is given twice", "keep one")
            seen.add(key.value)
            _refuse_duplicate_keys(path, value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _refuse_duplicate_keys(path, item)


def _refuse_lone_surrogates(path: Path, data: Any) -> None:
    try:
        json.dumps(data, ensure_ascii=False, default=str).encode("utf-8")
    except UnicodeEncodeError:
        raise UserInputError(
            f"{path}: holds half of an emoji (a lone surrogate)", "write the character whole"
        ) from None


def _normalised(data: dict[str, Any]) -> dict[str, Any]:
    """``data: FILE`` as ``data: {path: FILE}``, so a flag may change one field of it."""
    if isinstance(data.get("data"), str):
        return {**data, "data": {"path": data["data"]}}
    return data


def merged_with(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with each key of ``overrides`` in place of its own (mappings key by key)."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merged_with(out[key], value)
        else:
            out[key] = value
    return out


def _located(
    path: Path,
    node: yaml.Node | None,
    merged: Mapping[str, Any],
    overrides: Mapping[str, Any],
    exc: ValidationError,
) -> UserInputError:
    """The most specific of pydantic's errors (a union's object branch over its string one),
    located at the file's line unless a flag gave the value."""
    err = max(exc.errors(), key=lambda e: len(e["loc"]))
    keys = _key_path(merged, err["loc"])
    line = None if _from_flags(overrides, keys) else _line(node, keys)
    where = f"{path}:{line}" if line else str(path)
    message, hint = _message(err, keys)
    return UserInputError(f"{where}: {_dotted(keys) or 'file'}: {message}", hint)


def _message(err: ErrorDetails, keys: list[Key]) -> tuple[str, str]:
    if err["type"] == "extra_forbidden":
        allowed = ", ".join(_allowed_keys(keys[:-1]))
        return "unknown key", f"allowed here: {allowed}" if allowed else SCHEMA_HINT
    if err["type"] == "missing":
        return "missing", SCHEMA_HINT
    return str(err["msg"]).removeprefix("Value error, "), SCHEMA_HINT


def _key_path(data: Any, loc: tuple[Key, ...]) -> list[Key]:
    """The parts of pydantic's ``loc`` that are keys or indexes of the data (not the names of
    a union's members)."""
    keys: list[Key] = []
    for part in loc:
        if _holds(data, part):
            data = data[part]
        elif isinstance(data, Mapping) and isinstance(part, str) and part not in _UNION_TAGS:
            keys.append(part)  # a key the data lacks: missing, where it would go
            break
        else:
            continue
        keys.append(part)
    return keys


def _holds(data: Any, part: Key) -> bool:
    if isinstance(data, Mapping):
        return part in data
    return isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)


_UNION_TAGS = {"str", "int", "float", "bool", "list[str]", "DataSection", "PromptText"}


def _line(node: yaml.Node | None, keys: list[Key]) -> int | None:
    """The 1-based line of the deepest of ``keys`` the file holds."""
    line = None
    for part in keys:
        if isinstance(node, yaml.MappingNode):
            found = next(((k, v) for k, v in node.value if k.value == part), None)
            if found is None:
                break
            line, node = found[0].start_mark.line + 1, found[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _from_flags(overrides: Mapping[str, Any], keys: list[Key]) -> bool:
    """Whether a flag gave the value at ``keys`` (or the whole list it is in)."""
    data: Any = overrides
    for part in keys:
        if not isinstance(data, Mapping):
            return True
        if part not in data:
            return False
        data = data[part]
    return bool(keys)


def _dotted(keys: list[Key]) -> str:
    text = ""
    for part in keys:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _allowed_keys(keys: list[Key]) -> list[str]:
    """The keys the schema allows where ``keys`` lead."""
    model: type[BaseModel] = EvalFile
    for part in keys:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        inner = _model_in(field.annotation) if field is not None else None
        if inner is None:
            return []
        model = inner
    return list(model.model_fields)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
