"""Classic ad auctions: first price, second price, GSP and VCG with slot click-through rates.

All four rank bidders the same way and differ only in what a winner pays. Bidder j outranks
bidder l iff b_j > b_l, or b_j == b_l and noise_j > noise_l (exactly equal noise: the lower
index wins). Masked-out bidders rank below everyone and never win. A bidder wins slot s
(0-based) if exactly s present bidders outrank it, s < S (the number of slots) and its bid is
at least the reserve.

Payments, with o_0 >= o_1 >= ... the bids of the other present bidders in rank order (0 where
there are none), c_s the click-through rates (c_S = 0), rho the slot won and r the reserve:

    first_price   c_rho * b
    second_price  max(o_0, r)
    gsp           c_rho * max(o_rho, r)
    vcg           sum_{j=rho}^{S-1} (c_j - c_{j+1}) * max(o_j, r)

How the slots and counterfactuals are computed: mechanisms/classic/ranking.py.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from genmarket.mechanisms.base import AuctionBatch, Outcome, register_mechanism, tie_noise
from genmarket.mechanisms.classic.ranking import (  # noqa: F401  (re-exported: tests and users reach them here)
    FEW_SLOTS,
    MASKED,
    NOBODY,
    Podium,
    Ranking,
    Rule,
    _clean_bids,
    _constant,
    _pay_your_bid,
    few_slot_settle,
    others,
    podium,
    podium_others,
    rank,
    reserve_threshold,
    slot_payments,
    sorted_settle,
    thresholds,
)

__all__ = [
    "FEW_SLOTS",
    "GSP",
    "MASKED",
    "NOBODY",
    "VCG",
    "FirstPrice",
    "Podium",
    "Ranking",
    "SecondPrice",
    "few_slot_settle",
    "others",
    "podium",
    "podium_others",
    "rank",
    "reserve_threshold",
    "slot_payments",
    "sorted_settle",
    "thresholds",
]


@functools.lru_cache(maxsize=64)
def _arange(n: int, device: torch.device) -> Tensor:
    return torch.arange(n, device=device)


@dataclass(frozen=True)
class _RankAuction:
    """Settings shared by the classic auctions.

    reserve — minimum price per click, >= 0; ctrs — click-through rate of each slot, best
    first, non-increasing (default one slot with ctr 1). After validation `ctrs` is a tuple.
    """

    reserve: float = 0.0
    ctrs: Sequence[float] | None = None
    _rule: ClassVar[Rule]
    name: ClassVar[str]
    exact_deviations: ClassVar[bool] = True
    batch_type: ClassVar[type] = AuctionBatch

    def __post_init__(self) -> None:
        reserve = self.reserve
        if isinstance(reserve, bool) or not isinstance(reserve, numbers.Real):
            raise ValueError(f"reserve = {reserve!r}: must be a number >= 0")
        if not math.isfinite(reserve) or reserve < 0:
            raise ValueError(f"reserve = {reserve!r}: must be finite and >= 0")
        ctrs = (1.0,) if self.ctrs is None else tuple(self.ctrs)
        if not ctrs:
            raise ValueError("ctrs = []: must list at least one slot")
        for s, c in enumerate(ctrs):
            if (
                isinstance(c, bool)
                or not isinstance(c, numbers.Real)
                or not math.isfinite(c)
                or c < 0
            ):
                raise ValueError(f"ctrs[{s}] = {c!r}: must be a finite number >= 0")
        for s in range(1, len(ctrs)):
            if ctrs[s] > ctrs[s - 1]:
                raise ValueError(
                    f"ctrs = {list(ctrs)}: must be non-increasing "
                    f"(ctrs[{s}] = {ctrs[s]} > ctrs[{s - 1}] = {ctrs[s - 1]})"
                )
        object.__setattr__(self, "reserve", float(reserve))
        object.__setattr__(self, "ctrs", tuple(float(c) for c in ctrs))
        # the reserve's thresholds per float dtype, found once here: finding them reads a
        # tensor back (`.item()`), which would break a compiled round into pieces
        object.__setattr__(self, "_thresholds", {
            dt: reserve_threshold(self.reserve, dt)
            for dt in (torch.float16, torch.bfloat16, torch.float32, torch.float64)})

    def _threshold(self, dtype: torch.dtype) -> tuple[float, float]:
        """`reserve_threshold(self.reserve, dtype)`: (z, floor) in money units."""
        found = self._thresholds.get(dtype)
        return found if found is not None else reserve_threshold(self.reserve, dtype)

    def _ctr_tensor(self, like: Tensor) -> Tensor:
        return _constant(self.ctrs, like.dtype, like.device)

    @staticmethod
    def _index(like: Tensor) -> Tensor:
        """0 .. n-1 along the last dim, [n] long on like's device (cached)."""
        return _arange(like.shape[-1], like.device)

    # run, deviations and run_with_deviations all go through `_solve`: the podium (few slots)
    # or the ranking (many), built once, then the outcome and/or the deviations from it.

    def _solve(
        self,
        batch: AuctionBatch,
        alt_bids: Tensor | None,
        generator: torch.Generator | None,
        outcome: bool,
    ) -> tuple[Outcome | None, Tensor | None, Tensor | None]:
        bids = batch.bids
        noise = tie_noise(batch, generator).to(bids.dtype)
        alt = None if alt_bids is None else alt_bids.to(bids.dtype)
        S = min(len(self.ctrs), bids.shape[-1])  # slots from n on cannot be won
        # One winnable slot. Not for VCG with more ctrs than bidders: its price then sums the
        # phantom reserve bids of the empty slots, equal in exact arithmetic but not in floats.
        if S == 1 and alt is None and (len(self.ctrs) == 1 or self._rule != "vcg"):
            return self._one_slot(bids, batch.mask, noise), None, None
        solve = self._few_slots if S <= FEW_SLOTS.get(bids.device.type, 0) else self._sorted
        return solve(bids, batch.mask, noise, alt, outcome)

    def _one_slot(self, bids: Tensor, mask: Tensor, noise: Tensor) -> Outcome:
        """The outcome alone when one slot can be won: the best bidder by (bid, noise, lower
        index) wins if it clears the reserve. About fifteen small ops, for markets of many tiny
        auctions (1,000 replicas x 2 bidders) where the podium's per-pick ops dominate; the
        same numbers as the podium and sorted routes (tests/test_classic.py checks all three)."""
        b = torch.where(mask, bids.clamp(min=0) + 0.0, MASKED)
        top = b.amax(-1, keepdim=True)
        # among the top bids the highest noise wins; argmax returns the first maximum, which
        # is the lower-index rule for exactly equal noise (noise is in [0, 1), so -1 is below)
        winner = torch.where(b == top, noise, -1.0).argmax(-1, keepdim=True)
        is_best = self._index(b) == winner
        z, _ = self._threshold(b.dtype)
        won = (is_best & (top >= z)).to(b.dtype)
        c = self._ctr_tensor(b)[:1]
        if self._rule == "first_price":
            pay = c * top.clamp(min=0)  # the winner's bid (top is MASKED when nobody is there)
        else:
            second = torch.where(is_best, MASKED, b).amax(-1, keepdim=True)
            pay = c * second.clamp(min=self.reserve)
        allocation = won if self.ctrs[0] == 1.0 else won * c
        return Outcome(allocation, won * pay, won.long() - 1)

    def _few_slots(
        self, bids: Tensor, mask: Tensor, noise: Tensor, alt: Tensor | None, outcome: bool
    ) -> tuple[Outcome | None, Tensor | None, Tensor | None]:
        S = min(len(self.ctrs), bids.shape[-1])
        ctrs = self._ctr_tensor(bids)
        # Bidder-major: one transposing copy in and one out, and in between the reductions
        # over bidders run along contiguous auctions.
        bids, noise, present = torch.stack([bids.t(), noise.t(), mask.t().to(bids.dtype)])
        # MASKED where absent; the + 0 in addcmul also turns a -0.0 bid into +0.0.
        bids = torch.addcmul(present - 1, bids.clamp(min=0), present)
        p = podium(bids, noise, S + 1)
        rows = self._podium_outcome(bids, p, ctrs) if outcome else []
        if alt is not None:
            bid, weaker = podium_others(p, noise, S)  # [S, n, B]
            rows.extend(thresholds(bid, weaker, self._threshold(bids.dtype)[1]).unbind(0))
            if self._rule != "first_price":
                # One payment table per advertiser, shared by its K alternatives.
                rows.extend(slot_payments(bid, ctrs, self.reserve, self._rule)[:S].unbind(0))
        got = torch.stack([row.t() for row in rows])  # [rows, B, n]
        out = None
        if outcome:
            out = Outcome(got[0], got[1], got[2].long() - 1)
            got = got[3:]
        if alt is None:
            return out, None, None
        pay_by_slot = None if self._rule == "first_price" else got[S:]
        return out, *few_slot_settle(alt, got[:S], self.ctrs[:S], pay_by_slot)

    def _podium_outcome(self, bids: Tensor, p: Podium, ctrs: Tensor) -> list[Tensor]:
        """Allocation, payment and slot + 1, each [n, B], from the podium."""
        S = min(len(self.ctrs), bids.shape[0])
        z, _ = self._threshold(bids.dtype)
        # won [S, n, B]: 1.0 where bidder i is the s-th best, present (bid >= 0) and clears
        # the reserve; summing won * x over s picks one term per bidder, exactly.
        won = p.first[:S] * torch.ge(p.bid[:S], z, out=torch.empty_like(p.bid[:S]))
        c = ctrs[:S, None, None]
        if self._rule == "first_price":
            pay = c * bids.clamp(min=0)
        else:
            # The winner at slot s pays from the bids ranked below it: from the second best on,
            # read from index s.
            pay = slot_payments(p.bid[1:], ctrs, self.reserve, self._rule)[:S]
        if S == 1:
            won = won[0]
            return [won if self.ctrs[0] == 1.0 else won * c[0], won * pay[0], won]
        place = torch.arange(1, S + 1, dtype=bids.dtype, device=bids.device)[:, None, None]
        return [(won * c).sum(0), (won * pay).sum(0), (won * place).sum(0)]

    def _sorted(
        self, bids: Tensor, mask: Tensor, noise: Tensor, alt: Tensor | None, outcome: bool
    ) -> tuple[Outcome | None, Tensor | None, Tensor | None]:
        n = bids.shape[-1]
        S = min(len(self.ctrs), n)
        ctrs = self._ctr_tensor(bids)
        bids = _clean_bids(bids)
        ranking = rank(bids.masked_fill(~mask, MASKED), noise, max(n, S + 1))
        out = self._ranked_outcome(bids, mask, ranking, ctrs) if outcome else None
        if alt is None:
            return out, None, None
        bid, weaker = others(ranking, noise, max(n - 1, S))
        L = thresholds(bid, weaker, self._threshold(bids.dtype)[1])
        pay_by_slot = None
        if self._rule != "first_price":
            pay = slot_payments(bid.movedim(-1, 0), ctrs, self.reserve, self._rule)
            pay_by_slot = pay[:S].movedim(0, -1)
        return out, *sorted_settle(alt, L, ctrs[:S], pay_by_slot)

    def _ranked_outcome(
        self, bids: Tensor, mask: Tensor, ranking: Ranking, ctrs: Tensor
    ) -> Outcome:
        S = len(self.ctrs)
        z, _ = self._threshold(bids.dtype)
        won = (ranking.position < S) & mask & (bids >= z)
        at = torch.where(won, ranking.position, S)  # S = no slot: ctr 0, payment 0
        allocation = F.pad(ctrs, (0, 1))[at]
        if self._rule == "first_price":
            payment = allocation * bids
        else:
            pay_by_slot = slot_payments(ranking.top_bid[:, 1:].t(), ctrs, self.reserve, self._rule)
            payment = F.pad(pay_by_slot.t(), (0, 1)).gather(-1, at)
        return Outcome(allocation, payment, torch.where(won, ranking.position, -1))

    def run(self, batch: AuctionBatch, generator: torch.Generator | None = None) -> Outcome:
        """Allocation [B, n] (ctr of the slot won), payment [B, n] (money per auction, in bid
        units times ctr) and slot [B, n] (-1 if none) for every advertiser."""
        return self._solve(batch, None, generator, outcome=True)[0]

    def deviations(
        self, batch: AuctionBatch, alt_bids: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Exact batched unilateral deviations, see `Mechanism.deviations`.

        alt_bids [B, n, K], finite. Returns (allocation [B, n, K], payment [B, n, K]).
        """
        _, allocation, payment = self._solve(batch, alt_bids, generator, outcome=False)
        return allocation, payment

    def run_with_deviations(
        self, batch: AuctionBatch, alt_bids: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Outcome, Tensor, Tensor]:
        """`run` and `deviations` from one podium or ranking, see
        `mechanisms.base.run_with_deviations`."""
        return self._solve(batch, alt_bids, generator, outcome=True)


@register_mechanism("first_price")
@dataclass(frozen=True)
class FirstPrice(_RankAuction):
    """Pay your bid per click; with several ctrs, slots go in rank order."""

    _rule: ClassVar[Rule] = "first_price"


@register_mechanism("second_price")
@dataclass(frozen=True)
class SecondPrice(_RankAuction):
    """Single-slot Vickrey auction: the winner pays max(second-highest bid, reserve)."""

    _rule: ClassVar[Rule] = "gsp"

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.ctrs) != 1:
            raise ValueError(
                f"ctrs = {list(self.ctrs)}: second_price sells one slot; use gsp or vcg for several"
            )


@register_mechanism("gsp")
@dataclass(frozen=True)
class GSP(_RankAuction):
    """Generalised second price: slot s pays max(next bid below, reserve) per click."""

    _rule: ClassVar[Rule] = "gsp"


@register_mechanism("vcg")
@dataclass(frozen=True)
class VCG(_RankAuction):
    """Vickrey-Clarke-Groves for slots: pay the externality on the bidders displaced."""

    _rule: ClassVar[Rule] = "vcg"
