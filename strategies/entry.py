"""Entry rules: whether each advertiser takes part in this round's auctions, vectorised over [R, A].

Every rule maps per-round uniforms to an `entered` mask and learns from the round's mean
per-auction utility of entering (net of the entry cost) against the outside option, which is 0
in classic auctions. `observed` says where that utility is known: always for entrants, and for
those who stayed out only under full-information feedback (a counterfactual on the same auctions).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch
from torch import Tensor

from genmarket.strategies.base import get_strategy


class EntryRule(ABC):
    name: ClassVar[str]

    def __init__(self, cfg, R: int, A: int, device, dtype, full: bool = False):
        self.R, self.A, self.device, self.dtype = R, A, torch.device(device), dtype
        self.full = full  # full-information feedback: the gain is observed for everyone

    @abstractmethod
    def decide(self, u: Tensor, t: int) -> Tensor:
        """u [R, A] uniforms -> entered [R, A] bool."""

    def enter_probability(self, t: int) -> Tensor | None:
        """The probability of entering round t, [R, A]; None for a rule that does not learn."""
        return None

    def update(self, entered: Tensor, gain: Tensor, observed: Tensor, t: int) -> None:  # noqa: B027
        """gain [R, A]: mean utility per auction of entering minus that of staying out.
        Fixed rules learn nothing, so the base update leaves them as they are."""

    def state_dict(self) -> dict[str, Tensor]:
        return {}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:  # noqa: B027
        """Fixed rules have no state to restore."""


class Always(EntryRule):
    name = "always"

    def decide(self, u: Tensor, t: int) -> Tensor:
        return torch.ones(u.shape, dtype=torch.bool, device=u.device)


class Never(EntryRule):
    name = "never"

    def decide(self, u: Tensor, t: int) -> Tensor:
        return torch.zeros(u.shape, dtype=torch.bool, device=u.device)


class Threshold(EntryRule):
    """Enter while an EMA of the gain from entering is positive, or with probability `explore`."""

    name = "threshold"

    def __init__(self, cfg, R, A, device, dtype, full=False):
        super().__init__(cfg, R, A, device, dtype, full)
        self.alpha, self.explore = cfg.alpha, cfg.explore
        self.estimate = torch.full((R, A), float(cfg.initial), device=self.device, dtype=dtype)

    def decide(self, u: Tensor, t: int) -> Tensor:
        return (self.estimate > 0) | (u < self.explore)

    def enter_probability(self, t: int) -> Tensor:
        return torch.where(self.estimate > 0, 1.0, float(self.explore)).to(self.dtype)

    def update(self, entered, gain, observed, t):
        new = torch.lerp(self.estimate, gain.to(self.dtype), self.alpha)
        self.estimate = torch.where(observed, new, self.estimate)

    def state_dict(self):
        return {"estimate": self.estimate}

    def load_state_dict(self, state):
        self.estimate = state["estimate"].to(self.device, self.dtype)


class Learned(EntryRule):
    """A two-action learner (0 = stay out, 1 = enter); staying out is worth 0."""

    name = "learned"

    def __init__(self, cfg, R, A, device, dtype, full=False):
        super().__init__(cfg, R, A, device, dtype, full)
        lcfg = cfg.learner
        self.strategy = get_strategy(lcfg.kind)(
            R, A, 1, 2, device=self.device, dtype=dtype, **lcfg.params()
        )
        self._ctx = torch.zeros((R, 1, A), dtype=torch.long, device=self.device)

    def decide(self, u: Tensor, t: int) -> Tensor:
        return self.strategy.act(self._ctx, u.unsqueeze(1), t).squeeze(1) == 1

    def enter_probability(self, t: int) -> Tensor:
        return self.strategy.policy(t)[:, :, 0, 1]

    def update(self, entered, gain, observed, t):
        actions = entered.long().unsqueeze(1)
        utility = torch.where(entered, gain, torch.zeros_like(gain)).unsqueeze(1)
        grid = None
        if self.full:
            grid = torch.stack([torch.zeros_like(gain), gain], dim=-1).unsqueeze(1)
        active = torch.ones_like(actions, dtype=torch.bool)
        self.strategy.update(self._ctx, actions, utility, active, grid, t)

    def state_dict(self):
        return {f"learner.{k}": v for k, v in self.strategy.state_dict().items()}

    def load_state_dict(self, state):
        self.strategy.load_state_dict(
            {k[8:]: v for k, v in state.items() if k.startswith("learner.")}
        )


ENTRY_RULES: dict[str, type[EntryRule]] = {r.name: r for r in (Always, Never, Threshold, Learned)}


def make_entry_rule(cfg, R: int, A: int, device, dtype, full: bool = False) -> EntryRule:
    """The entry rule for a group's `entry` config, over R replicas and A advertisers."""
    return ENTRY_RULES[cfg.kind](cfg, R, A, device, dtype, full)
