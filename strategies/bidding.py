"""What a group of advertisers bids: a strategy over an action grid, with value buckets as contexts.

`BidPolicy` turns the group's config into a vectorised `Strategy` plus the grid its actions index:
multipliers of the (reported) value, or absolute bids. Fixed rules are one-action grids (`truthful`
is multiplier 1, `multiplier` is multiplier `a`), so every group goes through the same code.
`ReportPolicy` is the same thing one level up, for advertisers who delegate bidding to an
autobidder and only choose what value to report to it: its actions are report multipliers.
"""

from __future__ import annotations

import torch
from torch import Tensor

from genmarket.strategies.base import get_strategy


class GridPolicy:
    """A `Strategy` over a grid of K multipliers (or absolute bids) with C value-bucket contexts.

    R replicas, A advertisers. `support` is (low, high) of the values that pick the context.
    """

    def __init__(self, cfg, R: int, A: int, support: tuple[float, float], device, dtype):
        self.device, self.dtype = torch.device(device), dtype
        kind = cfg.kind
        self.shift = float(cfg.s) if kind == "shift" else 0.0  # added to every bid (or report)
        if kind in ("truthful", "shift"):
            points, absolute, C, params = [1.0], False, 1, {}
        elif kind == "multiplier":
            points, absolute, C, params = [float(cfg.a)], False, 1, {}
        else:
            points, absolute, C, params = cfg.grid.points(), cfg.absolute, cfg.buckets, cfg.params()
        self.kind = kind
        self.grid = torch.tensor(points, device=self.device, dtype=dtype)  # [K]
        self.absolute = absolute
        self.K, self.C = len(points), C
        lo, hi = support
        self.low, self.width = float(lo), float(hi - lo)
        self.strategy = get_strategy(kind)(
            R, A, C, self.K, device=self.device, dtype=dtype, **params
        )
        self.learns = bool(self.strategy.learns)
        self.needs_full = bool(self.strategy.needs_full_feedback)

    def contexts(self, value: Tensor) -> Tensor:
        """Value bucket of each value [..., A] -> long [..., A] in [0, C)."""
        if self.C == 1 or self.width <= 0:
            return torch.zeros(value.shape, dtype=torch.long, device=value.device)
        idx = ((value - self.low) * (self.C / self.width)).floor().long()
        return idx.clamp_(0, self.C - 1)

    def bids(self, actions: Tensor, value: Tensor) -> Tensor:
        """Bid for each action index and value (same shape); never negative."""
        chosen = self.grid[actions]
        bid = chosen if self.absolute else chosen * value
        return (bid + self.shift).clamp_min(0.0) if self.shift else bid

    def grid_bids(self, value: Tensor) -> Tensor:
        """Bid of every action for each value: [..., A] -> [..., A, K]."""
        if self.absolute:
            return self.grid.expand(*value.shape, self.K)
        bids = value.unsqueeze(-1) * self.grid
        return (bids + self.shift).clamp_min(0.0) if self.shift else bids

    def act(self, value: Tensor, u: Tensor, t: int) -> tuple[Tensor, Tensor, Tensor]:
        """value, u [R, B, A] -> (ctx, actions, bids), each [R, B, A]."""
        ctx = self.contexts(value)
        actions = self.strategy.act(ctx, u, t)
        return ctx, actions, self.bids(actions, value)

    def bids_at_values(self, values: Tensor, u: Tensor, t: int) -> Tensor:
        """Bids this policy would place for alternative values, with the same uniforms.

        values [R, B, A, G], u [R, B, A] -> bids [R, B, A, G]. Uses inverse-CDF sampling with the
        auction's own uniform, so the counterfactual differs from the real bid only through the value.
        """
        R, B, A, G = values.shape
        flat = values.permute(0, 1, 3, 2).reshape(R, B * G, A)
        uu = u.unsqueeze(2).expand(R, B, G, A).reshape(R, B * G, A)
        _, _, bids = self.act(flat, uu, t)
        return bids.reshape(R, B, G, A).permute(0, 1, 3, 2)
