"""MOSAIC's scenario sections: `[mechanism]` (kind = "mosaic"), the one-shot experiment's
`[experiment]`, and the rules a MOSAIC scenario must follow."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from genmarket.market.scenario.base import Positive, Strict

__all__ = ["MosaicSettings", "OneShot", "check", "round_numbers"]


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
