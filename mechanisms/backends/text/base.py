"""What a text backend is built from and what it returns: the contract between the language
models (synthetic or real) and the MOSAIC market.

A backend answers one question for a batch of B auctions: given the query of each auction, the
advertiser in each of its n slots and which of them are in the generator's context, draw M
candidate replies and score every one under the reference model, the generator and each slot's
advertiser model. Everything is in nats (natural-log probabilities).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from torch import Tensor

from genmarket.market.registry import Registry

__all__ = [
    "BACKENDS",
    "AdvertiserProfile",
    "Candidates",
    "Query",
    "TextBackend",
    "TextWorld",
    "get_backend",
    "register_backend",
]

ENTRY_POINT_GROUP = "genmarket.backends"


@dataclass(frozen=True)
class Query:
    """A user query: its text (what a real LLM reads) and its topic (what relevance refers to)."""

    text: str
    topic: str


@dataclass(frozen=True)
class AdvertiserProfile:
    """An advertiser as the language models see it.

    name, description — the words of the prompt "Answer the question advertising <name>,
    <description>." relevance — topic -> how related the advertiser is to queries on that topic,
    in [0, 1] (topics not listed count as 0). The synthetic world reads relevance; a real LLM
    reads only the name and description.
    """

    name: str
    description: str
    relevance: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class TextWorld:
    """The fixed cast of a scenario: the topics, the queries users ask, the advertisers.

    Auctions refer to queries and advertisers by index into these tuples.
    """

    topics: tuple[str, ...]
    queries: tuple[Query, ...]
    advertisers: tuple[AdvertiserProfile, ...]


@dataclass(frozen=True)
class Candidates:
    """M candidate replies per auction, scored.

    tokens  [B, M, L] long — token ids of each reply, padded with -1 after its end.
    log_ref [B, M]    — log pi_ref(y_j | x), nats.
    log_gen [B, M]    — log pi_gen(y_j | x; c), nats; equal to log_ref when no context was given.
    rewards [B, n, M] — r_i(y_j) = log pi_i(y_j | x) - log pi_ref(y_j | x) for the advertiser in
                        slot i (tau_i = 1), nats; computed for every slot, in the context or not.
    """

    tokens: Tensor
    log_ref: Tensor
    log_gen: Tensor
    rewards: Tensor


@runtime_checkable
class TextBackend(Protocol):
    """A language world: reference model, one model per advertiser, context-aware generator.

    `length` is L, the most tokens a reply has (the uniforms `candidates` takes are [B, M, L]).
    Backends may also define `log_partition(query, advertisers, weights) -> [B]`: the exact
    log Z = log sum_y pi_ref(y|x) exp(sum_i weights[b, i] * r_i(y)), for worlds small enough to
    sum over every reply (the synthetic one). Without it, log Z is estimated from candidates.
    """

    world: TextWorld
    length: int

    def candidates(
        self,
        query: Tensor,
        advertisers: Tensor,
        context: Tensor | None,
        M: int,
        uniforms: Tensor,
    ) -> Candidates:
        """Draw and score M replies per auction.

        query [B] long — index into world.queries. advertisers [B, n] long — index into
        world.advertisers of the advertiser in each slot. context [B, n] bool or None — which
        slots the context-aware generator is told about; None (or a row with no True) means the
        generator is the reference model itself. uniforms [B, M, L] in [0, 1) — the only
        randomness used: reply j of auction b is sampled token by token by inverse CDF from
        uniforms[b, j], so the same uniforms give the same replies (the market draws them from
        its counter-based streams).
        """
        ...

    def score(self, tokens: Tensor, query: Tensor, advertisers: Tensor,
              context: Tensor | None) -> Candidates:
        """Score given replies tokens [B, M, L] (padding -1) exactly as `candidates` scores the
        replies it draws: the same Candidates, with these tokens."""
        ...

    def decode(self, tokens: Tensor, advertisers: Tensor | None = None) -> str:
        """One reply's token ids [L] (padding -1 ignored) -> readable text. `advertisers` [n]:
        the auction's slots, for backends whose tokens depend on them (the synthetic world's
        brand tokens are per slot); a real LLM's tokenizer ignores it."""
        ...


BACKENDS: Registry = Registry(
    "text backend", ENTRY_POINT_GROUP,
    on_register=lambda name, cls: setattr(cls, "backend_name", name))


def register_backend(name: str):
    """Decorator: register a backend class (or factory) under `name`; the scenario names it."""
    return BACKENDS.register(name)


def get_backend(name: str, world: TextWorld, **params) -> TextBackend:
    """Build backend `name` for `world` with keyword settings `params` (device, dtype, ...).

    Built-in names are registered when `genmarket.mechanisms.backends.text` is imported; others
    come from the "genmarket.backends" entry-point group. Unknown names raise ValueError listing
    the known ones.
    """
    return BACKENDS.lookup(name)(world, **params)
