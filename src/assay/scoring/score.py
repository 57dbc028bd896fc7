"""The Score: a judgement in [0, 1], or an explicit absence of one with its reason."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ScoreStatus = Literal["scored", "unscored", "error"]


class Score(BaseModel):
    """One judgement on one response.

    ``scored``: ``value`` is a finite number in [0, 1].
    ``unscored``: no judgement could be made (no reference, unparsable judge reply, a custom
    metric that raised); ``value`` is None and ``reason`` says why.
    ``error``: the request itself failed, so there was no response to judge.

    Unscored and error scores are excluded from means and counted next to them; they are never
    turned into a 0 or a 0.5.
    """

    model_config = ConfigDict(frozen=True)

    value: float | None
    status: ScoreStatus
    reason: str = ""
    details: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_value(self) -> Score:
        if self.status == "scored":
            _check_unit_interval(self.value)
        elif self.value is not None:
            raise ValueError(f"a {self.status} score has no value (got {self.value!r})")
        return self

    @classmethod
    def scored(cls, value: float, reason: str = "", **details: Any) -> Score:
        """A judgement. Raises ValueError for a value outside [0, 1] or NaN."""
        _check_unit_interval(value)
        return cls(value=float(value), status="scored", reason=reason, details=details)

    @classmethod
    def unscored(cls, reason: str, **details: Any) -> Score:
        """No judgement could be made on a response that exists."""
        return cls(value=None, status="unscored", reason=reason, details=details)

    @classmethod
    def error(cls, reason: str, **details: Any) -> Score:
        """The request failed; there was no response to judge."""
        return cls(value=None, status="error", reason=reason, details=details)

    @property
    def is_scored(self) -> bool:
        return self.status == "scored"


def _check_unit_interval(value: float | None) -> None:
    if value is None or isinstance(value, bool):
        raise ValueError(f"a scored Score needs a number in [0, 1], got {value!r}")
    number = float(value)
    if math.isnan(number) or not 0.0 <= number <= 1.0:
        raise ValueError(f"score value {value!r} is outside [0, 1]")
