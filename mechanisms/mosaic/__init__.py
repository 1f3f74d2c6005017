"""MOSAIC, the LLM aggregation auction with DSIC payments, as a family: the mechanism
(`mechanism`), its counterfactual worlds (`worlds`), its market adapter and metrics, its
settings, and the paper's one-shot experiment (`oneshot`), on the language world.

Paper: "Truthful aggregation of LLMs with an application to online advertising" (Soumalias,
Curry, Seuken et al., 2024).
"""

from __future__ import annotations

import torch

from genmarket.market.engine.seam import Example, Experiment, Family
from genmarket.mechanisms.contract import column_setter
from genmarket.mechanisms.mosaic.adapter import MosaicAdapter
from genmarket.mechanisms.mosaic.mechanism import Mosaic, MosaicBatch, MosaicOutcome
from genmarket.mechanisms.mosaic.metrics import METRICS, PANELS
from genmarket.mechanisms.mosaic.oneshot import describe_one_shot, run_one_shot
from genmarket.mechanisms.mosaic.oneshot_report import (
    one_shot_report,
    one_shot_sentences,
    one_shot_table,
)
from genmarket.mechanisms.mosaic.settings import (
    MosaicSettings,
    OneShot,
    check,
    magnitudes,
    round_numbers,
)

__all__ = ["FAMILY", "ONE_SHOT", "Mosaic", "MosaicAdapter", "MosaicBatch", "MosaicOutcome",
           "mosaic_batch"]


def mosaic_batch(device, dtype, seed: int, B: int = 48, n: int = 4, M: int = 6) -> MosaicBatch:
    """A random batch for the contract checks: rewards of a few nats, 70% present."""
    g = torch.Generator().manual_seed(seed)
    rewards = 3 * torch.randn(B, n, M, generator=g, dtype=dtype)
    mask = torch.rand(B, n, generator=g) < 0.7
    log_ref = torch.log_softmax(torch.randn(B, M, generator=g, dtype=dtype), -1)
    log_gen = torch.log_softmax(torch.randn(B, M, generator=g, dtype=dtype), -1)
    noise = torch.rand(B, generator=g, dtype=dtype)
    return MosaicBatch(*(x.to(device) for x in (rewards, mask, log_ref, log_gen, noise)))


def examples(device, dtype, seed: int) -> list[Example]:
    """MOSAIC with and without the offset."""
    batch, set_rewards = mosaic_batch(device, dtype, seed), column_setter("rewards")
    return [Example("mosaic", Mosaic(tau=1.0, offset=True), batch, set_rewards),
            Example("mosaic-no-offset", Mosaic(tau=0.5, offset=False), batch, set_rewards)]


ONE_SHOT = Experiment(
    name="one_shot",
    settings=OneShot,
    run=run_one_shot,
    describe=describe_one_shot,
    table=one_shot_table,
    report=one_shot_report,
    marker="auctions.parquet",
    sentences=one_shot_sentences,
)

FAMILY = Family(
    name="mosaic",
    kinds=("mosaic",),
    settings=MosaicSettings,
    adapter=MosaicAdapter,
    metrics=METRICS,
    panels=PANELS,
    examples=examples,
    record=("value", "report", "entered", "reward", "payment", "utility"),
    world="language",
    profiles=True,
    check=check,
    magnitudes=magnitudes,
    experiments=("one_shot",),
    money="reward units per auction",
    truthful="truthful reporting",
    acts="report",
    citation="E. Soumalias, M. Curry, S. Seuken et al. (2024), Truthful aggregation of LLMs "
             "with an application to online advertising",
    round_numbers=round_numbers,
)
