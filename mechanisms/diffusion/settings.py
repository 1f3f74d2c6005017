"""The diffusion image auction's `[mechanism]` section (kind = "diffusion") and the rules a
diffusion scenario must follow."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from genmarket.market.engine.precision import Magnitudes
from genmarket.market.scenario.base import Strict

__all__ = ["MAX_FULL_VARIANTS", "DiffusionSettings", "check", "grid_variants", "magnitudes",
           "round_numbers"]

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


def _largest_bid(scenario) -> float:
    """The largest bid the scenario can place or the misreport metric try (money per unit of
    alignment): the top of each group's grid times its largest value (the grid itself for
    absolute bids), and the deviation grid's top times the largest value."""
    dev = scenario.metrics.deviation_grid.high
    out = 0.0
    for g in scenario.advertisers:
        high = g.value_dist.support[1]
        grid = getattr(g.strategy, "grid", None)
        kind = g.strategy.kind
        mult = g.strategy.a if kind == "multiplier" else 1.0
        if grid is not None and kind not in ("truthful", "multiplier", "shift"):
            bid = grid.high if g.strategy.absolute else grid.high * high
        else:
            bid = mult * high + getattr(g.strategy, "s", 0.0)
        out = max(out, bid, dev * high)
    return out


def magnitudes(scenario) -> Magnitudes | None:
    """The numbers a diffusion market computes (`Family.magnitudes`), in value units: payments
    and welfare are bid-welfares sum_i b_i alpha_i with |alpha_i| <= 1, so at most n times the
    largest bid, while utilities must resolve the smallest advertiser's value times one unit of
    alignment. None when every value is 0."""
    highs = [g.value_dist.support[1] for g in scenario.advertisers]
    positive = [h for h in highs if h > 0]
    if not positive:
        return None
    n = scenario.n_advertisers
    bid = _largest_bid(scenario)
    largest = max(n * bid, max(highs), *(g.entry_cost for g in scenario.advertisers))
    scale = min(positive)
    return Magnitudes(largest, scale, f"n = {n} x the largest bid {bid:.3g} (alignment <= 1) = "
                                      f"{largest:.3g} against a value of {scale:.3g} x 1 unit of "
                                      "alignment")


def round_numbers(scenario) -> int:
    """Numbers one diffusion auction (of one replica) holds at once in a round beyond the
    engine's: the images its runs keep, k per run, of the full run, the n leave-one-out re-runs
    and the n baseline prompts, and of the re-drawn variants (n + 1 runs each, plus their noise)
    of the misreport metric or the learners' grid, whichever is larger. Images are counted at
    the concept space's dimension; a diffusers model's own activations are not counted (a
    lower bound: what it refuses cannot run)."""
    n, k = scenario.n_advertisers, scenario.mechanism.samples
    img = scenario.image
    if img.backend != "concept":
        return 0
    d = img.concept.dim or len(img.prompts) + n + 1 + 16
    G = scenario.metrics.deviation_grid.n + 1
    variants = max(n * G, grid_variants(scenario))
    return (1 + 2 * n) * k * (d + n) + variants * (n + 2) * k * (d + n)
