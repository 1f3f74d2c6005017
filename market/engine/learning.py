"""Full-information feedback for grid learners: every grid action's utility, summed per context.

Shared by every family's adapter: a learner's `update` takes a `GridFeedback` (sums [R, A, C, K]
and counts [R, A, C]) rather than the [R, B, A, K] utilities themselves.
"""

from __future__ import annotations

import torch
from torch import Tensor

from genmarket.strategies.base import GridFeedback

__all__ = ["context_weights", "grid_feedback", "grid_feedback_from_utility"]


def context_weights(ctx: Tensor, active: Tensor, C: int, dtype: torch.dtype) -> Tensor:
    """Which context each active auction counts for: [R, B, A, C] 0/1 weights (C = 1: active)."""
    w = active.to(dtype).unsqueeze(-1)
    return w * torch.nn.functional.one_hot(ctx, C).to(dtype) if C > 1 else w


def grid_feedback(value: Tensor, alloc: Tensor, pay: Tensor, ctx: Tensor, active: Tensor,
                  C: int) -> GridFeedback:
    """Per-context sums of every grid action's utility `value * alloc - pay`, without building
    the [R, B, A, K] utilities: two batched matrix products over the auctions.

    value [R, B, A] (the value the learner maximises), alloc, pay [R, B, A, K], ctx [R, B, A] long,
    active [R, B, A] bool. Returns GridFeedback(sums [R, A, C, K], count [R, A, C]).
    """
    w = context_weights(ctx, active, C, value.dtype)
    sums = torch.einsum("rbac,rbak->rack", w * value.unsqueeze(-1), alloc)
    sums -= torch.einsum("rbac,rbak->rack", w, pay)
    return GridFeedback(sums, w.sum(1))


def grid_feedback_from_utility(utility: Tensor, ctx: Tensor, active: Tensor, C: int) -> GridFeedback:
    """Per-context sums of every grid action's utility. utility [R, B, A, K], ctx [R, B, A] long,
    active [R, B, A] bool -> GridFeedback(sums [R, A, C, K], count [R, A, C])."""
    w = context_weights(ctx, active, C, utility.dtype)
    return GridFeedback(torch.einsum("rbac,rbak->rack", w, utility), w.sum(1))
