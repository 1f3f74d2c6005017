"""Strategy base class, the strategy registry and the per-context averages learners use.

A strategy is vectorised over replicas ``R`` (independent copies of the market), the
advertisers ``A`` of one group and contexts ``C`` (value buckets; ``C = 1`` when not
contextual). It picks one of ``K`` actions, indices into a grid the market owns (value
multipliers or absolute bids; the strategy never sees the grid). Within a round the policy is
fixed; the market draws each auction's action by inverse CDF with uniforms it controls, then
feeds the round's utilities back through :meth:`Strategy.update`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, TypeVar

import torch
from torch import Tensor

from genmarket.market.registry import Registry

ENTRY_POINT_GROUP = "genmarket.strategies"

def _check(cls) -> str | None:
    ok = isinstance(cls, type) and issubclass(cls, Strategy)
    return None if ok else "is not a Strategy subclass"


def _name_class(name: str, cls) -> None:
    cls.name = name


STRATEGIES: Registry[type[Strategy]] = Registry("strategy", ENTRY_POINT_GROUP, _check, _name_class)

S = TypeVar("S", bound="type[Strategy]")


def register_strategy(name: str) -> Callable[[S], S]:
    """Class decorator: add a strategy class to :data:`STRATEGIES` under ``name``."""
    return STRATEGIES.register(name)


def get_strategy(name: str) -> type[Strategy]:
    """The strategy class registered as ``name``, else one from the entry-point group
    ``genmarket.strategies``. An unknown name raises ``ValueError`` listing the known ones."""
    return STRATEGIES.lookup(name)


class Strategy:
    """Base class of every bidding / reporting strategy.

    Subclasses take their parameters as keyword arguments, build their state in ``__init__``,
    list the tensors that make up that state in ``state_names`` (so that
    :meth:`state_dict` / :meth:`load_state_dict` come for free) and implement :meth:`policy`
    and :meth:`update`. ``_refresh`` recomputes anything cached from the state (called after
    :meth:`load_state_dict`).
    """

    name: ClassVar[str]
    needs_full_feedback: ClassVar[bool] = False
    learns: ClassVar[bool] = True
    state_names: ClassVar[tuple[str, ...]] = ()
    # whether a compiled chunk of rounds may run this strategy (`genmarket.market.engine.compiled`):
    # its act, policy and update have no graph break or host sync, read the round only through
    # `t` and the state tensors (a schedule: see `begin_chunk`), and give the eager numbers bit
    # for bit under inductor; checked by tests/test_compiled.py for each strategy that sets it
    compiles: ClassVar[bool] = False

    def __init__(
        self,
        R: int,
        A: int,
        C: int,
        K: int,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        **params: object,
    ) -> None:
        if params:
            known = getattr(self, "name", type(self).__name__)
            raise TypeError(
                f"strategy {known!r} got unknown parameters: {', '.join(sorted(params))}"
            )
        for label, size in (("R", R), ("A", A), ("C", C), ("K", K)):
            if size < 1:
                raise ValueError(f"{label} = {size}: must be >= 1")
        self.R, self.A, self.C, self.K = R, A, C, K
        self.device = torch.device(device)
        self.dtype = dtype
        # flat row of (replica, agent, context 0) in a [R, A, C, ...] tensor, shaped [R, 1, A]
        # so that `_row + ctx` indexes the (r, a, ctx) row of every auction of a round
        rows = torch.arange(R * A, device=self.device).view(R, 1, A)
        self._row = rows * C

    # -- decisions -------------------------------------------------------------------------
    def policy(self, t: int) -> Tensor:
        """Action probabilities for round ``t``: [R, A, C, K], each row sums to 1.

        The returned tensor may be the strategy's own cache: read it, do not modify it."""
        raise NotImplementedError

    def cdf(self, t: int) -> Tensor:
        """Cumulative ``policy(t)`` along actions, [R, A, C, K]; learners whose policy is
        constant within a round override this with a cached tensor."""
        return self.policy(t).cumsum(-1)

    def act(self, ctx: Tensor, u: Tensor, t: int) -> Tensor:
        """Draw one action per auction by inverse CDF of the policy row of its context.

        ctx [R, B, A] long in [0, C); u [R, B, A] uniforms in [0, 1).
        Returns actions [R, B, A] long in [0, K): the first k with cdf[k] > u * cdf[K-1]
        (scaling by the row total keeps float rounding from landing on a zero-mass action).
        """
        K = self.K
        if self.C == 1:
            # one context: search each (replica, agent) row once for all its auctions, instead
            # of copying a K-wide row per auction (the same comparisons, so the same actions)
            R, B, A = ctx.shape
            cdf = self.cdf(t).reshape(R * A, K).contiguous()
            u = u.to(cdf.dtype).permute(0, 2, 1).reshape(R * A, B)
            actions = torch.searchsorted(cdf, (u * cdf[:, -1:]).contiguous(), right=True)
            return actions.clamp_(max=K - 1).view(R, A, B).permute(0, 2, 1)
        rows = self.cdf(t).reshape(-1, K).index_select(0, (self._row + ctx).reshape(-1))
        u = u.reshape(-1, 1).to(rows.dtype)
        actions = torch.searchsorted(rows, u * rows[:, -1:], right=True)
        return actions.clamp_(max=K - 1).view(ctx.shape)

    def update(
        self,
        ctx: Tensor,
        actions: Tensor,
        utility: Tensor,
        active: Tensor,
        grid_utility: Tensor | GridFeedback | None,
        t: int,
    ) -> None:
        """Learn from round ``t``.

        ctx, actions [R, B, A] long; utility [R, B, A] (true utility of the auction, money
        units); active [R, B, A] bool, False where the advertiser did not enter (the auction
        then counts for nothing); grid_utility [R, B, A, K] counterfactual utility of every
        action on the same auctions (full feedback) or None (bandit feedback).
        Contexts with no active auction are left unchanged.
        """
        raise NotImplementedError

    def begin_chunk(self, t0: int, T: int) -> None:
        """Before a compiled chunk of rounds t0 .. t0 + T - 1, inside which `t` is the round's
        index in the chunk (0 .. T - 1): a strategy whose rounds depend on t (a schedule) stores
        the values of those rounds as tensors here and reads them by index."""

    def end_chunk(self) -> None:
        """After a compiled chunk: `t` is the round again."""

    # -- persistence -----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Tensor]:
        """Copies of every state tensor (counters included): enough to resume bit-identically."""
        return {key: getattr(self, key).clone() for key in self.state_names}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Restore the state written by :meth:`state_dict` (any device; copied into place)."""
        if set(state) != set(self.state_names):
            raise KeyError(
                f"strategy {self.name!r} state has keys {sorted(state)}, "
                f"expected {sorted(self.state_names)}"
            )
        for key in self.state_names:
            own = getattr(self, key)
            if tuple(state[key].shape) != tuple(own.shape):
                raise ValueError(
                    f"strategy {self.name!r} state {key!r} has shape {tuple(state[key].shape)}, "
                    f"expected {tuple(own.shape)}"
                )
            own.copy_(state[key])
        self._refresh()

    def _refresh(self) -> None:
        """Recompute caches derived from the state tensors."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(R={self.R}, A={self.A}, C={self.C}, K={self.K})"


# -- per-context sums and means --------------------------------------------------------------
# Off the cpu, scatter_add accumulates floats with atomics, so its rounding (and a resumed run)
# would differ from run to run. There the sums go through a dense one-hot mask and an ordinary
# reduction over auctions instead: more memory ([R, B, A, cells]) but bit-repeatable.


def _dense_sum(kept: Tensor, weight: Tensor, cell: Tensor, cells: int) -> tuple[Tensor, Tensor]:
    """Deterministic per-cell sums. kept [R, B, A] or [R, B, A, K] (zero where inactive);
    weight [R, B, A] (1 where active); cell [R, B, A] long in [0, cells).
    Returns (sums [R, A, cells] or [R, A, cells, K], count [R, A, cells])."""
    onehot = (cell.unsqueeze(-1) == torch.arange(cells, device=cell.device)).to(kept.dtype)
    count = (onehot * weight.unsqueeze(-1)).sum(1)
    if kept.dim() == 4:
        return (onehot.unsqueeze(-1) * kept.unsqueeze(-2)).sum(1), count
    return (onehot * kept.unsqueeze(-1)).sum(1), count


def bucket_sum(values: Tensor, ctx: Tensor, active: Tensor, C: int) -> tuple[Tensor, Tensor]:
    """Sum of ``values`` over the active auctions of each context and their number.

    values [R, B, A] or [R, B, A, K]; ctx [R, B, A] long; active [R, B, A] bool.
    Returns (sums [R, A, C] or [R, A, C, K], count [R, A, C] in values' dtype).
    """
    R, B, A = ctx.shape
    full = values.dim() == 4
    mask = active.unsqueeze(-1) if full else active
    # where, not multiply: an inactive entry may hold inf/NaN and must count for nothing
    kept = torch.where(mask, values, 0.0)
    weight = active.to(values.dtype)
    if C == 1:
        # one context: a plain reduction, cheaper than scatter and deterministic everywhere
        return kept.sum(1).unsqueeze(2), weight.sum(1).unsqueeze(2)
    if ctx.device.type != "cpu":
        return _dense_sum(kept, weight, ctx, C)
    index = ctx.transpose(1, 2)  # [R, A, B]
    count = weight.new_zeros(R, A, C).scatter_add_(2, index, weight.transpose(1, 2))
    if full:
        K = values.shape[-1]
        sums = values.new_zeros(R, A, C, K).scatter_add_(
            2, index.unsqueeze(-1).expand(R, A, B, K), kept.transpose(1, 2)
        )
    else:
        sums = values.new_zeros(R, A, C).scatter_add_(2, index, kept.transpose(1, 2))
    return sums, count


def bucket_mean(values: Tensor, ctx: Tensor, active: Tensor, C: int) -> tuple[Tensor, Tensor]:
    """Mean of ``values`` over the active auctions of each context.

    values [R, B, A] or [R, B, A, K]; ctx [R, B, A] long in [0, C); active [R, B, A] bool.
    Returns (mean [R, A, C] or [R, A, C, K], count [R, A, C] in values' dtype). A context with
    no active auction has mean 0 and count 0.
    """
    sums, count = bucket_sum(values, ctx, active, C)
    denom = count.clamp_min(1)
    return sums / (denom.unsqueeze(-1) if values.dim() == 4 else denom), count


@dataclass(frozen=True)
class GridFeedback:
    """Full-information feedback already summed per context, so the market never has to build
    the [R, B, A, K] grid of utilities: sums [R, A, C, K] of every action's utility over the
    round's active auctions of each context, and count [R, A, C] of those auctions."""

    sums: Tensor
    count: Tensor


def grid_sums(grid: Tensor | GridFeedback, ctx: Tensor, active: Tensor, C: int) -> tuple[Tensor, Tensor]:
    """(sums [R, A, C, K], count [R, A, C]) from a grid [R, B, A, K] or a `GridFeedback`."""
    if isinstance(grid, GridFeedback):
        return grid.sums, grid.count
    return bucket_sum(grid, ctx, active, C)


def grid_mean(grid: Tensor | GridFeedback, ctx: Tensor, active: Tensor, C: int) -> tuple[Tensor, Tensor]:
    """(mean [R, A, C, K], count [R, A, C]) from a grid [R, B, A, K] or a `GridFeedback`;
    a context with no active auction has mean 0."""
    if isinstance(grid, GridFeedback):
        return grid.sums / grid.count.clamp_min(1).unsqueeze(-1), grid.count
    return bucket_mean(grid, ctx, active, C)


def bucket_action_sum(
    values: Tensor, ctx: Tensor, actions: Tensor, active: Tensor, C: int, K: int
) -> tuple[Tensor, Tensor]:
    """Sum of ``values`` over the active auctions of each (context, action) pair.

    values [R, B, A]; ctx, actions [R, B, A] long; active [R, B, A] bool.
    Returns (sums [R, A, C, K], count [R, A, C, K] in values' dtype).
    """
    R, B, A = ctx.shape
    cell = actions if C == 1 else ctx * K + actions  # [R, B, A]
    weight = active.to(values.dtype)
    kept = torch.where(active, values, 0.0)
    if ctx.device.type != "cpu":
        sums, count = _dense_sum(kept, weight, cell, C * K)
        return sums.view(R, A, C, K), count.view(R, A, C, K)
    cell = cell.transpose(1, 2)  # [R, A, B]
    sums = values.new_zeros(R, A, C * K).scatter_add_(2, cell, kept.transpose(1, 2))
    count = weight.new_zeros(R, A, C * K).scatter_add_(2, cell, weight.transpose(1, 2))
    return sums.view(R, A, C, K), count.view(R, A, C, K)
