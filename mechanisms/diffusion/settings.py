"""The diffusion image auction's `[mechanism]` section (kind = "diffusion") and the rules a
diffusion scenario must follow."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from genmarket.market.scenario.base import Strict

__all__ = ["MAX_FULL_VARIANTS", "DiffusionSettings", "check", "grid_variants"]

# Full feedback re-draws every auction once per (learning advertiser, grid bid): the learners'
# grid feedback is exact only by re-generation. Above this many re-runs per auction a scenario
# must use bandit feedback (the summary window's diagnostics still re-draw, on its rounds only).
MAX_FULL_VARIANTS = 256


class DiffusionSettings(Strict):
    """`[mechanism]` of the diffusion image auction: `samples` — k images drawn per run (the
    Monte Carlo allocation keeps the best of them by bid-welfare); `baseline` — also run the
    paper's single-winner VCG baseline on the same noise, for the welfare-gain metrics;
    `clamp` — clamp each payment to [0, max(b_i alpha_i, 0)] (the raw Monte Carlo VCG payment
    can be negative or exceed the bidder's contribution); `composition` — the weights'
    "closed_form" or the paper's "recursion" (equal up to rounding)."""

    kind: Literal["diffusion"]
    samples: Annotated[int, Field(ge=1, le=4096)] = 25
    baseline: bool = True
    clamp: bool = True
    composition: Literal["closed_form", "recursion"] = "closed_form"

    def params(self) -> dict:
        """Keyword arguments of the mechanism class."""
        return {"clamp": self.clamp}


def grid_variants(scenario) -> int:
    """Re-runs per auction that full feedback costs: the grid size of every learning group times
    its advertisers (a fixed rule needs none)."""
    total = 0
    for g in scenario.advertisers:
        grid = getattr(g.strategy, "grid", None)
        if grid is not None and g.strategy.kind not in ("truthful", "multiplier", "shift"):
            total += g.count * grid.n
    return total


def check(scenario) -> None:
    """The diffusion rules of a whole scenario: advertisers bid themselves (no delegation), and
    full feedback stays within MAX_FULL_VARIANTS re-runs per auction. Raises ValueError with the
    path of the bad field."""
    for i, g in enumerate(scenario.advertisers):
        if g.report is not None:
            raise ValueError(f"advertisers[{i}].report: diffusion advertisers bid themselves; "
                             "put the bidding rule in strategy")
    if scenario.feedback.kind == "full":
        variants = grid_variants(scenario)
        if variants > MAX_FULL_VARIANTS:
            raise ValueError(f"feedback.kind = 'full': the learners' grids need {variants} "
                             f"re-generated runs of every auction (at most {MAX_FULL_VARIANTS}); "
                             "use feedback.kind = 'bandit' or smaller grids")
