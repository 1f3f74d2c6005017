"""Advertisers: Mesa agents with a private type, strategies and a ledger.

A market runs R independent replicas of the same advertisers, so an `Advertiser` is one column of
the market's [R, B, n] tensors: its ledger holds one entry per replica. The decisions of all
advertisers of a group are made together by one `AdvertiserGroup` (vectorised strategies over
[R, A]); each agent points at its group's policies and its column in them.
"""

from __future__ import annotations

import mesa
import numpy as np
import torch
from torch import Tensor

from genmarket.strategies.bidding import GridPolicy
from genmarket.strategies.entry import make_entry_rule

LEDGER_FIELDS = ("auctions", "entered", "won", "payment", "utility")


class ValueSampler:
    """Draws true values from uniforms by inverse CDF, so values use the market's counter streams."""

    def __init__(self, dist, device, dtype):
        self.dist = dist
        self.support = dist.support
        if dist.dist == "beta":
            # Beta has no closed-form quantile in torch: tabulate scipy's once, interpolate on device.
            from scipy import stats

            q = np.linspace(0.0, 1.0, 4097)
            table = stats.beta.ppf(q, dist.a, dist.b) * dist.scale
            self._table = torch.tensor(table, device=device, dtype=dtype)

    def __call__(self, u: Tensor) -> Tensor:
        d = self.dist
        if d.dist == "constant":
            return torch.full_like(u, d.value)
        if d.dist == "uniform":
            return u * (d.high - d.low) + d.low
        pos = u * (self._table.numel() - 1)
        lo = pos.floor().long().clamp_(max=self._table.numel() - 2)
        return torch.lerp(self._table[lo], self._table[lo + 1], pos - lo.to(u.dtype))


class AdvertiserGroup:
    """Vectorised decisions of one scenario group: A advertisers in R replicas, columns `cols`.

    `bidder` is the bidding policy (the autobidder when the group delegates); `reporter`, if any,
    picks what value to report to it; `entry` decides participation per round.
    """

    def __init__(self, cfg, index: int, start: int, R: int, device, dtype, full: bool):
        self.cfg, self.index, self.name = cfg, index, cfg.group
        self.A = cfg.count
        self.cols = slice(start, start + self.A)
        self.values = ValueSampler(cfg.value_dist, device, dtype)
        support = self.values.support
        self.reporter = None
        if cfg.report is not None:
            self.reporter = GridPolicy(cfg.report, R, self.A, support, device, dtype)
            lo, hi = support
            rgrid = self.reporter.grid
            support = (lo * float(rgrid.min()), hi * float(rgrid.max()))
        self.bidder = GridPolicy(cfg.strategy, R, self.A, support, device, dtype)
        self.entry = make_entry_rule(cfg.entry, R, self.A, device, dtype, full)
        self.entry_cost = float(cfg.entry_cost)

    def policies(self) -> dict[str, object]:
        out = {"bidder": self.bidder.strategy, "entry": self.entry}
        if self.reporter is not None:
            out["reporter"] = self.reporter.strategy
        return out

    def report(self, v: Tensor, u: Tensor, t: int) -> tuple[Tensor | None, Tensor | None, Tensor]:
        """True values [R, B, A] -> (report ctx, report actions, reported values)."""
        if self.reporter is None:
            return None, None, v
        ctx, actions, reported = self.reporter.act(v, u, t)
        return ctx, actions, reported

    def bids_for_reports(self, v: Tensor, multipliers: Tensor, u_bid: Tensor, t: int) -> Tensor:
        """Bids this group would place if it reported `multipliers * v` (or bid it, when it bids
        directly): v, u_bid [R, B, A], multipliers [G] -> bids [R, B, A, G], same random numbers."""
        alt = v.unsqueeze(-1) * multipliers
        if self.reporter is None:
            return alt
        return self.bidder.bids_at_values(alt, u_bid, t)


def per_group(groups: list[AdvertiserGroup], fn, *tensors: Tensor, dim: int = -1) -> Tensor:
    """Apply fn(group, *its column slices of `tensors`) to every group and concatenate the results
    along the advertiser dimension `dim` (-1 for [..., n] results, 2 for [R, B, n, k])."""
    if len(groups) == 1:
        return fn(groups[0], *tensors)
    return torch.cat([fn(g, *(x[..., g.cols] for x in tensors)) for g in groups], dim=dim)


class Advertiser(mesa.Agent):
    """One advertiser: private type (value distribution), strategies (its group's) and a ledger.

    `column` is its index in the market's tensors. `ledger` returns cumulative totals per replica
    (numpy arrays [R]): auctions held, auctions entered, units won, payments and utility (in value
    units, entry costs included).
    """

    def __init__(self, model: mesa.Model, group: AdvertiserGroup, column: int):
        super().__init__(model)
        self.group = group
        self.group_name = group.name
        self.column = column
        self.value_dist = group.cfg.value_dist

    @property
    def strategy(self):
        """The group's vectorised bidding strategy (this agent is row `column - start` of it)."""
        return self.group.bidder.strategy

    @property
    def ledger(self) -> dict[str, np.ndarray]:
        book = self.model.ledger
        return {k: book[k][:, self.column].cpu().numpy() for k in LEDGER_FIELDS}

    @property
    def record(self) -> dict[str, np.ndarray] | None:
        """This agent's row of the last round (per replica), for the DataCollector."""
        last = self.model.last_round
        if last is None:
            return None
        return {k: v[:, self.column] for k, v in last.items()}
