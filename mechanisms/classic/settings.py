"""`[mechanism]` of the classic ad auctions: first price, second price, GSP, VCG (and plug-in
mechanisms over the same `AuctionBatch`)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, field_validator

from genmarket.market.engine.precision import Magnitudes
from genmarket.market.scenario.base import NonNeg, Strict
from genmarket.mechanisms.base import MECHANISMS, AuctionBatch

__all__ = ["ClassicSettings", "accepts", "magnitudes"]

KINDS = ("first_price", "second_price", "gsp", "vcg")


def accepts(kind: str) -> bool:
    """A plug-in mechanism (registered or an entry point) that clears `AuctionBatch`es."""
    try:
        cls = MECHANISMS.lookup(kind)
    except ValueError:
        return False
    return getattr(cls, "batch_type", AuctionBatch) is AuctionBatch


class ClassicSettings(Strict):
    """`[mechanism]` of a classic auction. `reserve` — the lowest bid that can win, per click;
    `ctrs` — click-through rate of each slot, non-increasing (one slot of rate 1 by default;
    first and second price sell one slot)."""

    kind: str
    reserve: NonNeg = 0.0
    ctrs: list[Annotated[float, Field(ge=0, le=1)]] | None = None

    @field_validator("ctrs")
    @classmethod
    def _non_increasing(cls, ctrs: list[float] | None) -> list[float] | None:
        if ctrs is not None:
            if not ctrs:
                raise ValueError("needs at least one slot")
            if any(b > a for a, b in zip(ctrs, ctrs[1:], strict=False)):
                raise ValueError("click-through rates must be non-increasing by slot")
        return ctrs

    def params(self) -> dict[str, Any]:
        """Keyword arguments of the mechanism class."""
        out: dict[str, Any] = {"reserve": self.reserve}
        if self.ctrs is not None:
            out["ctrs"] = list(self.ctrs)
        return out


def magnitudes(scenario) -> Magnitudes | None:
    """The numbers a classic market computes (`Family.magnitudes`): payments are bids, so money
    quantities are at most the largest value, reserve or entry cost, and must resolve the spread
    of the values (the largest value minus the smallest; the largest value itself when all are
    equal). None when every number is 0."""
    lows = [g.value_dist.support[0] for g in scenario.advertisers]
    highs = [g.value_dist.support[1] for g in scenario.advertisers]
    largest = max(*highs, scenario.mechanism.reserve, *(g.entry_cost for g in scenario.advertisers))
    if largest <= 0:
        return None
    scale = max(highs) - min(lows) or largest
    return Magnitudes(largest, scale, f"the largest value, reserve or entry cost {largest:.3g} "
                                      f"against a value spread of {scale:.3g}")
