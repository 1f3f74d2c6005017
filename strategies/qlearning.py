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
        those cells instead of the whole [R, A, C, K] table (same numbers as the general path)."""
        row = (self._row + ctx).reshape(-1)  # [R * A] rows of the (replica, agent, context) table
        cell = row * self.K + actions.reshape(-1)
        flat = self.Q.view(-1)
        q = flat[cell]
        target = utility.reshape(-1).to(q.dtype)
        if self.discount != 0.0:
            target = target + self.discount * self.Q.amax(-1).view(-1)[row]
        flat[cell] = torch.where(active.reshape(-1), torch.lerp(q, target, self.lr), q)
        self._refresh()

    def _refresh(self) -> None:
        # the greedy one-hot changes only when Q does; the policy mixes it with epsilon(t)
        greedy = self.Q.max(-1, keepdim=True).indices  # first maximum; faster than argmax on CPU
        # a fresh tensor, not in place: policy() may have handed the old one out
        self._greedy = torch.zeros_like(self.Q).scatter_(-1, greedy, 1.0)

    def greedy(self) -> Tensor:
        """argmax Q per (replica, agent, context), [R, A, C] long, ties to the lowest index."""
        return self._greedy.argmax(-1)

    def policy(self, t: int) -> Tensor:
        """[R, A, C, K] probabilities for round t."""
        eps = self.epsilon(t)
        if eps == 0.0:
            return self._greedy
        return self._greedy.mul(1.0 - eps).add_(eps / self.K)

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
