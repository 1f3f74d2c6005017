"""The token auction's counterfactuals on a round's replies, on the same queries and uniforms.

- `replay`: walks the realised replies again, token by token with each prefix fixed, and sums
  over the steps each advertiser's exact step utility of unilateral deviations (other bids, or
  another reported law) — the full-information feedback, the per-step misreport metrics — and
  the running log-likelihood ratio r_i(y_<=t) = log p_i(y_<=t) - log p_ref(y_<=t) that the
  exposure metric reads. Per step it is exact; summed along the realised reply it ignores that a
  deviation would have changed the later prefix (the whole-reply counterfactual re-generates).
- `worlds`: re-generates the replies in W counterfactual worlds at once (each advertiser's
  participation flipped; or one advertiser's bid changed), on the round's uniforms.

Money is in the scenario's money unit (bids are money per nat), divergences in nats.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from genmarket.mechanisms.token.aggregate import DIVERGENCE_CAP
from genmarket.mechanisms.token.generate import Reply, generate
from genmarket.mechanisms.token.mechanism import TokenAuction, TokenBatch

__all__ = ["Replayed", "replay", "worlds"]


@dataclass(frozen=True)
class Replayed:
    """What `replay` returns. bids [B, n, K] — summed step utilities (money) of bidding
    alt_bids[..., k] at every step with the reported law unchanged (None when no bids were
    asked); laws [B, n, T] — the same for reporting the law at temperature T_k at the chosen bid
    (None when no temperatures were asked); ratio [B, L, n] — r_i(y_<=t) after step t (nats,
    each step's term clamped to +-DIVERGENCE_CAP; constant after the reply's end)."""

    bids: Tensor | None
    laws: Tensor | None
    ratio: Tensor


def replay(lm, mechanism: TokenAuction, query: Tensor, advertisers: Tensor, reply: Reply,
           bids: Tensor, mask: Tensor, uniforms: Tensor, values: Tensor,
           alt_bids: Tensor | None = None, temperatures: Tensor | None = None) -> Replayed:
    """Step utilities of deviations along the realised replies, with each prefix fixed.

    query [B] long, advertisers [B, n] long (as for `generate`); reply — the replies generated
    from bids [B, n] (money per nat), mask [B, n] bool and uniforms [B, L'] (the same);
    values [B, n] m_i, money per nat; alt_bids [B, n, K] the bids to try; temperatures [T] > 0 the
    reported-law temperatures to try at each advertiser's chosen bid (log_softmax(log p_i /
    T_k)). A deviator takes part even where mask is False. Returns a `Replayed`.
    """
    B, L = reply.tokens.shape
    n = bids.shape[1]
    dtype = bids.dtype
    zero = torch.zeros(B, n, 1, dtype=dtype, device=bids.device)
    acc_b = None if alt_bids is None else zero * alt_bids
    acc_l = None if temperatures is None else zero.expand(B, n, temperatures.numel()).clone()
    ratio = torch.zeros(B, L, n, dtype=dtype, device=bids.device)
    running = torch.zeros(B, n, dtype=dtype, device=bids.device)
    state = lm.start(query, advertisers)
    length = reply.length
    for t in range(L):
        alive = t < length  # [B]
        if not bool(alive.any()):
            ratio[:, t:] = running.unsqueeze(1)
            break
        logp = lm.logprobs(state).to(dtype)
        true, log_ref = logp[:, :n], logp[:, n]
        batch = TokenBatch(true, bids, mask, log_ref, uniforms[:, t].to(dtype))
        keep = alive.view(B, 1, 1)
        if acc_b is not None:
            u = mechanism.deviation_utilities(batch, true, values, alt_bids)
            acc_b = acc_b + torch.where(keep, u, 0.0)
        if acc_l is not None:
            tt = temperatures.to(dtype).view(1, 1, -1, 1)
            report = torch.log_softmax(true.unsqueeze(2) / tt, -1)  # [B, n, T, V]
            chosen = bids.unsqueeze(-1).expand(B, n, temperatures.numel())
            u = mechanism.deviation_utilities(batch, true, values, chosen, report)
            acc_l = acc_l + torch.where(keep, u, 0.0)
        token = reply.tokens[:, t].clamp(min=0)
        own = true.gather(-1, token.view(B, 1, 1).expand(B, n, 1)).squeeze(-1)
        ref = log_ref.gather(-1, token.view(B, 1))
        step = torch.nan_to_num(own - ref, nan=0.0).clamp(-DIVERGENCE_CAP, DIVERGENCE_CAP)
        running = running + torch.where(alive.unsqueeze(-1), step, 0.0)
        ratio[:, t] = running
        if t + 1 < L:
            state = lm.advance(state, torch.where(alive, reply.tokens[:, t], lm.eos))
    return Replayed(acc_b, acc_l, ratio)


def worlds(lm, mechanism: TokenAuction, query: Tensor, advertisers: Tensor, bids: Tensor,
           mask: Tensor, uniforms: Tensor, values: Tensor) -> Reply:
    """Replies re-generated in W worlds at once: bids, mask [W, B, n] (each world's bids, money
    per nat, and participation) on the round's query [B], advertisers [B, n], uniforms [B, L']
    and values [B, n]. Returns the `Reply` of the W * B auctions, world-major."""
    W = bids.shape[0]
    return generate(lm, mechanism, query.repeat(W), advertisers.repeat(W, 1),
                    bids.reshape(-1, bids.shape[-1]), mask.reshape(-1, mask.shape[-1]),
                    uniforms.repeat(W, 1), values=values.repeat(W, 1))
