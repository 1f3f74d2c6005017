"""Building blocks shared by the scenario schema's modules (`market.scenario`, `market.language`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    """A scenario section: unknown keys, NaN and inf are errors; validated objects are frozen."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


NonNeg = Annotated[float, Field(ge=0)]
Positive = Annotated[float, Field(gt=0)]
