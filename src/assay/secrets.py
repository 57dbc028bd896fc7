"""Secrets are redacted by value wherever text leaves the process: the run store, the cache,
stdout and stderr, the HTML report and the dashboard.

By value, not by pattern: every secret the process knows is looked for — the values of the
key variables (the providers' ``*_API_KEY``, any variable a models config names, and any
variable whose name ends like a key's), credentials in a base URL and header values from a
models config. A server that echoes a key echoes it cut (without ``sk-``, or only its end),
so any run of ``MIN_RUN`` characters copied from a secret is redacted, not only the whole.

Below every layer: it imports nothing of Assay's.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO
from urllib.parse import urlsplit

MASK = "***"
MIN_SECRET = 8  # shorter values ("EMPTY", "ollama") would be found by chance everywhere
MIN_RUN = 12  # a copied run this long is a leak; shorter ones occur by chance
_CHUNK = 6  # any run of 2 * _CHUNK - 1 or more characters holds one whole aligned chunk
KEY_NAME_ENDINGS = ("_API_KEY", "_KEY", "_TOKEN", "_SECRET", "_PASSWORD")
# Header values that say how to talk, not who is talking: never secrets.
PLAIN_HEADERS = frozenset(
    {"accept", "content-type", "user-agent", "http-referer", "referer", "x-title"}
)
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_lock = threading.Lock()
_values: set[str] = set()
_env_names: set[str] = set()


def remember(value: object) -> None:
    """Treat ``value`` as a secret from now on, in this process."""
    if isinstance(value, str) and len(value.strip()) >= MIN_SECRET:
        with _lock:
            _values.add(value.strip())


def remember_env(name: str | None) -> None:
    """The value of the variable ``name`` (read when text is redacted) is a secret."""
    if name:
        with _lock:
            _env_names.add(name)


def remember_url(url: str | None) -> None:
    """The user and password of ``http://user:password@host`` are secrets."""
    if not url:
        return
    try:
        parts = urlsplit(url)
        user, password = parts.username, parts.password
    except ValueError:
        return
    remember(user)
    remember(password)


def remember_headers(headers: object) -> None:
    """Header values (``Authorization``, ``X-Api-Key``, a gateway's token …) are secrets."""
    if isinstance(headers, dict):
        for name, value in headers.items():
            if str(name).lower() not in PLAIN_HEADERS:
                remember(value)


def is_env_name(text: str) -> bool:
    return bool(ENV_NAME.match(text))


def known() -> list[str]:
    """Every secret this process knows now, longest first."""
    with _lock:
        found = set(_values)
        names = _env_names | _key_like_names()
    for name in names:
        value = os.environ.get(name, "").strip()
        if len(value) >= MIN_SECRET:
            found.add(value)
    return sorted(found, key=len, reverse=True)


_scanned: tuple[int, frozenset[str]] = (-1, frozenset())


def _key_like_names() -> frozenset[str]:
    """Variables named like keys. Scanning the environment costs more than a store write, so
    the names are scanned again only when the number of variables changes (values are read
    fresh every time)."""
    global _scanned
    size = len(os.environ)
    if _scanned[0] != size:
        names = frozenset(n for n in os.environ if n.upper().endswith(KEY_NAME_ENDINGS))
        _scanned = (size, names)
    return _scanned[1]


def redact(text: str) -> str:
    """``text`` with every secret, and every run of ``MIN_RUN`` characters copied from one,
    replaced by ``***``."""
    return _redacted(text, known()) if text else text


def redactor() -> Callable[[str], str]:
    """``redact`` with the secrets known now, for many texts written at once (a store's batch
    of results): finding the secrets costs more than looking for them in a short text."""
    secrets = known()
    return lambda text: _redacted(text, secrets) if text else text


def _redacted(text: str, secrets: list[str]) -> str:
    if not secrets:
        return text
    spans = sorted(span for secret in secrets for span in _copied(text, secret))
    if not spans:
        return text
    out, at = [], 0
    for start, end in _merged(spans):
        out.append(text[at:start])
        out.append(MASK)
        at = end
    out.append(text[at:])
    return "".join(out)


def _copied(text: str, secret: str) -> Iterator[tuple[int, int]]:
    """Spans of ``text`` that repeat ``MIN_RUN`` or more characters of ``secret`` (all of it,
    if it is shorter): found from aligned chunks of the secret, then grown both ways."""
    least = min(MIN_RUN, len(secret))
    for offset in range(0, len(secret) - _CHUNK + 1, _CHUNK):
        chunk = secret[offset : offset + _CHUNK]
        hit = text.find(chunk)
        while hit != -1:
            left = _grow_left(text, hit, secret, offset)
            right = _grow_right(text, hit + _CHUNK, secret, offset + _CHUNK)
            if right - left >= least:
                yield left, right
            hit = text.find(chunk, hit + 1)


def _grow_left(text: str, at: int, secret: str, offset: int) -> int:
    while at > 0 and offset > 0 and text[at - 1] == secret[offset - 1]:
        at, offset = at - 1, offset - 1
    return at


def _grow_right(text: str, at: int, secret: str, offset: int) -> int:
    while at < len(text) and offset < len(secret) and text[at] == secret[offset]:
        at, offset = at + 1, offset + 1
    return at


def _merged(spans: list[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    start, end = spans[0]
    for s, e in spans[1:]:
        if s <= end:
            end = max(end, e)
        else:
            yield start, end
            start, end = s, e
    yield start, end


class _Redacting:
    """A text stream that redacts what is written to it; everything else is the stream's."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(redact(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextmanager
def redacted_output() -> Iterator[None]:
    """``sys.stdout`` and ``sys.stderr`` redacted while the block runs."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Redacting(saved[0]), _Redacting(saved[1])
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
