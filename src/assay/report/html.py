"""Safe HTML building: text is escaped unless it is already ``Markup`` we built ourselves.

Model output, dataset text, run ids and config values are untrusted: every one of them goes
through :func:`esc` (``html.escape`` with quotes) or into the JSON island of :func:`json_island`,
whose ``<``, ``>`` and ``&`` are written as ``\\u003c`` etc., so no string can close the tag.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from typing import Any


class Markup(str):
    """A string of HTML that this package built from escaped parts."""

    __slots__ = ()


def esc(value: object) -> Markup:
    """The value as escaped text; ``Markup`` passes through unchanged."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape("" if value is None else str(value), quote=True))


def join(parts: Iterable[str], sep: str = "") -> Markup:
    """Concatenate parts, escaping any that are plain strings."""
    return Markup(sep.join(esc(p) for p in parts))


def attrs(**values: object) -> Markup:
    """` name="value"` pairs; a trailing underscore is dropped (``class_``), ``_`` becomes ``-``.

    None and False leave the attribute out; True writes it bare.
    """
    out = []
    for name, value in values.items():
        key = name.rstrip("_").replace("_", "-")
        if value is None or value is False:
            continue
        out.append(f" {key}" if value is True else f' {key}="{esc(value)}"')
    return Markup("".join(out))


def el(tag: str, content: str | Iterable[str] | None = None, **kw: object) -> Markup:
    """``<tag attrs>content</tag>`` with text content escaped."""
    if content is None:
        inner = Markup("")
    elif isinstance(content, str):
        inner = esc(content)
    else:
        inner = join(content)
    return Markup(f"<{tag}{attrs(**kw)}>{inner}</{tag}>")


def void(tag: str, **kw: object) -> Markup:
    """An element without content: ``<input/>``, or an SVG ``<line/>`` (which needs the slash)."""
    return Markup(f"<{tag}{attrs(**kw)}/>")


def safe_json(data: Any) -> str:
    """JSON that cannot end a ``<script>`` element or open a comment or CDATA section."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for char, code in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, code)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def json_island(element_id: str, data: Any) -> Markup:
    """Data for the page's script, in a ``<script type="application/json">`` element."""
    return Markup(
        f'<script type="application/json"{attrs(id=element_id)}>{safe_json(data)}</script>'
    )
