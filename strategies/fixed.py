"""Fixed bidding rules: always play one action of the market's grid.

The market builds the grid so that the chosen index means what the rule says (multiplier 1.0
for ``truthful``, multiplier ``a`` for ``multiplier``, multiplier 1.0 plus ``s`` for ``shift``);
these classes only keep the index.
"""

from __future__ import annotations

import torch
from torch import Tensor

from genmarket.strategies.base import GridFeedback, Strategy, register_strategy


class _FixedAction(Strategy):
    """All probability mass on one action, in every replica, agent and context."""

    learns = False
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
        index: int,
    ) -> None:
        super().__init__(R, A, C, K, device, dtype)
        if not 0 <= index < K:
            label = getattr(self, "name", type(self).__name__)
            raise ValueError(f"{label}: action index {index} is outside the grid [0, {K})")
        self.index = int(index)
        row = torch.zeros(K, device=self.device, dtype=dtype)
        row[self.index] = 1.0
        # a broadcast view, not [R, A, C, K] copies: the policy never changes
        self._p = row.expand(R, A, C, K)

    def policy(self, t: int) -> Tensor:
        """One-hot on ``index``: [R, A, C, K]."""
        return self._p

    def act(self, ctx: Tensor, u: Tensor, t: int) -> Tensor:
        """``index`` for every auction, [R, B, A] long (what the inverse CDF gives, without it)."""
        return torch.full_like(ctx, self.index)

    def update(
        self,
        ctx: Tensor,
        actions: Tensor,
        utility: Tensor,
        active: Tensor,
        grid_utility: Tensor | GridFeedback | None,
        t: int,
    ) -> None:
        """Fixed rules do not learn."""


@register_strategy("truthful")
class Truthful(_FixedAction):
    """Bid the value: the market's grid has multiplier 1.0 at ``truth_index``."""

    def __init__(
        self,
        R: int,
        A: int,
        C: int,
        K: int,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        *,
        truth_index: int = 0,
    ) -> None:
        super().__init__(R, A, C, K, device, dtype, index=truth_index)


@register_strategy("multiplier")
class Multiplier(_FixedAction):
    """Bid ``a`` times the value: the market puts ``a`` into its grid at ``index``.

    ``a`` is kept for the record (manifests, reprs); the decision uses only ``index``.
    """

    def __init__(
        self,
        R: int,
        A: int,
        C: int,
        K: int,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        *,
        a: float = 1.0,
        index: int = 0,
    ) -> None:
        super().__init__(R, A, C, K, device, dtype, index=index)
        self.a = float(a)


@register_strategy("shift")
class Shift(_FixedAction):
    """Bid the value plus ``s`` (at least 0); where advertisers report rewards, report ``r + s``.

    The market's grid holds multiplier 1.0 and adds ``s``; ``s`` is kept for the record.
    """

    def __init__(
        self,
        R: int,
        A: int,
        C: int,
        K: int,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        *,
        s: float = 0.0,
        index: int = 0,
    ) -> None:
        super().__init__(R, A, C, K, device, dtype, index=index)
        self.s = float(s)
