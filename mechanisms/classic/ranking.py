"""Ranking for the classic auctions: who beats whom, and at which bid, exactly and in batch.

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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

Rule = Literal["first_price", "gsp", "vcg"]

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
