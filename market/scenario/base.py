"""Building blocks of every scenario section, the families' own included: `Strict` models
(unknown keys, NaN, inf and values of the wrong type refused; frozen), bounded numbers and
`Grid`."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

# pydantic's strict mode: a TOML value of the wrong type is an error, never coerced ("20" is not
# 20, 3.0 is not 3, true is not 1, "off" is not false). An integer where a float is wanted stays
# accepted (TOML users write 1 for 1.0) and becomes a float.
STRICT = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True, strict=True)


class Strict(BaseModel):
    """A scenario section: unknown keys, NaN, inf and values of the wrong type are errors;
    validated objects are frozen."""

    model_config = STRICT


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
