"""`[mechanism]` of the classic ad auctions: first price, second price, GSP, VCG (and plug-in
mechanisms over the same `AuctionBatch`)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, field_validator

from genmarket.market.scenario.base import NonNeg, Strict
from genmarket.mechanisms.base import MECHANISMS, AuctionBatch

__all__ = ["ClassicSettings", "accepts"]

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
