"""The diffusion image auction (SPEC section 3): advertisers bid for influence on one image drawn
by a diffusion model. The bid-dependent score composition (`composition`: the recursion and the
closed form of the paper's Appendix F), the Monte Carlo VCG allocation and payments and the
single-winner VCG baseline on alignments (`mechanism`), the run against an image backend
(`auction`: the full run, the leave-one-out re-runs and the baseline in one batched call), and
the family for the market: its settings, market adapter, metrics and samples, on the image
world (`genmarket.mechanisms.backends.image`).

Paper: "Bidding for Influence: Auction-Driven Diffusion Image Generation" (anonymous authors,
under review).
"""

from __future__ import annotations

import torch

from genmarket.market.engine.seam import Example, Family
from genmarket.mechanisms.contract import column_setter
from genmarket.mechanisms.diffusion.adapter import DiffusionAdapter
from genmarket.mechanisms.diffusion.auction import DiffusionRun, generation_plan, run_auction
from genmarket.mechanisms.diffusion.composition import (
    closed_form,
    composition,
    conditioning_sets,
    recursion,
)
from genmarket.mechanisms.diffusion.mechanism import (
    Diffusion,
    DiffusionBatch,
    DiffusionOutcome,
    DiffusionSingleWinner,
    SingleWinnerBatch,
    bid_welfare,
    regret,
    utilities,
)
from genmarket.mechanisms.diffusion.metrics import METRICS, PANELS
from genmarket.mechanisms.diffusion.settings import (
    DiffusionSettings,
    check,
    magnitudes,
    round_numbers,
)

__all__ = ["FAMILY", "Diffusion", "DiffusionAdapter", "DiffusionBatch", "DiffusionOutcome", "DiffusionRun",
           "DiffusionSingleWinner", "SingleWinnerBatch", "bid_welfare", "closed_form",
           "composition", "conditioning_sets", "diffusion_batches", "examples",
           "generation_plan", "recursion", "regret", "run_auction", "utilities"]


def diffusion_batches(device, dtype, seed: int, B: int = 32, n: int = 4, k: int = 6
                      ) -> tuple[DiffusionBatch, SingleWinnerBatch]:
    """Random batches for the contract checks and tests: alignments uniform in [-0.2, 0.8]
    (cosines, mostly positive as CLIP's are), bids uniform on [0, 2) with one in eight exactly
    0, 70% of the slots present; the two batches share bids and mask."""
    g = torch.Generator().manual_seed(seed)

    def cosines(*shape):
        return torch.rand(*shape, generator=g, dtype=dtype) - 0.2

    bids = 2 * torch.rand(B, n, generator=g, dtype=dtype)
    bids = torch.where(torch.rand(B, n, generator=g) < 0.125, 0.0, bids)
    mask = torch.rand(B, n, generator=g) < 0.7
    full = DiffusionBatch(*(x.to(device) for x in (cosines(B, k, n), cosines(B, n, k, n),
                                                    bids, mask)))
    single = SingleWinnerBatch(*(x.to(device) for x in (cosines(B, n, k, n), bids, mask)))
    return full, single


def examples(device, dtype, seed: int) -> list[Example]:
    """The auction with and without the payment clamp, and the single-winner baseline."""
    full, single = diffusion_batches(device, dtype, seed)
    set_bids = column_setter("bids")
    return [Example("diffusion", Diffusion(), full, set_bids),
            Example("diffusion-raw", Diffusion(clamp=False), full, set_bids),
            Example("diffusion_single_winner", DiffusionSingleWinner(), single, set_bids)]


FAMILY = Family(
    name="diffusion",
    kinds=("diffusion",),
    settings=DiffusionSettings,
    adapter=DiffusionAdapter,
    metrics=METRICS,
    panels=PANELS,
    examples=examples,
    record=("value", "bid", "entered", "alignment", "payment", "utility"),
    world="image",
    profiles=True,
    check=check,
    magnitudes=magnitudes,
    round_numbers=round_numbers,
    money="value units per auction",
    truthful="bidding one's value",
    acts="bid",
    citation="Anonymous authors (under review), Bidding for Influence: Auction-Driven Diffusion "
             "Image Generation",
)
