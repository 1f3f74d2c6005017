"""The synthetic language world as token-auction models: the exact next-token laws of the
synthetic text backend's first-order Markov chains (mechanisms/backends/text/synthetic.py), one
token at a time, plus an end-of-reply token.

Token ids are the backend's ids shifted by one, and id 0 is the end token (`eos`), so the end
token has the same id for every number of slots: V = 1 + backend.vocab_size(n).

The text backend's replies have exactly L = backend.length tokens. Here a reply ends when eos is
drawn. Before each token, with t tokens already in the reply, the end probability is

    p_end(t) = 0 for t < min_length,  end_prob for min_length <= t < L,  1 for t = L,

the same in every model (each advertiser's and the reference), and every other token's
probability is the chain's, times 1 - p_end(t). So a reply of k tokens then eos has
log-probability equal to the chain's (the backend's `score` of those k tokens) plus the end
factor (k - min_length)^+ log(1 - end_prob) + log p_end(k), the same under every model: the end
factor cancels from r_i(y) = log pi_i(y) - log pi_ref(y), so the advertisers' preferences are
the text backend's exactly. After eos the laws are eos with probability 1. With min_length = 0
the first token may be eos (an empty reply).

A reply *mentions* slot i's advertiser when it contains slot i's brand token (the token that
decodes to the advertiser's name); its product tokens (words of its description) do not count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from genmarket.mechanisms.backends.text.synthetic import SyntheticTextBackend

__all__ = ["SyntheticTokenLM", "SyntheticTokenState"]


@dataclass(frozen=True)
class SyntheticTokenState:
    """Where B replies stand.

    laws  [B, K, n + 1, V'] — log-probabilities of the backend's V' = V - 1 tokens by chain
                              state (K = backend.states + 1, the last the start), the n
                              advertisers' models then the reference, nats.
    to_state [V'] long      — the chain state each backend token leads to.
    state [B] long          — the chain state of the previous token.
    t     [B] long          — tokens in the reply so far (eos not counted).
    done  [B] bool          — eos already drawn.
    """

    laws: Tensor
    to_state: Tensor
    state: Tensor
    t: Tensor
    done: Tensor


class SyntheticTokenLM:
    """The synthetic world's models for the token auction (the laws: module docstring).

    backend — the synthetic text backend whose chains are read (its device and dtype are used).
    end_prob — the per-token end probability in [0, 1) once min_length tokens are out.
    min_length — tokens before eos may be drawn, an integer in [0, backend.length].
    """

    eos = 0

    def __init__(self, backend: SyntheticTextBackend, *, end_prob: float = 0.1,
                 min_length: int = 1):
        if not (isinstance(end_prob, int | float) and not isinstance(end_prob, bool)
                and math.isfinite(end_prob) and 0 <= end_prob < 1):
            raise ValueError(f"end_prob = {end_prob!r}: must be a number in [0, 1)")
        if not (isinstance(min_length, int) and not isinstance(min_length, bool)
                and 0 <= min_length <= backend.length):
            raise ValueError(f"min_length = {min_length!r}: must be an integer in [0, "
                             f"{backend.length}] (the reply length L)")
        self.backend, self.end_prob, self.min_length = backend, float(end_prob), min_length
        self.length, self.device, self.dtype = backend.length, backend.device, backend.dtype

    def vocab(self, n: int) -> int:
        """V = 1 + the backend's vocabulary for n slots (id 0 is eos)."""
        return 1 + self.backend.vocab_size(n)

    def start(self, query: Tensor, advertisers: Tensor) -> SyntheticTokenState:
        """Begin B replies (query [B] long, advertisers [B, n] long): the chains' laws by state,
        read once from the backend's tables."""
        be = self.backend
        advertisers = advertisers.to(be.device)
        B, n = advertisers.shape
        tab = be.tables(query.to(be.device), advertisers, None)
        kind, cls = be._layout(n)
        K, V = tab.log_ref.shape[1:]
        log_w = tab.log_w.gather(-1, cls.T.expand(B, K, n, V))  # [B, K, n, V]
        laws = torch.cat([tab.log_ref[:, :, None] + log_w, tab.log_ref[:, :, None]], 2)
        zeros = torch.zeros(B, dtype=torch.long, device=be.device)
        return SyntheticTokenState(laws, be.state_of_kind[kind], zeros + be.states, zeros,
                                   zeros.bool())

    def end_logprob(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """For replies with t [B] long tokens so far: (log p_end [B], log(1 - p_end) [B]), nats."""
        p = torch.full(t.shape, self.end_prob, dtype=self.dtype, device=self.device)
        p = p.masked_fill(t < self.min_length, 0.0).masked_fill(t >= self.length, 1.0)
        return p.log(), torch.log1p(-p)

    def logprobs(self, state: SyntheticTokenState) -> Tensor:
        """The next-token laws [B, n + 1, V] (advertisers in slot order, then the reference),
        nats: the chains' laws after the previous token times 1 - p_end, eos with p_end."""
        B = state.state.shape[0]
        rows = state.laws[torch.arange(B, device=self.device), state.state]  # [B, n + 1, V']
        log_end, log_keep = self.end_logprob(state.t)
        log_end = torch.where(state.done, 0.0, log_end)
        log_keep = torch.where(state.done, -math.inf, log_keep)
        return torch.cat([log_end[:, None, None].expand(-1, rows.shape[1], 1),
                          rows + log_keep[:, None, None]], -1)

    def advance(self, state: SyntheticTokenState, tokens: Tensor) -> SyntheticTokenState:
        """Append tokens [B] long (eos or an id < 0 ends the reply); returns the new state."""
        tokens = tokens.to(self.device)
        ended = state.done | (tokens <= self.eos)
        to = state.to_state[(tokens - 1).clamp(min=0)]
        return SyntheticTokenState(state.laws, state.to_state,
                                   torch.where(ended, state.state, to),
                                   state.t + (~ended).long(), ended)

    def backend_tokens(self, tokens: Tensor) -> Tensor:
        """Replies in this LM's ids [..., L] -> the backend's ids (eos and padding -> -1)."""
        return torch.where(tokens > self.eos, tokens - 1, -1)

    def decode(self, tokens: Tensor, advertisers: Tensor | None = None) -> str:
        """One reply's ids [L] (eos and ids < 0 ignored) -> text, through the backend's decode
        (slot tokens name the advertiser when advertisers [n] is given)."""
        return self.backend.decode(self.backend_tokens(tokens.reshape(-1)), advertisers)

    def mentions(self, tokens: Tensor, advertisers: Tensor) -> Tensor:
        """[B, n] bool: reply b (tokens [B, L], padding < 0) contains slot i's brand token."""
        n = advertisers.shape[1]
        brand = 1 + self.backend.shared + (1 + self.backend.product_words) * torch.arange(
            n, device=tokens.device)
        return (tokens[:, :, None] == brand).any(1)
