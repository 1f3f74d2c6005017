"""What the token auction reads from language models: the next-token laws of each advertiser's
model and of the platform's reference model, for a batch of B auctions, advanced one token at a
time (the previous token's state in the synthetic world, a key/value cache in a real LLM).

Token ids index a vocabulary of V tokens that may depend on the auction's number of slots n (the
synthetic world's brand tokens are per slot); `eos` ends a reply. Log-probabilities are in nats.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from torch import Tensor

__all__ = ["TokenLM"]


@runtime_checkable
class TokenLM(Protocol):
    """Next-token laws of the advertisers' models and the reference model, batched.

    eos — the end-of-reply token id. vocab(n) — V for auctions with n slots.
    """

    eos: int

    def vocab(self, n: int) -> int:
        """V, the number of token ids of an auction with n advertiser slots."""
        ...

    def start(self, query: Tensor, advertisers: Tensor) -> Any:
        """Begin B replies. query [B] long indexes the world's queries; advertisers [B, n] long
        indexes the world's advertisers (slot i of auction b). Returns an opaque state."""
        ...

    def logprobs(self, state: Any) -> Tensor:
        """The next-token laws after each auction's current prefix: [B, n + 1, V] log-probabilities
        (nats, each row sums to 1 in probability); rows 0..n-1 are the advertisers' models in slot
        order, row n the reference model."""
        ...

    def advance(self, state: Any, tokens: Tensor) -> Any:
        """Append tokens [B] long (one per auction, the same for all its models) to every prefix;
        returns the new state (the old one may be reused or invalidated)."""
        ...

    def decode(self, tokens: Tensor, advertisers: Tensor | None = None) -> str:
        """One reply's token ids [L] (ids < 0 and eos ignored) -> readable text; advertisers [n]
        the auction's slots, for worlds whose tokens depend on them."""
        ...

    def mentions(self, tokens: Tensor, advertisers: Tensor) -> Tensor:
        """Whether each reply names each slot's advertiser: tokens [B, L] long (padding < 0),
        advertisers [B, n] long -> [B, n] bool."""
        ...
