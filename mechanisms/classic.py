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

How it is computed. What bidder i gets by bidding a depends only on the others it has to beat:
each other j becomes a threshold L_ij (j's bid, or the float just below it where i wins the
tie) with the reserve folded in, and a takes slot s or better iff a > L_i,s, the s-th highest
threshold. Two routes, picked by the number of slots that can be won:

- few slots (up to `FEW_SLOTS`, on CPU): `podium` picks the top S+1 bidders of each auction
  round by round, every bidder's top-S others follow from it, and the K alternatives are
  compared with those S thresholds by broadcasting (`few_slot_settle`).
- many slots, or a GPU: `rank` sorts each auction, and one `torch.searchsorted` over all n-1
  thresholds ranks the alternatives (`sorted_settle`).

`run` reads the slots off the same podium or ranking, and `run_with_deviations` builds it once
for both. tests/test_classic.py checks the two routes against each other and both against the
scalar oracle and `reference_deviations`.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from mechanisms.base import AuctionBatch, Outcome, register_mechanism, tie_noise

Rule = Literal["first_price", "gsp", "vcg"]

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

# The most slots that can be won for which the few-slot route is taken, per device type. On
# one CPU thread (B=1024, K=31) its cost grows by about three passes over [B, n, K] per slot
# while searchsorted's stays near thirty: it was faster at every S <= n for n = 10 and 20, and
# up to S = 20 for n = 32 (40 against 70 ms at S = 16, 46 against 61 at S = 20); 16 keeps a
# margin. On a GPU each of the podium's small steps is a kernel launch, and the sorted route
# was as fast at S = 1 and faster from S = 2 on (H100, n = 10: 0.80 against 0.84 and 1.10 ms),
# so device types not listed take the sorted route.
FEW_SLOTS = {"cpu": 16}

# Bids standing in for a masked-out bidder and for no bidder at all: below every real bid
# (>= 0), so they rank last and price like a bid of 0. Finite, unlike -inf, so that 0/1
# masks can select them arithmetically (0 * -inf would be nan).
MASKED, NOBODY = -1.0, -2.0


@functools.lru_cache(maxsize=256)
def _constant(value: float | tuple[float, ...], dtype: torch.dtype, device: torch.device) -> Tensor:
    """A constant tensor, made once per dtype and device and only ever read: building it
    per call is a host-to-device copy, which can wait for the GPU."""
    return torch.tensor(value, dtype=dtype, device=device)


def _clean_bids(bids: Tensor) -> Tensor:
    # Negative bids mean "no money", and -0.0 + 0.0 is +0.0, so payments are never -0.0.
    return bids.clamp(min=0) + 0.0


@functools.lru_cache(maxsize=64)
def reserve_threshold(reserve: float, dtype: torch.dtype) -> tuple[float, float]:
    """(z, floor): z the smallest value of `dtype` that is >= reserve, so `bid >= z` in that
    dtype decides exactly whether bid >= reserve (a float32 comparison would round the reserve,
    possibly down); floor the value just below z, so bid >= z iff bid > floor."""
    z = torch.tensor(reserve, dtype=dtype)
    if z.item() < reserve:
        z = torch.nextafter(z, torch.tensor(math.inf, dtype=dtype))
    return z.item(), torch.nextafter(z, torch.tensor(-math.inf, dtype=dtype)).item()


def thresholds(bid: Tensor, weaker: Tensor, floor: float) -> Tensor:
    """Bidder i bidding a beats another bidder and clears the reserve iff a > L.

    bid — the other's bid (negative: nobody); weaker like bid, 1.0 where i wins a tie with it,
    else 0.0; floor from `reserve_threshold`. Returns L like bid. Over the others in rank order
    L is non-increasing, so a takes slot s or better iff a > L_s. A negative a counts as 0.
    (Just below a tied bid of 0 is a denormal: this needs denormals kept, torch's default.)
    """
    # a >= bid iff a > below
    below = torch.nextafter(bid, _constant(-math.inf, bid.dtype, bid.device))
    L = torch.lerp(bid, below, weaker).clamp_(min=floor)
    if floor < 0:
        # Zero reserve and nobody to beat: every bid wins, a negative one too. L is then
        # floor < 0, and floor / 0 = -inf; elsewhere L / 1 = L.
        L = L.div_(torch.ge(L, 0, out=torch.empty_like(L)))
    return L


def slot_payments(others: Tensor, ctrs: Tensor, reserve: float, rule: Rule) -> Tensor:
    """Expected payment of a winner at each slot, for rules priced by the others' bids.

    others [m, ...]: bids of the bidders other than the winner, best first along the first dim
    (negative: nobody; entry j only matters for slots <= j, so the run path may pass the bids
    ranked below the winner). ctrs [S]. rule "gsp" or "vcg".
    Returns [S, ...]: money per auction for winning slot s.
    """
    S, m = ctrs.shape[0], others.shape[0]
    o = others[:S] if m >= S else torch.cat([others, others.new_zeros((S - m, *others.shape[1:]))])
    price = o.clamp(min=reserve)
    c = ctrs.view(S, *[1] * (o.ndim - 1))
    if rule == "gsp":
        return c * price
    # VCG: winning slot s displaces each lower-ranked other by one slot; the reserve acts as
    # phantom bids at r.
    gap = c - F.pad(ctrs[1:], (0, 1)).view_as(c)
    return (gap * price).flip(0).cumsum(0).flip(0)


def _pay_your_bid(allocation: Tensor, alt: Tensor) -> Tensor:
    # A winning negative bid counts as 0, and + 0.0 turns the -0.0 of a -0.0 bid into +0.0.
    return torch.mul(allocation, alt).clamp_(min=0).add_(0.0)


# --------------------------------------------------------------- few slots: the podium


@dataclass(frozen=True)
class Podium:
    """The best m bidders of each auction, best first, bidder-major (auctions along the last
    dim, so reductions over bidders are vectorised).

    bid   [m, 1, B] float — their bids, MASKED for masked-out bidders, NOBODY past the n bidders.
    noise [m, 1, B] float — their tie-break noise; -1 past the n bidders.
    who   [m, 1, B] float — their indices; n past the n bidders.
    first [m - 1, n, B] float — 1.0 where bidder i is the r-th best, else 0.0 (the last pick's
          row is never needed).
    """

    bid: Tensor
    noise: Tensor
    who: Tensor
    first: Tensor


def podium(bids: Tensor, noise: Tensor, m: int) -> Podium:
    """Pick the best m bidders in classic rank order, one per round.

    bids [n, B]: bids >= 0, MASKED where masked out; noise [n, B] in [0, 1). Each round takes the
    highest bid, among those tied the highest noise, among those the lowest index, and drops
    the pick to NOBODY. All of it is float arithmetic on 0/1 masks: on CPU, bool temporaries,
    `where` and reductions over a short last dim cost several times more.
    """
    n, B = bids.shape
    lowest_first = n - torch.arange(n, dtype=bids.dtype, device=bids.device).unsqueeze(-1)
    low_noise = noise - 4
    nobody = _constant(NOBODY, bids.dtype, bids.device)
    count = _constant(float(n), bids.dtype, bids.device)
    top = bids.new_empty((3, m, 1, B))  # bid, noise, who
    first = bids.new_empty((m - 1, n, B))
    tied, tied_noise = torch.empty_like(bids), torch.empty_like(bids)
    for r in range(min(m, n)):
        best = torch.amax(bids, 0, keepdim=True, out=top[0, r])
        torch.eq(bids, best, out=tied)
        torch.lerp(low_noise, noise, tied, out=tied_noise)  # the noise where tied, < -3 elsewhere
        best_noise = torch.amax(tied_noise, 0, keepdim=True, out=top[1, r])
        left = torch.eq(tied_noise, best_noise, out=tied).mul_(lowest_first)  # n - i, or 0
        left_max = left.amax(0, keepdim=True)
        torch.sub(count, left_max, out=top[2, r])
        if r < m - 1:
            # lerp is exact at weights 0 and 1
            bids = torch.lerp(bids, nobody, torch.eq(left, left_max, out=first[r]))
    if m > n:
        for row, value in zip(top, (NOBODY, -1.0, float(n)), strict=True):
            row[n:] = value
        first[n:] = 0.0
    return Podium(top[0], top[1], top[2], first)


def podium_others(p: Podium, noise: Tensor, S: int) -> tuple[Tensor, Tensor]:
    """For each bidder i, its S best others in rank order, from a podium of m > S.

    noise [n, B] as picked. Returns (bid [S, n, B], weaker [S, n, B]: 1.0 where i wins a tie).
    """
    n = noise.shape[0]
    # above[s] = 1.0 where i is among the best s+1: its s-th best other is then the (s+1)-th.
    above = p.first[:S]
    if S > 1:
        above = above.clone()
        for s in range(1, S):
            above[s] += above[s - 1]
    bid = torch.lerp(p.bid[:S], p.bid[1 : S + 1], above)
    their_noise = torch.lerp(p.noise[:S], p.noise[1 : S + 1], above)
    who = torch.lerp(p.who[:S], p.who[1 : S + 1], above)
    idx = torch.arange(n, dtype=noise.dtype, device=noise.device).unsqueeze(-1)

    def cmp(op, x: Tensor, y: Tensor) -> Tensor:
        return op(x, y, out=torch.empty_like(bid))

    weaker = torch.addcmul(
        cmp(torch.lt, their_noise, noise),
        cmp(torch.eq, their_noise, noise),
        cmp(torch.gt, who, idx),
    )
    return bid, weaker


def few_slot_settle(
    alt: Tensor, L: Tensor, ctrs: Sequence[float], pay_by_slot: Tensor | None
) -> tuple[Tensor, Tensor]:
    """Outcomes of alternative bids against each bidder's top-S thresholds.

    alt [B, n, K]; L [S, B, n] from `thresholds` over the S best others (S slots that can be
    won); ctrs, S floats; pay_by_slot [S, B, n] or None for pay-your-bid.
    Returns (allocation, payment), both [B, n, K].
    """
    S = L.shape[0]
    # win = 1.0 where a takes slot S-1 or better. Float comparison outputs, and in-place work
    # on fresh tensors: bool temporaries and `where` cost several times more on CPU.
    win = torch.gt(alt, L[S - 1].unsqueeze(-1), out=torch.empty_like(alt))
    payment = None if pay_by_slot is None else win * pay_by_slot[S - 1].unsqueeze(-1)
    if S == 1:
        allocation = win if ctrs[0] == 1.0 else win.mul_(ctrs[0])
    else:
        allocation = win * ctrs[S - 1]
        ends = _constant(tuple(ctrs), alt.dtype, alt.device)
        for s in range(S - 2, -1, -1):
            # Better slots overwrite worse ones. lerp is exact at weights 0 and 1: it returns
            # start + w * (end - start) for w < 0.5 and end - (end - start) * (1 - w) otherwise.
            torch.gt(alt, L[s].unsqueeze(-1), out=win)
            allocation.lerp_(ends[s], win)
            if payment is not None:
                payment.lerp_(pay_by_slot[s].unsqueeze(-1), win)
    if payment is None:
        payment = _pay_your_bid(allocation, alt)
    return allocation, payment


# --------------------------------------------------------------- many slots: the sorted ranking


@dataclass(frozen=True)
class Ranking:
    """Every auction in rank order.

    top       [B, m] long  — bidder indices, best first; n marks padding (m > n).
    top_bid   [B, m] float — their bids, MASKED for masked-out bidders, NOBODY for padding.
    top_noise [B, m] float — their tie-break noise; -1 for padding.
    position  [B, n] long  — each bidder's place, 0 = best.
    """

    top: Tensor
    top_bid: Tensor
    top_noise: Tensor
    position: Tensor


def rank(bids: Tensor, noise: Tensor, m: int) -> Ranking:
    """Sort each auction by (bid, noise, -index): a stable sort by noise, then one by bid.

    bids [B, n]: bids >= 0, MASKED where masked out; noise [B, n]; m >= n (padding past n).
    """
    B, n = bids.shape
    by_noise = torch.argsort(noise, dim=-1, descending=True, stable=True)
    by_bid = torch.argsort(bids.gather(-1, by_noise), dim=-1, descending=True, stable=True)
    top = by_noise.gather(-1, by_bid)
    top_bid, top_noise = bids.gather(-1, top), noise.gather(-1, top)
    ramp = torch.arange(n, device=bids.device).expand(B, n)
    position = torch.empty_like(top).scatter_(-1, top, ramp)
    if m > n:
        top = F.pad(top, (0, m - n), value=n)
        top_bid = F.pad(top_bid, (0, m - n), value=NOBODY)
        top_noise = F.pad(top_noise, (0, m - n), value=-1.0)
    return Ranking(top, top_bid, top_noise, position)


def others(ranking: Ranking, noise: Tensor, count: int) -> tuple[Tensor, Tensor]:
    """For each bidder i, its `count` best others in rank order (ranking.top has m > count).

    noise [B, n] as ranked. Returns (bid [B, n, count], weaker [B, n, count]: 1.0 where i wins
    a tie with it).
    """
    B, n = noise.shape
    m = ranking.top.shape[-1]
    j = torch.arange(count, device=noise.device)
    skip = j + (j >= ranking.position.unsqueeze(-1))  # step over i itself

    def pick(x: Tensor) -> Tensor:
        return x.unsqueeze(1).expand(B, n, m).gather(-1, skip)

    bid, their_noise, who = pick(ranking.top_bid), pick(ranking.top_noise), pick(ranking.top)
    own = noise.unsqueeze(-1)
    me = torch.arange(n, device=noise.device).unsqueeze(-1)
    weaker = (their_noise < own) | ((their_noise == own) & (who > me))
    return bid, weaker.to(bid.dtype)


def sorted_settle(
    alt: Tensor, L: Tensor, ctrs: Tensor, pay_by_slot: Tensor | None
) -> tuple[Tensor, Tensor]:
    """Like `few_slot_settle`, for any number of slots: L [B, n, count] from `thresholds` over
    all others (count >= S, padded with NOBODY), in rank order; ctrs [S]; pay_by_slot
    [B, n, S] or None. Ranks the alternatives with one `torch.searchsorted`."""
    S, count = ctrs.shape[0], L.shape[-1]
    below = torch.searchsorted(L.flip(-1), alt.contiguous())  # thresholds < a, per row
    at = (count - below).clamp_(max=S)  # others (or the reserve) in the way; S = no slot
    allocation = F.pad(ctrs, (0, 1)).take(at)
    if pay_by_slot is None:
        return allocation, _pay_your_bid(allocation, alt)
    return allocation, F.pad(pay_by_slot, (0, 1)).gather(-1, at)


# --------------------------------------------------------------- the mechanisms


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
        return _constant(self.ctrs, like.dtype, like.device)

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
        solve = self._few_slots if S <= FEW_SLOTS.get(bids.device.type, 0) else self._sorted
        return solve(bids, batch.mask, noise, alt, outcome)

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
            rows += thresholds(bid, weaker, reserve_threshold(self.reserve, bids.dtype)[1])
            if self._rule != "first_price":
                # One payment table per advertiser, shared by its K alternatives.
                rows += slot_payments(bid, ctrs, self.reserve, self._rule)[:S]
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
        z, _ = reserve_threshold(self.reserve, bids.dtype)
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
        L = thresholds(bid, weaker, reserve_threshold(self.reserve, bids.dtype)[1])
        pay_by_slot = None
        if self._rule != "first_price":
            pay = slot_payments(bid.movedim(-1, 0), ctrs, self.reserve, self._rule)
            pay_by_slot = pay[:S].movedim(0, -1)
        return out, *sorted_settle(alt, L, ctrs[:S], pay_by_slot)

    def _ranked_outcome(
        self, bids: Tensor, mask: Tensor, ranking: Ranking, ctrs: Tensor
    ) -> Outcome:
        S = len(self.ctrs)
        z, _ = reserve_threshold(self.reserve, bids.dtype)
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
