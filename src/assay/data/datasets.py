"""Load a user's dataset into Samples, whatever common shape it comes in.

Formats, detected from the extension and the first record:

- ``messages``: ``{"messages": [{"role", "content"}, ...]}``; a final assistant turn is the
  reference. OpenAI-evals rows (``{"input": [messages], "ideal": ...}``) are read the same way,
  and an explicit ``ideal`` is the reference (the messages are then kept as given).
- ``alpaca``: ``instruction``, optional ``input`` and ``output`` (the reference).
- ``sharegpt``: ``{"conversations": [{"from": "human"|"gpt"|"system", "value"}]}``; a final
  ``gpt`` turn is the reference.
- ``flat``: any other JSON object; the input and reference fields are named by a
  :class:`FieldMapping` or guessed from common names.
- ``csv``: a header row, then flat rows (``.tsv`` is read the same way with tabs).

Every problem is a :class:`DataError` located as ``file:line``, the real line in the file.

:func:`load_dataset` validates every row in one pass and keeps counts, field names and the
hash. A dataset within :class:`KeepRows` (10,000 rows, 4 MiB) also keeps the rows that pass
parsed, so a run reads and parses its file once. A larger one is streamed:
:meth:`Dataset.iter_samples` reads the rows again for each pass, and memory does not grow
with the number of rows (except a JSON array file, which is parsed whole).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import json
import re
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass, field, replace
from functools import cached_property
from itertools import chain
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel, ConfigDict

from assay.errors import DataError, UserInputError
from assay.files import NotRegularFileError, open_regular
from assay.records import Message, Sample, repair_surrogates

INPUT_NAMES = ("input", "text", "question", "prompt", "review", "document", "sentence", "query")
REFERENCE_NAMES = (
    "ideal",
    "output",
    "answer",
    "label",
    "reference",
    "expected",
    "target",
    "completion",
    "summary",
)
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
SHAREGPT_ROLES = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
}
# The key that marks each structured format, for "mixed formats" messages.
FORMAT_KEYS = {"messages": "messages", "alpaca": "instruction", "sharegpt": "conversations"}

Row = dict[str, Any]
MISSING = object()

# Limits that keep a hostile file from exhausting memory or the stack: a row's line (a file
# of zeros has no line break), and how deep its objects and lists nest (pydantic refuses to
# serialise values much deeper than this, after the calls were paid for).
MAX_LINE_BYTES = 64 << 20
MAX_DEPTH = 100


@dataclass(frozen=True)
class KeepRows:
    """How much of a dataset its validation pass keeps parsed: at most ``max_rows`` rows and
    ``max_bytes`` of the file (a short row's Sample is about 2 KiB, so ~20 MiB at most).
    Past either, the rows are streamed from the file for each pass instead."""

    max_rows: int = 10_000
    max_bytes: int = 4 << 20


STREAM = KeepRows(max_rows=0, max_bytes=0)  # keep nothing: every pass reads the file


class FieldMapping(BaseModel):
    """Which fields of a flat record hold the input and the reference (dotted for nesting)."""

    model_config = ConfigDict(frozen=True)

    input_field: str | None = None
    output_field: str | None = None


@dataclass(frozen=True)
class Dataset:
    """A validated dataset file: what a run needs up front, and the parsed rows when few.

    :meth:`iter_samples` serves the rows the validation pass kept (``kept``, the first rows,
    within :class:`KeepRows`), or else reads them again from the file, so a run's memory does
    not grow with the dataset. :attr:`samples` holds them all in a list, for callers that
    need random access to a small dataset (optimization splits it).
    """

    path: str
    format: str
    fields: list[str]
    content_hash: str
    n_rows: int
    n_with_reference: int
    input_field: str | None
    reference_field: str | None
    _ctx: _Ctx = field(repr=False)
    # What was repaired on load, each naming file:line (e.g. half of an emoji made U+FFFD).
    warnings: tuple[str, ...] = ()
    row_limit: int | None = None  # only the first rows are used (see head)
    # The first rows, parsed by the validation pass; None: too many to hold, read them again.
    kept: tuple[Sample, ...] | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return self.n_rows

    @property
    def has_reference(self) -> bool:
        """Whether any row has a reference: reference metrics leave the others unscored."""
        return self.n_with_reference > 0

    def head(self, limit: int | None) -> Dataset:
        """The first ``limit`` rows as a dataset of their own (same file and hash)."""
        if not limit or limit >= self.n_rows:
            return self
        rows = list(self.iter_samples(limit))
        with_reference = sum(1 for s in rows if s.reference is not None)
        return replace(self, n_rows=len(rows), n_with_reference=with_reference, row_limit=limit)

    def iter_samples(self, limit: int | None = None) -> Iterator[Sample]:
        """The rows in file order, at most ``limit``: those kept when they cover it (the
        file is not read), else read afresh from the file."""
        limits = [n for n in (limit, self.row_limit) if n]
        limit = min(limits) if limits else None
        kept = self.kept
        if kept is not None and (len(kept) >= self.n_rows or (limit and limit <= len(kept))):
            return iter(kept[:limit])
        return self._read_again(limit)

    def _read_again(self, limit: int | None) -> Iterator[Sample]:
        reader = _RowReader(Path(self.path))
        with closing(reader.rows()) as rows:
            for n, (line, row) in enumerate(rows, start=1):
                if limit and n > limit:  # a limit as large as the file still checks the hash
                    return
                yield _read_row(self._ctx, line, row)
        # A full pass has hashed every byte: rows read now must be the rows validated.
        if reader.digest.hexdigest() != self.content_hash:
            raise DataError(
                self.path,
                None,
                "the file changed since it was loaded",
                "keep the data file unchanged while Assay uses it",
            )

    @cached_property
    def samples(self) -> list[Sample]:
        """Every row, read once and kept: holds the whole dataset in memory."""
        return list(self.iter_samples())


@dataclass(frozen=True)
class _FlatFields:
    input: str
    reference: str | None
    reference_required: bool


@dataclass(frozen=True)
class _Ctx:
    path: str
    format: str
    first_line: int
    flat: _FlatFields | None = None
    mapped: bool = False

    def error(self, line: int | None, problem: str, hint: str | None = None) -> DataError:
        return DataError(self.path, line, problem, hint)


# ---------------------------------------------------------------- entry point


def load_dataset(
    path: str | Path,
    mapping: FieldMapping | None = None,
    *,
    use_first: int | None = None,
    keep: KeepRows = KeepRows(),
) -> Dataset:
    """Validate every row of ``path`` in one streamed pass; the first bad row raises a
    DataError. Counts, field names and ids are kept, and the parsed rows when they fit
    ``keep`` (or the first ``use_first``, the rows the caller will use, when those do)."""
    p = Path(path)
    reader = _RowReader(p)
    with closing(reader.rows()) as rows:  # the file closes on the first bad row too
        first = next(rows, None)
        if first is None:  # each format raises its own error first; this keeps the type exact
            raise DataError(str(p), None, "no records", _FORMATS_HINT)
        ctx = _make_context(p, first, reader.header_line, mapping)
        tally = _Tally(_Keeper(keep, use_first))
        for line, row in chain([first], rows):
            tally.add(ctx, _read_row(ctx, line, row), reader.n_bytes)
    return Dataset(
        path=str(p),
        format=ctx.format,
        fields=list(tally.fields),
        content_hash=reader.digest.hexdigest(),
        n_rows=tally.n_rows,
        n_with_reference=tally.n_with_reference,
        input_field=ctx.flat.input if ctx.flat else None,
        reference_field=_reference_field(ctx),
        _ctx=ctx,
        warnings=reader.repairs.warnings(str(p)),
        kept=tally.keeper.kept(),
    )


@dataclass
class _Keeper:
    """The rows of the validation pass while they fit its ``KeepRows``; past that, only the
    first ``want`` (the rows the caller uses), or none."""

    keep: KeepRows
    want: int | None
    rows: list[Sample] | None = field(default_factory=list)  # None: none kept, streamed
    full: bool = False  # past the limits with the first ``want`` rows kept

    def add(self, sample: Sample, bytes_read: int) -> None:
        rows = self.rows
        if rows is None or self.full:
            return
        if len(rows) >= self.keep.max_rows or bytes_read > self.keep.max_bytes:
            self.full = self.want is not None and len(rows) >= self.want
            self.rows = rows[: self.want] if self.full else None
            return
        rows.append(sample)

    def kept(self) -> tuple[Sample, ...] | None:
        return tuple(self.rows) if self.rows is not None else None


@dataclass
class _Tally:
    """What the validation pass keeps of the rows it has read."""

    keeper: _Keeper
    n_rows: int = 0
    n_with_reference: int = 0
    fields: dict[str, None] = field(default_factory=dict)  # every field path, first seen first
    # The line of each id's first row, for the duplicate check: the one part of a pass that
    # grows with the rows (an id string and an int each).
    id_lines: dict[str, int] = field(default_factory=dict)

    def add(self, ctx: _Ctx, sample: Sample, bytes_read: int) -> None:
        first = self.id_lines.get(sample.id)
        if first is not None:  # a JSON array on one line puts several rows on the same line
            raise ctx.error(
                sample.line,
                f"duplicate id '{sample.id}' (first on line {first})",
                "every row needs a unique id",
            )
        self.id_lines[sample.id] = sample.line
        self.n_rows += 1
        self.n_with_reference += sample.reference is not None
        for name in _paths(sample.fields, ""):
            self.fields.setdefault(name, None)
        self.keeper.add(sample, bytes_read)


def get_path(obj: Mapping[str, Any], dotted: str) -> Any:
    """``obj[dotted]`` if that key exists, else a walk down nested objects; MISSING if absent."""
    if dotted in obj:
        return obj[dotted]
    value: Any = obj
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return MISSING
        value = value[part]
    return value


def _reference_field(ctx: _Ctx) -> str | None:
    if ctx.flat:
        return ctx.flat.reference
    return "output" if ctx.format == "alpaca" else None


# ---------------------------------------------------------------- bytes and text


def _open(p: Path) -> IO[bytes]:
    try:
        return open_regular(p)
    except NotRegularFileError as exc:
        raise DataError(str(p), None, f"is {exc.kind}, not a dataset file", _FORMATS_HINT) from None
    except FileNotFoundError:
        raise DataError(str(p), None, "file not found", "check the path") from None
    except OSError as exc:
        raise DataError(str(p), None, f"cannot read the file: {exc.strerror}") from None


def _hashed(path: str, f: IO[bytes], update: Callable[[bytes], None]) -> Iterator[bytes]:
    """The file's lines, each hashed as read; a line over MAX_LINE_BYTES is a DataError."""
    limit = MAX_LINE_BYTES
    for number, raw in enumerate(iter(lambda: f.readline(limit + 1), b""), start=1):
        if len(raw) > limit:
            raise DataError(
                path,
                number,
                f"the line is longer than {_size(limit)}",
                "put one record per line (JSONL); is this a data file?",
            )
        update(raw)
        yield raw


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n:,} bytes"


def _decoded(path: str, lines: Iterable[bytes]) -> Iterator[str]:
    """Each line as text, its line break kept; a bad byte is a DataError at its own line.

    Lines end at b"\\n" only, which never occurs inside a UTF-8 sequence, so decoding line
    by line accepts and refuses exactly what decoding the whole file would."""
    for number, raw in enumerate(lines, start=1):
        if number == 1:
            raw = _without_bom(path, raw)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(
                path,
                number,
                f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})",
                "re-encode the file as UTF-8, e.g. iconv -f latin1 -t utf-8 in > out",
            ) from None
        yield text


def _without_bom(path: str, raw: bytes) -> bytes:
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise DataError(path, None, "the file is UTF-16", "re-encode it as UTF-8")
    return raw.removeprefix(codecs.BOM_UTF8)


def _up_to_content(path: str, lines: Iterator[str]) -> tuple[list[str], str]:
    """The lines up to and including the first that is not blank, and its first character.

    The caller puts these lines back in front of the rest, so line numbers stay true."""
    head: list[str] = []
    for line in lines:
        head.append(line)
        content = line.lstrip()
        if content:
            return head, content[0]
    problem = "the file is empty" if not any(head) else "the file has only blank lines"
    raise DataError(path, None, problem, "add one record per line")


# ---------------------------------------------------------------- rows with line numbers

_FORMATS_HINT = "give a .jsonl, .json or .csv file"


class _RowReader:
    """One pass over a dataset file: its records with their line numbers.

    The bytes are hashed as they are read, so once :meth:`rows` is exhausted ``digest`` is the
    sha256 of the whole file. A CSV's ``header_line`` is set before its first row comes out.
    """

    def __init__(self, p: Path) -> None:
        self.path = p
        self.digest = hashlib.sha256()
        self.n_bytes = 0  # read so far
        self.header_line: int | None = None
        self.repairs = _Repairs()

    def _hash(self, raw: bytes) -> None:
        self.digest.update(raw)
        self.n_bytes += len(raw)

    def rows(self) -> Generator[tuple[int, Row], None, None]:
        path, suffix = str(self.path), self.path.suffix.lower()
        with _open(self.path) as f:
            lines = _decoded(path, _hashed(path, f, self._hash))
            head, first_char = _up_to_content(path, lines)
            text = chain(head, lines)
            if suffix in (".csv", ".tsv"):
                reader = csv.reader(_csv_lines(text), delimiter="\t" if suffix == ".tsv" else ",")
                header, self.header_line = _csv_header(path, reader)
                yield from _csv_rows(path, reader, header, self.header_line)
            elif suffix == ".json" or (suffix not in (".jsonl", ".ndjson") and first_char == "["):
                # A JSON array has no row boundaries to stream on: it is parsed whole. It is
                # the rare format for large datasets; JSONL and CSV stay one row at a time.
                yield from _json_rows(path, "".join(text), self.repairs)
            elif suffix in (".jsonl", ".ndjson") or first_char == "{":
                yield from _jsonl_rows(path, text, self.repairs)
            else:
                problem = f"unknown dataset format '{self.path.suffix}'"
                raise DataError(path, None, problem, _FORMATS_HINT)


def _jsonl_rows(path: str, lines: Iterable[str], repairs: _Repairs) -> Iterator[tuple[int, Row]]:
    # Lines end at "\n" only, not at every splitlines() break: JSON strings may hold U+2028.
    for line, raw in enumerate(lines, start=1):
        raw = raw.removesuffix("\n")
        if not raw.strip():
            continue
        try:
            value = _loads(path, line, raw)
        except json.JSONDecodeError as exc:
            raise DataError(
                path,
                line,
                f"invalid JSON: {exc.msg} (column {exc.colno})",
                "each line must be one complete JSON object",
            ) from None
        yield line, _as_object(path, line, repairs.checked(path, line, _Risks.of(raw), value))


def _json_rows(path: str, text: str, repairs: _Repairs) -> Iterable[tuple[int, Row]]:
    try:
        value = _loads(path, None, text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data" and text.lstrip().startswith("{"):
            return _jsonl_rows(path, text.split("\n"), repairs)  # a JSONL file named .json
        problem = f"invalid JSON: {exc.msg} (column {exc.colno})"
        raise DataError(path, exc.lineno, problem) from None
    if not isinstance(value, list):
        raise DataError(
            path,
            1,
            f"expected a list of records, got {_type_name(value)}",
            "use [ {...}, {...} ] or JSONL with one object per line",
        )
    if not value:
        raise DataError(path, None, "the list of records is empty")
    risks = _Risks.of(text)  # for the whole file: each item is checked only if it may need it
    return [
        (line, _as_object(path, line, repairs.checked(path, line, risks, item)))
        for line, item in _array_items(text)
    ]


def _loads(path: str, line: int | None, text: str) -> Any:
    """``json.loads``; a JSONDecodeError is the caller's to word, any other failure is a
    DataError at ``line``."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise _too_deep(path, line) from None
    except ValueError as exc:  # an integer past Python's 4,300-digit limit, for one
        problem = f"invalid JSON: {str(exc).split(';')[0]}"
        raise DataError(path, line, problem, "write very long numbers as strings") from None


def _too_deep(path: str, line: int | None) -> DataError:
    return DataError(
        path,
        line,
        f"the record nests objects or lists deeper than {MAX_DEPTH} levels",
        "flatten the record",
    )


def _deeper_than(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if not isinstance(item, dict | list):
            continue
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children)
    return False


def _repaired(value: Any) -> Any:
    """``value`` with lone surrogates in its strings and keys made U+FFFD (depth is checked)."""
    if isinstance(value, str):
        return repair_surrogates(value)
    if isinstance(value, list):
        return [_repaired(item) for item in value]
    if isinstance(value, dict):
        return {repair_surrogates(k): _repaired(v) for k, v in value.items()}
    return value


# A \uD800-\uDFFF escape: the only way a lone surrogate gets into text decoded from UTF-8.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


@dataclass(frozen=True)
class _Risks:
    """What a JSON text may hold, from a cheap look at it: too many brackets to rule out deep
    nesting, and a surrogate escape. Parsed values are walked only when these say so."""

    deep: bool
    surrogates: bool

    @classmethod
    def of(cls, text: str) -> _Risks:
        deep = text.count("[") + text.count("{") > MAX_DEPTH
        return cls(deep, _SURROGATE_ESCAPE.search(text) is not None)


@dataclass
class _Repairs:
    """The rows whose text was repaired on load: how many, and the first few lines."""

    count: int = 0
    lines: list[int] = field(default_factory=list)

    def checked(self, path: str, line: int, risks: _Risks, value: Any) -> Any:
        """``value`` refused if it nests too deep, and with lone surrogates repaired."""
        if risks.deep and _deeper_than(value, MAX_DEPTH):
            raise _too_deep(path, line)
        if not risks.surrogates:
            return value
        repaired = _repaired(value)
        if repaired != value:
            self.count += 1
            if len(self.lines) < 5:
                self.lines.append(line)
        return repaired

    def warnings(self, path: str) -> tuple[str, ...]:
        if not self.count:
            return ()
        where = f" in {self.count} rows (lines {', '.join(map(str, self.lines))}" + (
            ", …)" if self.count > len(self.lines) else ")"
        )
        return (
            f"{path}:{self.lines[0]}: half of a UTF-16 surrogate pair (a cut emoji?) was "
            f"replaced by U+FFFD{where if self.count > 1 else ''}",
        )


def _array_items(text: str) -> Iterator[tuple[int, Any]]:
    """Items of a valid top-level JSON array, each with the line it starts on."""
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    while True:
        pos = _skip_space(text, pos)
        if text[pos] == "]":
            return
        item, end = decoder.raw_decode(text, pos)
        yield text.count("\n", 0, pos) + 1, item
        pos = _skip_space(text, end)
        if text[pos] == ",":
            pos += 1


def _skip_space(text: str, pos: int) -> int:
    while text[pos] in " \t\r\n":
        pos += 1
    return pos


def _as_object(path: str, line: int, value: Any) -> Row:
    if not isinstance(value, dict):
        raise DataError(
            path, line, f"expected a JSON object, got {_type_name(value)}", 'use {"field": ...}'
        )
    return value


_LONE_CR = re.compile(r"(?<=\r)(?!\n)")


def _csv_lines(lines: Iterable[str]) -> Iterator[str]:
    """Lines as the csv module reads a file opened with newline="": a lone \\r ends one too."""
    for line in lines:
        if "\r" in line:
            yield from (part for part in _LONE_CR.split(line) if part)
        else:
            yield line


def _csv_rows(
    path: str, reader: Any, header: list[str], header_line: int
) -> Iterator[tuple[int, Row]]:
    n_rows = 0
    start = reader.line_num + 1
    for values in _csv_records(path, reader):
        if values:
            n_rows += 1
            yield start, _csv_record(path, start, header, header_line, values)
        start = reader.line_num + 1
    if not n_rows:
        raise DataError(path, header_line, "no rows after the header", "add one row per sample")


def _csv_records(path: str, reader: Any) -> Iterator[list[str]]:
    while True:
        try:
            values: list[str] = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise DataError(path, reader.line_num, f"bad CSV: {exc}") from None
        yield values


def _csv_header(path: str, reader: Any) -> tuple[list[str], int]:
    header = next((h for h in _csv_records(path, reader) if h), [])
    line = reader.line_num
    for i, name in enumerate(header, start=1):
        if not name.strip():
            raise DataError(path, line, f"column {i} of the header has no name", _CSV_HEADER_HINT)
    duplicates = sorted({n for n in header if header.count(n) > 1})
    if duplicates:
        raise DataError(path, line, f"duplicate column names: {', '.join(duplicates)}")
    return [h.strip() for h in header], line


_CSV_HEADER_HINT = "the first line must be a header row naming every column"


def _csv_record(
    path: str, line: int, header: list[str], header_line: int, values: list[str]
) -> Row:
    if len(values) != len(header):
        raise DataError(
            path,
            line,
            f"row has {_count(len(values), 'value')} but the header (line {header_line}) "
            f"has {len(header)} columns",
            "quote values that contain the delimiter or a line break",
        )
    return dict(zip(header, values, strict=True))


# ---------------------------------------------------------------- format detection


def _detect_row_format(row: Row) -> str:
    if "messages" in row or isinstance(row.get("input"), list):
        return "messages"
    if "conversations" in row:
        return "sharegpt"
    if "instruction" in row:
        return "alpaca"
    return "flat"


def _make_context(
    p: Path, first_row: tuple[int, Row], header_line: int | None, mapping: FieldMapping | None
) -> _Ctx:
    first_line, first = first_row
    is_csv = header_line is not None
    mapped = mapping is not None and bool(mapping.input_field or mapping.output_field)
    fmt = "flat" if mapped or is_csv else _detect_row_format(first)
    if fmt != "flat":
        return _Ctx(str(p), fmt, first_line)
    line = header_line or first_line
    flat = _resolve_flat_fields(str(p), line, first, mapping or FieldMapping(), is_csv)
    if header_line is not None:
        _check_columns(str(p), header_line, first, flat)
    return _Ctx(str(p), "csv" if is_csv else "flat", first_line, flat, mapped)


def _resolve_flat_fields(
    path: str, line: int, row: Row, mapping: FieldMapping, is_csv: bool
) -> _FlatFields:
    if mapping.input_field and mapping.input_field == mapping.output_field:
        raise UserInputError(
            f"--input-field and --output-field are both '{mapping.input_field}'",
            "the reference must be a different field from the input",
        )
    input_field = mapping.input_field or _guess(row, INPUT_NAMES)
    if input_field is None:
        hint = f"name it with --input-field (looked for {', '.join(INPUT_NAMES)})"
        if is_csv:
            hint = f"is line {line} the header row? {hint}"
        raise DataError(path, line, f"no input field found among: {_names(row)}", hint)
    reference = mapping.output_field or _guess(row, REFERENCE_NAMES, exclude=input_field)
    return _FlatFields(input_field, reference, reference_required=bool(mapping.output_field))


def _check_columns(path: str, header_line: int, row: Row, flat: _FlatFields) -> None:
    """A mapped column missing from a CSV header is reported once, at the header."""
    wanted = [flat.input, flat.reference] if flat.reference_required else [flat.input]
    for name in wanted:
        if name is not None and get_path(row, name) is MISSING:
            raise DataError(path, header_line, f"no column '{name}'", f"columns: {_names(row)}")


def _guess(row: Row, names: tuple[str, ...], exclude: str | None = None) -> str | None:
    by_lower = {k.lower(): k for k in reversed(list(row)) if k != exclude}
    return next((by_lower[n] for n in names if n in by_lower), None)


# ---------------------------------------------------------------- one reader per format


def _read_row(ctx: _Ctx, line: int, row: Row) -> Sample:
    _check_same_format(ctx, line, row)
    readers: dict[str, Callable[[_Ctx, int, Row], Sample]] = {
        "messages": _read_messages_row,
        "alpaca": _read_alpaca_row,
        "sharegpt": _read_sharegpt_row,
    }
    return readers.get(ctx.format, _read_flat_row)(ctx, line, row)


def _check_same_format(ctx: _Ctx, line: int, row: Row) -> None:
    if ctx.format == "csv" or ctx.mapped:
        return  # every row of a CSV, or of a file read with a mapping, is flat
    detected = _detect_row_format(row)
    if detected == ctx.format:
        return
    if detected == "flat":
        raise ctx.error(
            line,
            f"no '{FORMAT_KEYS[ctx.format]}' field, but line {ctx.first_line} is in "
            f"{ctx.format} format",
            f"fields in this row: {_names(row)}",
        )
    raise ctx.error(
        line,
        f"mixed formats: this row is {detected} but line {ctx.first_line} is {ctx.format}",
        "use one format per file",
    )


def _read_messages_row(ctx: _Ctx, line: int, row: Row) -> Sample:
    key = "messages" if "messages" in row else "input"
    messages = _parse_messages(ctx, line, row[key], key)
    reference = _reference_value(ctx, line, row.get("ideal"), "ideal")
    if "ideal" not in row and messages[-1].role == "assistant":
        reference = _reference_value(ctx, line, messages[-1].content, "final assistant turn")
        messages = messages[:-1]
    _check_has_user_turn(ctx, line, messages, key)
    extra = {k: v for k, v in row.items() if k not in (key, "ideal", "metadata")}
    fields = {**extra, "input": _user_text(messages)}
    return _sample(ctx, line, row, tuple(messages), fields, reference)


def _read_alpaca_row(ctx: _Ctx, line: int, row: Row) -> Sample:
    instruction = _text_value(ctx, line, row["instruction"], "instruction")
    extra = row.get("input")
    context = "" if extra is None else _text_value(ctx, line, extra, "input", allow_empty=True)
    user = f"{instruction}\n\n{context}" if context.strip() else instruction
    reference = _reference_value(ctx, line, row.get("output"), "output")
    fields = {**row, "input": context}
    return _sample(ctx, line, row, (Message(role="user", content=user),), fields, reference)


def _read_sharegpt_row(ctx: _Ctx, line: int, row: Row) -> Sample:
    turns = _as_list(ctx, line, row["conversations"], "conversations")
    messages = [_sharegpt_turn(ctx, line, i, t) for i, t in enumerate(turns, start=1)]
    reference = None
    if messages[-1].role == "assistant":
        reference = _reference_value(ctx, line, messages[-1].content, "final gpt turn")
        messages = messages[:-1]
    _check_has_user_turn(ctx, line, messages, "conversations")
    extra = {k: v for k, v in row.items() if k not in ("conversations", "metadata")}
    fields = {**extra, "input": _user_text(messages)}
    return _sample(ctx, line, row, tuple(messages), fields, reference)


def _read_flat_row(ctx: _Ctx, line: int, row: Row) -> Sample:
    assert ctx.flat is not None  # set by _make_context for flat and csv formats
    raw_input = get_path(row, ctx.flat.input)
    if raw_input is MISSING:
        raise ctx.error(
            line, f"no input field '{ctx.flat.input}'", f"fields in this row: {_names(row)}"
        )
    text = _text_value(ctx, line, raw_input, ctx.flat.input)
    reference = None
    if ctx.flat.reference is not None:
        raw_ref = get_path(row, ctx.flat.reference)
        if raw_ref is MISSING and ctx.flat.reference_required:
            raise ctx.error(
                line,
                f"no reference field '{ctx.flat.reference}'",
                f"fields in this row: {_names(row)}",
            )
        reference = _reference_value(ctx, line, _or_none(raw_ref), ctx.flat.reference)
    return _sample(ctx, line, row, (Message(role="user", content=text),), row, reference)


# ---------------------------------------------------------------- value checks


def _parse_messages(ctx: _Ctx, line: int, value: Any, key: str) -> list[Message]:
    items = _as_list(ctx, line, value, key)
    return [_message(ctx, line, i, item) for i, item in enumerate(items, start=1)]


def _as_list(ctx: _Ctx, line: int, value: Any, key: str) -> list[Any]:
    if not isinstance(value, list):
        raise ctx.error(
            line,
            f"'{key}' must be a list of turns, got {_type_name(value)}",
            '[{"role": "user", "content": "..."}]'
            if key != "conversations"
            else '[{"from": "human", "value": "..."}]',
        )
    if not value:
        raise ctx.error(line, f"'{key}' is empty", "give at least one user turn")
    return value


def _message(ctx: _Ctx, line: int, index: int, item: Any) -> Message:
    if not isinstance(item, dict):
        raise ctx.error(line, f"message {index} is {_type_name(item)}, not an object")
    if "role" not in item:
        raise ctx.error(line, f"message {index} has no 'role'", _MESSAGE_HINT)
    role = ROLES.get(str(item["role"]))
    if role is None:
        raise ctx.error(
            line,
            f"message {index} has unknown role {item['role']!r}",
            "use system, user or assistant",
        )
    if "content" not in item:
        raise ctx.error(line, f"message {index} has no 'content'", _MESSAGE_HINT)
    content = _content_text(ctx, line, index, item["content"])
    return Message.model_validate({"role": role, "content": content})


_MESSAGE_HINT = 'each message needs "role" and "content"'


def _content_text(ctx: _Ctx, line: int, index: int, content: Any) -> str:
    """A string, or OpenAI's list of text parts joined; anything else is refused."""
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else None
    if parts and all(isinstance(p, dict) and p.get("type") == "text" for p in parts):
        return "".join(str(p.get("text", "")) for p in parts)
    raise ctx.error(
        line,
        f"message {index} content must be a string, got {_type_name(content)}",
        "only text content is supported",
    )


def _sharegpt_turn(ctx: _Ctx, line: int, index: int, turn: Any) -> Message:
    if not isinstance(turn, dict):
        raise ctx.error(line, f"turn {index} is {_type_name(turn)}, not an object")
    role = SHAREGPT_ROLES.get(str(turn.get("from")))
    if role is None:
        raise ctx.error(
            line,
            f"turn {index} has unknown 'from' value {turn.get('from')!r}",
            "use human, gpt or system",
        )
    value = turn.get("value")
    if not isinstance(value, str):
        raise ctx.error(line, f"turn {index} 'value' must be a string, got {_type_name(value)}")
    return Message.model_validate({"role": role, "content": value})


def _check_has_user_turn(ctx: _Ctx, line: int, messages: list[Message], key: str) -> None:
    if not any(m.role == "user" for m in messages):
        raise ctx.error(
            line,
            f"'{key}' has no user turn to send",
            "add a user turn (a final assistant turn is taken as the reference)",
        )


def _text_value(ctx: _Ctx, line: int, value: Any, name: str, allow_empty: bool = False) -> str:
    if isinstance(value, int | float):  # bool included: json writes true/false
        value = json.dumps(value)
    if not isinstance(value, str):
        raise ctx.error(
            line,
            f"field '{name}' must be text, got {_type_name(value)}",
            "point --input-field at a text field (dotted for nested: meta.text)",
        )
    if not allow_empty and not value.strip():
        raise ctx.error(line, f"field '{name}' is empty", "fill it or remove the row")
    return value


def _reference_value(ctx: _Ctx, line: int, value: Any, name: str) -> str | None:
    """Text, with numbers and booleans as JSON writes them; null or blank means no reference."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]  # OpenAI evals allow a list of acceptable answers
    if value is None:
        return None
    if isinstance(value, int | float):  # bool included: json writes true/false
        return json.dumps(value)
    if not isinstance(value, str):
        raise ctx.error(
            line,
            f"reference '{name}' must be a string, number or boolean, got {_type_name(value)}",
            "Assay compares each response with one reference text",
        )
    return value if value.strip() else None


def _or_none(value: Any) -> Any:
    return None if value is MISSING else value


def _user_text(messages: list[Message]) -> str:
    return "\n\n".join(m.content for m in messages if m.role == "user")


# ---------------------------------------------------------------- the Sample


def _sample(
    ctx: _Ctx,
    line: int,
    row: Row,
    messages: tuple[Message, ...],
    fields: dict[str, Any],
    reference: str | None,
) -> Sample:
    return Sample(
        id=_sample_id(ctx, line, row),
        line=line,
        messages=messages,
        fields=fields,
        reference=reference,
        metadata=_metadata(ctx, line, row),
    )


def _sample_id(ctx: _Ctx, line: int, row: Row) -> str:
    value = row.get("id")
    if value is None or value == "":
        return str(line)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ctx.error(line, f"'id' must be a string or an integer, got {_type_name(value)}")
    return str(value)


def _metadata(ctx: _Ctx, line: int, row: Row) -> dict[str, Any]:
    value = row.get("metadata")
    if value is None or ctx.format == "csv":
        return {}  # a CSV cell is text; a "metadata" column stays an ordinary field
    if not isinstance(value, dict):
        raise ctx.error(line, f"'metadata' must be an object, got {_type_name(value)}")
    return value


# ---------------------------------------------------------------- names for messages


def _paths(obj: Mapping[str, Any], prefix: str) -> Iterator[str]:
    for key, value in obj.items():
        yield prefix + key
        if isinstance(value, Mapping):
            yield from _paths(value, f"{prefix}{key}.")


def _names(row: Mapping[str, Any]) -> str:
    return ", ".join(_paths(row, "")) or "(none)"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _type_name(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)
