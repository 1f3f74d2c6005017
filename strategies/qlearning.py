"""Stateless (single-state) epsilon-greedy Q-learning, one Q table per (replica, agent, context)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from genmarket.strategies.base import (
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
    compiles = True

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
        # how rows are re-reduced in the one-auction update: only those that need it (finding
        # them syncs an accelerator, which is free on the cpu) or all played rows, then selected
        self.reduce_all_rows = self.device.type != "cpu"
        self._chunk_eps: Tensor | None = None  # epsilon of a compiled chunk's rounds, [T] float64
        self._eps_block: tuple[int, Tensor | None] = (0, None)  # (first round, epsilons)
        self._Qt: Tensor | None = None  # a compiled chunk's transposed table (begin_chunk)
        self._rows = torch.arange(R * A, device=self.device)  # (replica, agent) row numbers
        self._refresh()

    def epsilon(self, t: int) -> float:
        """Exploration probability in round t (a Python float: no device sync).

        Below ``_EPSILON_FLOOR`` it is 0: eps / K would be a subnormal float32, which makes
        every policy op ~10x slower for a mass no uniform draw can resolve."""
        eps = self.epsilon_start * math.exp(-self.epsilon_decay * t)
        return eps if eps >= _EPSILON_FLOOR else 0.0

    def begin_chunk(self, t0: int, T: int) -> None:
        """Epsilon of rounds t0 .. t0 + T - 1 as a float64 tensor, computed by `epsilon` (4,096
        rounds at a time): inside the chunk a round reads it by its index, instead of a Python
        float that would make a new graph every round."""
        start, table = self._eps_block
        if table is None or not (start <= t0 and t0 + T <= start + table.shape[0]):
            eps = [self.epsilon(t) for t in range(t0, t0 + max(T, 4096))]
            start, table = t0, torch.tensor(eps, dtype=torch.float64, device=self.device)
            self._eps_block = (start, table)
        self._chunk_eps = table[t0 - start:t0 - start + T]
        # the table transposed, [K, rows], kept beside Q through the chunk (and the next ones,
        # until an eager round changes Q): a compiled row reduction along the contiguous K is a
        # horizontal vector reduction per row, which took 17 of 37 us a round at 100 sessions;
        # along the rows it is plain vector maxima
        if self._Qt is None:
            self._Qt = self.Q.reshape(-1, self.K).t().contiguous()

    def end_chunk(self) -> None:
        self._chunk_eps = None

    def _update_played(self, ctx: Tensor, actions: Tensor, utility: Tensor, active: Tensor) -> None:
        """Bandit update for one auction per round (B = 1): every (replica, agent) played exactly
        one (context, action) cell, whose mean reward is that auction's utility. Touches only
        those cells instead of the whole [R, A, C, K] table (same numbers as the general path).

        The cached row maximum and first argmax follow incrementally: a cell that beats the
        maximum (ties: the lower index) takes over its row. ``_bound`` holds an upper bound on
        the other cells of the row, so when the greedy cell itself falls the row is re-reduced
        only if it fell to or below that bound: 2 to 20% of the rows per round in the
        benchmark's first-price market, against about half without the bound. The bound is
        exact after a reduction and only loosens in between; the results do not depend on it."""
        RA, C, K = self.R * self.A, self.C, self.K
        c = ctx.reshape(RA, 1)
        k = actions.reshape(RA, 1)
        table = self.Q.view(RA, C * K)  # row (r, a), column ctx * K + action
        col = k if C == 1 else c * K + k
        q = table.gather(1, col)
        caches = (self._max.view(RA, C), self._greedy_idx.view(RA, C), self._bound.view(RA, C))
        best, greedy, bound = caches if C == 1 else (x.gather(1, c) for x in caches)
        target = utility.reshape(RA, 1).to(q.dtype)
        if self.discount != 0.0:
            target = target + self.discount * best  # max Q of the row before the update
        new = torch.where(active.reshape(RA, 1), _lerp(q, target, self.lr), q)
        if self._chunk_eps is None:
            table.scatter_(1, col, new)
            self._Qt = None  # Q changed outside a chunk
        else:  # compiled: index_put_ on the flat table is written in place (scatter_ on a
            # view was copied whole every round, 4,200 numbers at 100 sessions)
            self.Q.view(-1).index_put_((self._rows * (C * K) + col.view(-1),), new.view(-1))
        own = k == greedy
        beats = (new > best) | ((new == best) & (k < greedy))
        takes = beats | own  # the greedy cell keeps its row unless it is re-reduced below
        redo = own & (new <= bound)
        # another cell raises the bound to its new value, or, if it took the row over, to the
        # dethroned maximum
        bound = torch.where(own, bound, torch.maximum(bound, torch.where(beats, best, new)))
        best = torch.where(takes, new, best)
        greedy = torch.where(takes, k, greedy)
        rows = self.Q.view(RA * C, K)
        if self._chunk_eps is not None:  # a compiled chunk: the transposed copy, reduced along K
            at = self._rows if C == 1 else self._row.view(-1) + c.view(-1)  # [RA] table rows
            self._Qt.view(-1).index_put_((k.view(-1) * (RA * C) + at,), new.view(-1))
            top = _top_columns(self._Qt if C == 1 else self._Qt.index_select(1, at))
            best, greedy, bound = (x.view(RA, 1) for x in top)
        elif not (self.reduce_all_rows or torch.compiler.is_compiling()):  # static shapes there
            at = redo.view(-1).nonzero().view(-1)  # no device sync on the cpu
            if at.numel():
                m, g, b = _top(rows.index_select(
                    0, at if C == 1 else (self._row.view(-1) + c.view(-1)).index_select(0, at)))
                for x, y in ((best, m), (greedy, g), (bound, b)):
                    x.view(-1).index_copy_(0, at, y)
        else:  # one fused reduction over the played rows beats a device sync
            played = rows if C == 1 else rows.index_select(0, self._row.view(-1) + c.view(-1))
            redo = redo.view(RA)
            best, greedy, bound = (torch.where(redo, y, x.view(RA)).view(RA, 1)
                                   for x, y in zip((best, greedy, bound), _top(played), strict=True))
        if C == 1:  # the new tensors are the caches (nothing else holds the old ones)
            self._max, self._greedy_idx, self._bound = best.view(-1), greedy.view(-1), bound.view(-1)
        else:
            for cache, x in zip(caches, (best, greedy, bound), strict=True):
                cache.scatter_(1, c, x)

    def _refresh(self) -> None:
        self._Qt = None  # Q changed (loaded, or the general update): transposed again if needed
        # [R * A * C] row maxima, first argmax and the largest other cell; they change only
        # with Q (the last one is an upper bound between refreshes)
        self._max, self._greedy_idx, self._bound = _top(self.Q.reshape(-1, self.K))

    def greedy(self) -> Tensor:
        """argmax Q per (replica, agent, context), [R, A, C] long, ties to the lowest index."""
        return self._greedy_idx.view(self.R, self.A, self.C).clone()

    def policy(self, t: int) -> Tensor:
        """[R, A, C, K] probabilities for round t."""
        onehot = torch.zeros_like(self.Q).scatter_(-1, self.greedy().unsqueeze(-1), 1.0)
        if self._chunk_eps is not None:  # the same float32 operations with epsilon a tensor
            eps = self._chunk_eps[t]
            return onehot.mul_((1.0 - eps).to(self.dtype)).add_((eps / self.K).to(self.dtype))
        eps = self.epsilon(t)
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
        if self._chunk_eps is not None:  # a compiled chunk: epsilon a float64 tensor
            eps = self._chunk_eps[t]
            zero = eps == 0.0
            return torch.where(zero, g, _draw(g, u, eps, self.K / torch.where(zero, 1.0, eps)))
        eps = self.epsilon(t)
        if eps == 0.0:
            return g
        return _draw(g, u, eps, self.K / eps)

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
        # _lerp(Q, target, 1) is exactly target, so lr = 1 stores the last mean reward
        self.Q = torch.where(used, _lerp(self.Q, target, self.lr), self.Q)
        self._refresh()


def _draw(g: Tensor, u: Tensor, eps: float | Tensor, scale: float | Tensor) -> Tensor:
    """`QLearning.act`'s closed form for eps > 0 (a float, or a float64 tensor in a compiled
    chunk: the same float64 operations) and scale = K / eps: actions [R, B, A] long."""
    x = u.to(torch.float64) * scale
    before = x.floor()
    # (u - 1 + eps) K / eps < K since u < 1: the max below is at most K - 1, and `before`
    # (possibly beyond the long range when eps is tiny) is taken only when it is below g
    after = (x - (1.0 - eps) * scale).floor()
    gf = g.to(torch.float64)
    return torch.where(before < gf, before, torch.maximum(after, gf)).long()


def _lerp(start: Tensor, end: Tensor, weight: float) -> Tensor:
    """start + weight (end - start) as torch.lerp defines it (from the end above weight 0.5, so
    that weight 1 gives `end` exactly), in separately rounded operations: torch.lerp's cpu
    kernel fuses the multiply-add (one rounding) in its vector loop but not in the tail, and a
    compiled round would round each operation, so 11% of float32 results would differ."""
    if weight < 0.5:
        return start + weight * (end - start)
    return end - (1.0 - weight) * (end - start)


def _top_columns(cols: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """`_top` of the rows of cols.t(), from cols [K, N]: maximum, first index of it and the
    maximum of the other cells of each column, three [N] tensors (the same numbers)."""
    m = cols.amax(0, keepdim=True)
    k = torch.arange(cols.shape[0], device=cols.device).view(-1, 1)
    g = torch.where(cols == m, k, cols.shape[0]).amin(0, keepdim=True)
    rest = torch.where(k == g, float("-inf"), cols).amax(0)
    return m.view(-1), g.view(-1), rest


def _top(rows: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Row maximum, its first index and the maximum of the other cells (-inf for one column)
    of rows [N, K]: three [N] tensors."""
    m, g = rows.max(-1)
    rest = rows.scatter(-1, g.unsqueeze(-1), float("-inf")).amax(-1)
    return m, g, rest
