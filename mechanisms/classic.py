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

`run` ranks by sorting each auction; `deviations` ranks every alternative bid against the
others with `torch.searchsorted`. The two are separate code paths on purpose, so that the tests
comparing them check something.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import Tensor

from mechanisms.base import AuctionBatch, Outcome, register_mechanism, tie_noise

Rule = Literal["first_price", "gsp", "vcg"]

__all__ = [
    "GSP",
    "VCG",
    "FirstPrice",
    "SecondPrice",
    "deviation_slots",
    "reserve_threshold",
    "settle",
    "slot_payments",
    "slots",
    "tie_strength",
]


def _clean_bids(bids: Tensor) -> Tensor:
    # Negative bids mean "no money", and -0.0 + 0.0 is +0.0, so payments are never -0.0.
    return bids.clamp(min=0) + 0.0


def tie_strength(noise: Tensor) -> Tensor:
    """Strict tie-break order within each auction.

    noise [B, n] float. Returns strength [B, n] long, a permutation of 0..n-1 per auction:
    higher noise -> higher strength; exactly equal noise -> the lower index is stronger.
    Float draws tie often enough (B=1024, n=10 in float32: ~0.3% of batches) to need this.
    """
    n = noise.shape[-1]
    by_noise = torch.argsort(-noise, dim=-1, stable=True)  # strongest first
    position = torch.argsort(by_noise, dim=-1)
    return (n - 1) - position


def _rank_order(keyed: Tensor, strength: Tensor) -> Tensor:
    """Permutation [B, n] sorting each auction ascending by (keyed bid, strength)."""
    # Two sorts make a lexicographic order: by strength, then stably by bid.
    order = torch.argsort(strength, dim=-1)
    return order.gather(-1, torch.argsort(keyed.gather(-1, order), dim=-1, stable=True))


def _positions(order: Tensor) -> Tensor:
    """Inverse permutation: where each bidder sits in `order`."""
    n = order.shape[-1]
    ramp = torch.arange(n, device=order.device).expand_as(order)
    return torch.empty_like(order).scatter_(-1, order, ramp)


def slots(bids: Tensor, mask: Tensor, strength: Tensor) -> tuple[Tensor, Tensor]:
    """Rank each auction by (bid, strength).

    bids [B, n] float >= 0; mask [B, n] bool; strength [B, n] long from `tie_strength`.
    Returns (above [B, n] long: number of present bidders that outrank each present bidder,
    desc [B, n] float: the present bids in rank order, best first, 0 past the present ones).
    """
    keyed = bids.masked_fill(~mask, float("-inf"))
    order = _rank_order(keyed, strength)
    above = (bids.shape[-1] - 1) - _positions(order)
    desc = keyed.gather(-1, order).flip(-1).clamp(min=0)
    return above, desc


def deviation_slots(
    bids: Tensor, mask: Tensor, strength: Tensor, alt_bids: Tensor
) -> tuple[Tensor, Tensor]:
    """Rank every alternative bid of every advertiser against the others in its auction.

    bids [B, n] float >= 0, finite; mask [B, n] bool; strength [B, n] long;
    alt_bids [B, n, K] float >= 0. Advertiser i bidding alt_bids[b, i, k] keeps its own
    strength for ties and counts as present.
    Returns (above [B, n, K] long: number of other present bidders that outrank it,
    others_desc [B, n, n-1] float: the other present bids in rank order, 0 past the present ones).
    """
    n = bids.shape[-1]
    keyed = bids.masked_fill(~mask, float("-inf"))
    order = _rank_order(keyed, strength)
    asc = keyed.gather(-1, order)
    # j outranks (a, s_i) iff b_j > a, or b_j == a and s_j > s_i. Bumping the bids of bidders
    # stronger than i to the next float up turns that into plain b'_j > a, exactly; the rows
    # stay sorted because ties sit in ascending strength. One searchsorted then ranks all K.
    # (Relies on denormals not being flushed: ties at bid 0 bump to the smallest denormal.)
    stronger = strength.gather(-1, order).unsqueeze(1) > strength.unsqueeze(-1)  # [B, i, j]
    bumped = torch.where(
        stronger, torch.nextafter(asc, asc.new_tensor(math.inf)).unsqueeze(1), asc.unsqueeze(1)
    )
    # Drop i's own entry: index j of the others is j, or j + 1 from i's place on.
    place = _positions(order).unsqueeze(-1)  # [B, n, 1], i's place in the ascending row
    j = torch.arange(n - 1, device=bids.device)
    skip = j + (j >= place)  # [B, n, n-1]
    not_above = torch.searchsorted(bumped.gather(-1, skip), alt_bids.contiguous(), right=True)
    above = (n - 1) - not_above
    others_desc = asc.clamp(min=0).unsqueeze(1).expand(-1, n, n).gather(-1, skip).flip(-1)
    return above, others_desc


def slot_payments(others_desc: Tensor, ctrs: Tensor, reserve: float, rule: Rule) -> Tensor:
    """Expected payment of a winner at each slot, for rules priced by the others' bids.

    others_desc [..., m] float: bids of the bidders other than the winner, best first
    (entry j only matters for slots <= j, so the run path may pass the row below the winner).
    ctrs [S]. rule "gsp" or "vcg".
    Returns [..., S]: money per auction for winning slot s.
    """
    S = ctrs.shape[0]
    m = others_desc.shape[-1]
    o = others_desc[..., :S]
    if m < S:
        o = torch.nn.functional.pad(o, (0, S - m))
    price = o.clamp(min=reserve)
    if rule == "gsp":
        return ctrs * price
    # VCG: winning slot s displaces each lower-ranked other by one slot; reserve acts as
    # phantom bids at r.
    gap = ctrs - torch.nn.functional.pad(ctrs[1:], (0, 1))
    return (gap * price).flip(-1).cumsum(-1).flip(-1)


def reserve_threshold(reserve: float, dtype: torch.dtype) -> float:
    """The smallest value of `dtype` that is >= reserve, so `bid >= threshold` in that dtype
    decides exactly whether bid >= reserve (a float32 comparison would round the reserve,
    possibly down)."""
    r = torch.tensor(reserve, dtype=dtype)
    if r.item() < reserve:
        r = torch.nextafter(r, torch.tensor(math.inf, dtype=dtype))
    return r.item()


def settle(
    above: Tensor, own_bid: Tensor, pay_by_slot: Tensor | None, ctrs: Tensor, reserve: float
) -> tuple[Tensor, Tensor, Tensor]:
    """From ranks to what each bidder gets.

    above [B, n] or [B, n, K] long — present bidders outranking the bidder; own_bid like above;
    pay_by_slot [B, S] or [B, n, S] — money for winning slot s, or None for pay-your-bid;
    ctrs [S]. Returns (allocation, payment, won), all like above: allocation is the ctr of the
    slot won (0 if none), payment the money per auction, won a bool.
    """
    S = ctrs.shape[0]
    # Index S is "no slot": ctr 0 and payment 0, so losing needs no masking. Multiplying by
    # the reserve test (not torch.where) because this is the hot path and where is slower.
    at = above.clamp(max=S)
    clears = own_bid >= reserve_threshold(reserve, own_bid.dtype)
    ctr = torch.nn.functional.pad(ctrs, (0, 1)).expand(*above.shape[:-1], S + 1).gather(-1, at)
    allocation = ctr * clears
    if pay_by_slot is None:
        payment = allocation * own_bid
    else:
        payment = torch.nn.functional.pad(pay_by_slot, (0, 1)).gather(-1, at) * clears
    return allocation, payment, clears & (above < S)


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

    def _ctr_tensor(self, like: Tensor) -> Tensor:
        return torch.tensor(self.ctrs, dtype=like.dtype, device=like.device)

    def run(self, batch: AuctionBatch, generator: torch.Generator | None = None) -> Outcome:
        """Allocation [B, n] (ctr of the slot won), payment [B, n] (money per auction, in bid
        units times ctr) and slot [B, n] (-1 if none) for every advertiser."""
        bids = _clean_bids(batch.bids)
        strength = tie_strength(tie_noise(batch, generator))
        above, desc = slots(bids, batch.mask, strength)
        ctrs = self._ctr_tensor(bids)
        # The winner at slot s pays from the bids ranked below it: desc[s+1], desc[s+2], ...
        # which is desc without its first entry, read from index s on.
        pay_by_slot = None
        if self._rule != "first_price":
            pay_by_slot = slot_payments(desc[..., 1:], ctrs, self.reserve, self._rule)
        # Masked-out bidders rank last but can still be within the top S places: no slot for them.
        above = above.masked_fill(~batch.mask, ctrs.shape[0])
        allocation, payment, won = settle(above, bids, pay_by_slot, ctrs, self.reserve)
        slot = torch.where(won, above, torch.full_like(above, -1))
        return Outcome(allocation, payment, slot)

    def deviations(
        self, batch: AuctionBatch, alt_bids: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Exact batched unilateral deviations, see `Mechanism.deviations`.

        alt_bids [B, n, K]. Returns (allocation [B, n, K], payment [B, n, K]).
        """
        bids = _clean_bids(batch.bids)
        alt = _clean_bids(alt_bids.to(bids.dtype))
        strength = tie_strength(tie_noise(batch, generator))
        above, others_desc = deviation_slots(bids, batch.mask, strength, alt)
        ctrs = self._ctr_tensor(bids)
        pay_by_slot = None
        if self._rule != "first_price":
            # [B, n, S]: one table per advertiser, shared by its K alternatives.
            pay_by_slot = slot_payments(others_desc, ctrs, self.reserve, self._rule)
        allocation, payment, _ = settle(above, alt, pay_by_slot, ctrs, self.reserve)
        return allocation, payment


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
