"""MOSAIC's scenario sections: `[mechanism]` (kind = "mosaic"), the one-shot experiment's
`[experiment]`, and the rules a MOSAIC scenario must follow."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from genmarket.market.engine.precision import Magnitudes
from genmarket.market.scenario.base import Positive, Strict

__all__ = ["MosaicSettings", "OneShot", "check", "magnitudes", "round_numbers"]


class MosaicSettings(Strict):
    """`[mechanism]` of MOSAIC: `tau` — the platform's KL weight; `offset` — the agent-specific
    payment offset of Section 5.3; `candidates` — M replies drawn per auction; `generator` —
    "context" (the reference model prompted with the participants' descriptions) or "reference"
    (the reference model itself)."""

    kind: Literal["mosaic"]
    tau: Positive = 1.0
    offset: bool = True
    candidates: Annotated[int, Field(ge=1, le=4096)] = 8
    generator: Literal["context", "reference"] = "context"

    def params(self) -> dict[str, Any]:
        """Keyword arguments of the mechanism class."""
        return {"tau": self.tau, "offset": self.offset}


class OneShot(Strict):
    """`[experiment] kind = "one_shot"`: the paper's experiment instead of a repeated market.

    `instances` auctions, each one query (cycling through the queries) with the
    `advertisers_per_instance` advertisers most relevant to its topic, are run on `seeds` random
    seeds for every number of candidates M in `candidates` and every generator in `generators`.
    """

    kind: Literal["one_shot"]
    candidates: Annotated[list[Annotated[int, Field(ge=1, le=4096)]], Field(min_length=1)]
    generators: Annotated[list[Literal["reference", "context"]], Field(min_length=1)] = [
        "reference", "context"]
    instances: Annotated[int, Field(ge=1, le=1_000_000)] = 50
    seeds: Annotated[int, Field(ge=1, le=100_000)] = 25
    advertisers_per_instance: Annotated[int, Field(ge=1, le=64)] = 2

    @model_validator(mode="after")
    def _sorted(self) -> OneShot:
        if sorted(set(self.candidates)) != list(self.candidates):
            raise ValueError(f"experiment.candidates = {self.candidates}: must be increasing, without repeats")
        if len(set(self.generators)) != len(self.generators):
            raise ValueError("experiment.generators: must not repeat")
        return self


def check(scenario) -> None:
    """The MOSAIC rules of a whole scenario: no delegation, multiplier grids, an experiment that
    fits. Raises ValueError with the path of the bad field."""
    for i, g in enumerate(scenario.advertisers):
        if g.report is not None:
            raise ValueError(f"advertisers[{i}].report: MOSAIC advertisers report rewards "
                             "themselves; put the report rule in strategy")
        if getattr(g.strategy, "absolute", False):
            raise ValueError(f"advertisers[{i}].strategy.bids: MOSAIC reports are multipliers "
                             "of the true rewards; use strategy.multipliers")
    if scenario.experiment is not None:
        k = scenario.experiment.advertisers_per_instance
        if k > scenario.n_advertisers:
            raise ValueError(f"experiment.advertisers_per_instance = {k}: more than the "
                             f"{scenario.n_advertisers} advertisers of the scenario")


# nominal size of a reply token's log-ratio, for the rewards (log pi_i - log pi_ref) and the
# context-aware generator's correction (log pi_ref - log pi_gen), in nats: the synthetic world's
# largest scores measure 1.5 to 1.7 nats per token of correction
NATS_PER_TOKEN = 2.0


def magnitudes(scenario) -> Magnitudes | None:
    """The numbers a MOSAIC run computes (`Family.magnitudes`), in reward units. Utilities and
    payments are differences of tau * logsumexp(scores) (Theorem 5.1), whose magnitude is about
    tau * (log M + |log pi_ref - log pi_gen|) plus the largest reward, while the quantities
    reported must resolve one nat of reward at the smallest advertiser's scale. Log-ratios are
    taken as NATS_PER_TOKEN per reply token (the run measures the real size: the adapter's
    `magnitude`). None when every reward scale is 0."""
    highs = [g.value_dist.support[1] for g in scenario.advertisers]
    positive = [h for h in highs if h > 0]
    if not positive:
        return None
    mc, ex = scenario.mechanism, scenario.experiment
    M = max(ex.candidates) if ex is not None else mc.candidates
    context = "context" in ex.generators if ex is not None else mc.generator == "context"
    nats = NATS_PER_TOKEN * scenario.language.length
    correction = nats if context else 0.0
    largest = max(highs) * nats + mc.tau * (math.log(M) + correction)
    scale = min(positive)
    return Magnitudes(largest, scale,
                      f"tau * (log M + {correction:g} nats) + reward scale {max(highs):.3g} x "
                      f"{nats:g} nats = {largest:.3g} against a reward scale of {scale:.3g} x 1 nat")


def round_numbers(scenario) -> int:
    """Numbers one MOSAIC auction (of one replica) holds at once in a round, beyond the
    engine's: M candidate replies of L tokens with their rewards under each of the n advertisers,
    for the round and for each advertiser's flipped world (n + 1 sets), and for the synthetic
    world the three next-token tables [states + 1, V] of each generation (V = G + T * W +
    n * (1 + P) tokens; see its module). Measured on a CPU, float32, R = 4, B = 1,024: 10 to 30%
    below the peak for n = 6 and 12, M = 32 and 64, L = 12 and 48."""
    n, M = scenario.n_advertisers, scenario.mechanism.candidates
    lang = scenario.language
    numbers = (n + 1) * M * (3 * lang.length + 4 * n)
    if lang.backend == "synthetic":
        syn = lang.synthetic
        V = syn.general_words + len(lang.topics) * syn.topic_words + n * (1 + syn.product_words)
        generations = n + 1 if scenario.mechanism.generator == "context" else 1
        numbers += generations * 3 * (syn.states + 1) * V
    return numbers
