"""Stateless (single-state) epsilon-greedy Q-learning, one Q table per (replica, agent, context)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from strategies.base import (
    GridFeedback,
    Strategy,
    bucket_action_sum,
    grid_mean,
    register_strategy,
)

_EPSILON_FLOOR = 1e-30


@register_strategy("qlearning")
class QLearning(Strategy):
    """Q-learning over K actions with one state per context.

    Q [R, A, C, K] in utility units, starts at ``q0``. Policy in round t: epsilon_t / K on
    every action plus 1 - epsilon_t on argmax Q (ties to the lowest index), with
    epsilon_t = epsilon_start * exp(-epsilon_decay * t).
    Bandit update, once per round for each (context, action) played by an active auction:
    Q[k] += lr * (r_bar + discount * max Q - Q[k]), r_bar the mean utility of those auctions.
    Full feedback updates every action of every context that had an active auction with its
    bucket-mean counterfactual utility.
    """

    state_names = ("Q",)

    def __init__(
        self,
        R: int,
        A: int,
        C: int,
        K: int,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        *,
        lr: float = 0.1,
        discount: float = 0.0,
        q0: float = 0.0,
        epsilon_start: float = 1.0,
        epsilon_decay: float = 1e-3,
    ) -> None:
        super().__init__(R, A, C, K, device, dtype)
        if not 0.0 <= epsilon_start <= 1.0:
            raise ValueError(f"qlearning: epsilon_start = {epsilon_start}: must be in [0, 1]")
        self.lr = float(lr)
        self.discount = float(discount)
        self.q0 = float(q0)
        self.epsilon_start = float(epsilon_start)
        self.epsilon_decay = float(epsilon_decay)
        self.Q = torch.full((R, A, C, K), self.q0, device=self.device, dtype=dtype)
        self._refresh()

    def epsilon(self, t: int) -> float:
        """Exploration probability in round t (a Python float: no device sync).

        Below ``_EPSILON_FLOOR`` it is 0: eps / K would be a subnormal float32, which makes
        every policy op ~10x slower for a mass no uniform draw can resolve."""
        eps = self.epsilon_start * math.exp(-self.epsilon_decay * t)
        return eps if eps >= _EPSILON_FLOOR else 0.0

    def _update_played(self, ctx: Tensor, actions: Tensor, utility: Tensor, active: Tensor) -> None:
        """Bandit update for one auction per round (B = 1): every (replica, agent) played exactly
        one (context, action) cell, whose mean reward is that auction's utility. Touches only
        those cells instead of the whole [R, A, C, K] table (same numbers as the general path),
        and keeps the cached row maxima and greedy actions up to date incrementally."""
        RA, C, K = self.R * self.A, self.C, self.K
        c = ctx.reshape(RA, 1)
        k = actions.reshape(RA, 1)
        table = self.Q.view(RA, C * K)  # row (r, a), column ctx * K + action
        col = k if C == 1 else c * K + k
        q = table.gather(1, col)
        best_all, greedy_all = self._max.view(RA, C), self._greedy_idx.view(RA, C)
        best = best_all if C == 1 else best_all.gather(1, c)
        greedy = greedy_all if C == 1 else greedy_all.gather(1, c)
        target = utility.reshape(RA, 1).to(q.dtype)
        if self.discount != 0.0:
            target = target + self.discount * best  # max Q of the row before the update
        new = torch.where(active.reshape(RA, 1), torch.lerp(q, target, self.lr), q)
        table.scatter_(1, col, new)
        # The new cell takes over the row if it beats its maximum (ties: the lower index).
        # If the greedy cell itself fell, the row's maximum may now be elsewhere: re-reduce
        # those rows only.
        takes = (new > best) | ((new == best) & (k < greedy))
        fell = (k == greedy) & (new < best)
        best = torch.where(takes, new, best)
        greedy = torch.where(takes, k, greedy)
        rows = self.Q.view(RA * C, K)
        if self.Q.device.type == "cpu":
            redo = fell.view(-1).nonzero().view(-1)  # no device sync on the cpu; a fraction
            if redo.numel():
                at = redo if C == 1 else (self._row.view(-1) + c.view(-1)).index_select(0, redo)
                m, g = rows.index_select(0, at).max(-1)
                best.view(-1).index_copy_(0, redo, m)
                greedy.view(-1).index_copy_(0, redo, g)
        else:  # one fused reduction over the played rows beats a device sync
            played = rows if C == 1 else rows.index_select(0, self._row.view(-1) + c.view(-1))
            m, g = played.max(-1)
            fell = fell.view(-1)
            best = torch.where(fell, m, best.view(-1)).view(RA, 1)
            greedy = torch.where(fell, g, greedy.view(-1)).view(RA, 1)
        if C == 1:
            self._max.view(RA, 1).copy_(best)
            self._greedy_idx.view(RA, 1).copy_(greedy)
        else:
            best_all.scatter_(1, c, best)
            greedy_all.scatter_(1, c, greedy)

    def _refresh(self) -> None:
        # row maxima and greedy actions (first maximum), [R * A * C]; they change only with Q
        m, g = self.Q.reshape(-1, self.K).max(-1)
        self._max, self._greedy_idx = m, g

    def greedy(self) -> Tensor:
        """argmax Q per (replica, agent, context), [R, A, C] long, ties to the lowest index."""
        return self._greedy_idx.view(self.R, self.A, self.C).clone()

    def policy(self, t: int) -> Tensor:
        """[R, A, C, K] probabilities for round t."""
        eps = self.epsilon(t)
        onehot = torch.zeros_like(self.Q).scatter_(-1, self.greedy().unsqueeze(-1), 1.0)
        if eps == 0.0:
            return onehot
        return onehot.mul_(1.0 - eps).add_(eps / self.K)

    def act(self, ctx: Tensor, u: Tensor, t: int) -> Tensor:
        """The inverse CDF of the epsilon-greedy policy in closed form (see :meth:`Strategy.act`).

        With g the greedy action, cdf[k] = (k + 1) eps / K for k < g and that plus 1 - eps from
        g on, so the first k with cdf[k] > u is floor(u K / eps) when that is below g, else
        max(g, floor((u - 1 + eps) K / eps)). A few ops on [R, B, A] instead of a cumulative sum
        and a search over [R, A, C, K]. Computed in float64 so that float rounding agrees with
        the search except, at most, on a set of u of measure ~1e-16.
        Returns actions [R, B, A] long in [0, K).
        """
        if self.C == 1:
            g = self._greedy_idx.view(self.R, 1, self.A).expand(ctx.shape)
        else:
            g = self._greedy_idx[(self._row + ctx).reshape(-1)].view(ctx.shape)
        eps = self.epsilon(t)
        if eps == 0.0:
            return g
        scale = self.K / eps
        v = u.to(torch.float64)
        # clamped in float: u K / eps can exceed the long range when eps is tiny
        before = (v * scale).floor_().clamp_(max=self.K).long()
        after = ((v - (1.0 - eps)) * scale).floor_().clamp_(-1.0, self.K - 1).long()
        return torch.where(before < g, before, torch.maximum(after, g))

    def update(
        self,
        ctx: Tensor,
        actions: Tensor,
        utility: Tensor,
        active: Tensor,
        grid_utility: Tensor | GridFeedback | None,
        t: int,
    ) -> None:
        """See :meth:`Strategy.update`."""
        if grid_utility is None and ctx.shape[1] == 1:
            self._update_played(ctx, actions, utility, active)
            return
        if grid_utility is None:
            sums, count = bucket_action_sum(utility, ctx, actions, active, self.C, self.K)
            r_bar = sums / count.clamp_min(1)
            used = count > 0
        else:
            r_bar, count = grid_mean(grid_utility, ctx, active, self.C)
            used = (count > 0).unsqueeze(-1)
        target = r_bar
        if self.discount != 0.0:
            # stateless: the next state is this one, so bootstrap from the current max Q
            target = r_bar + self.discount * self.Q.amax(-1, keepdim=True)
        # lerp(Q, target, 1) is exactly target, so lr = 1 stores the last mean reward
        self.Q = torch.where(used, torch.lerp(self.Q, target, self.lr), self.Q)
        self._refresh()
