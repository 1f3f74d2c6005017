"""Building blocks of every scenario section, the families' own included: `Strict` models
(unknown keys, NaN and inf refused; frozen), bounded numbers and `Grid`."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Strict(BaseModel):
    """A scenario section: unknown keys, NaN and inf are errors; validated objects are frozen."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


NonNeg = Annotated[float, Field(ge=0)]
Positive = Annotated[float, Field(gt=0)]


class Grid(Strict):
    """`n` evenly spaced points from `low` to `high` inclusive (multipliers of a value, or bids)."""

    low: NonNeg = 0.0
    high: NonNeg = 1.5
    n: Annotated[int, Field(ge=1, le=10_000)] = 31

    @model_validator(mode="after")
    def _ordered(self) -> Grid:
        if self.high < self.low:
            raise ValueError(f"high = {self.high} must be >= low = {self.low}")
        if self.n == 1 and self.high != self.low:
            raise ValueError("n = 1 needs low == high")
        return self

    def points(self) -> list[float]:
        if self.n == 1:
            return [self.low]
        step = (self.high - self.low) / (self.n - 1)
        return [self.low + k * step for k in range(self.n)]
