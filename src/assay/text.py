"""Small text helpers below every layer: the natural order of ids."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")

_DIGITS = re.compile("[0-9]+")


def natural_key(text: str) -> str:
    """A key that sorts ids in natural order ("2" before "10", "q9" before "q10").

    Each run of digits becomes its length (four digits) then its digits, leading zeros
    dropped, so plain string comparison (Python's or SQLite's) gives the natural order.
    Ids that differ only in leading zeros get equal keys: sort by ``(natural_key(id), id)``.
    """
    return _DIGITS.sub(_length_prefixed, text)


def _length_prefixed(match: re.Match[str]) -> str:
    digits = match.group().lstrip("0")
    return f"{len(digits):04d}{digits}"


def natural_sorted(items: Iterable[T], key: Callable[[T], str] | None = None) -> list[T]:
    """``items`` sorted by the natural order of ``key(item)`` (the item itself by default)."""
    text_of: Callable[[T], str] = key if key is not None else str

    def sort_key(item: T) -> tuple[str, str]:
        text = text_of(item)
        return natural_key(text), text

    return sorted(items, key=sort_key)
