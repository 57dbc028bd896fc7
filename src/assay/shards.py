"""Shards of a run (``--shard i/n``), below every layer: which rows a shard evaluates.

A row belongs to shard ``1 + sha256(seed, sample id) mod n``: the same on every machine and
Python, whatever the row order, so the shards of one run are disjoint and cover its rows.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Shard(BaseModel):
    """Shard ``index`` (1-based) of ``count``; written ``"2/3"`` on the command line."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    index: int
    count: int = Field(le=100_000)

    @model_validator(mode="before")
    @classmethod
    def _written_as_the_flag(cls, data: Any) -> Any:
        if isinstance(data, str):
            return parse_shard(data)
        return data

    @model_validator(mode="after")
    def _index_within_count(self) -> Shard:
        if self.count < 1:
            raise ValueError(f"shard {self}: n must be 1 or more")
        if not 1 <= self.index <= self.count:
            raise ValueError(f"shard {self}: i must be between 1 and {self.count}")
        return self

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def holds(self, sample_id: str, seed: int) -> bool:
        return shard_of(sample_id, seed, self.count) == self.index


def parse_shard(text: str) -> dict[str, int]:
    """``"2/3"`` -> ``{"index": 2, "count": 3}``; anything else is a ValueError naming the form."""
    index, sep, count = text.strip().partition("/")
    if not sep or not index.strip().isdigit() or not count.strip().isdigit():
        raise ValueError(f"shard {text!r}: write it i/n, e.g. 2/3 (the 2nd of 3 shards)")
    return {"index": int(index), "count": int(count)}


def shard_of(sample_id: str, seed: int, count: int) -> int:
    """The shard (1-based) of a row among ``count``: a stable hash, not Python's ``hash``."""
    key = f"{seed}\x00{sample_id}".encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % count + 1
