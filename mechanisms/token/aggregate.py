"""Distribution aggregation of the token auction (SPEC section 2; seeds 003 and 004), in log space.

m models with next-token log-probabilities L_j [..., m, V] (nats; -inf for an impossible token)
and weights w_j >= 0 (the bids of the entrants, the reference model's fixed weight b_0):

    linear      q = sum_j w_j p_j / W                           minimises sum_j w_j KL(p_j || q)
    log-linear  q ∝ exp(sum_j w_j L_j / W)                      minimises sum_j w_j KL(q || p_j)

with W = sum_j w_j. A model of weight 0 changes nothing, whatever its log-probabilities hold
(0 * -inf counts as 0). Both rules are computed from a *pool* — the part of q that adds up over
models — so that one model can be added to the others' pool at any weight without recomputing
them: log sum_j w_j p_j (linear) or sum_j w_j L_j (log-linear).

Two conventions where the rules say nothing:
- zero total weight (no entrant and b_0 = 0): q is the reference model's law — the platform
  writes its own reply;
- log-linear pool with no token possible under every positive-weight model (disjoint supports,
  which truncated laws such as top-p can produce): q is again the reference model's law.

Divergences are capped at DIVERGENCE_CAP nats, so that a law that rules out a token an advertiser
wants (an infinite KL divergence) is a large finite loss and utilities and payments stay finite.
"""

from __future__ import annotations

import torch
from torch import Tensor

from genmarket.mechanisms.base import sample

__all__ = [
    "DIVERGENCE_CAP",
    "RULES",
    "divergence",
    "entropy",
    "join",
    "normalise",
    "others",
    "pool",
    "sample",
    "token_of",
]

RULES = ("linear", "loglinear")

#: Largest divergence, nats: KL(p || q) of a law that gives a wanted token a probability below
#: e^-100 counts as 100 nats, and so does one that rules it out.
DIVERGENCE_CAP = 100.0


def pool(logp: Tensor, w: Tensor, rule: str) -> Tensor:
    """The pool [..., V] of m models: log sum_j w_j p_j (linear) or sum_j w_j L_j (log-linear).

    logp [..., m, V] log-probabilities (nats, may hold -inf); w [..., m] weights >= 0. Rows of
    weight 0 are ignored whatever they hold. Entries are -inf where no positive-weight model
    allows the token (linear) or where one rules it out (log-linear).
    """
    w = w.unsqueeze(-1)
    if rule == "linear":
        return torch.logsumexp(torch.where(w > 0, w.log() + logp, float("-inf")), dim=-2)
    return torch.where(w > 0, w * logp, 0.0).sum(-2)


def join(pooled: Tensor, logp: Tensor, b: Tensor, rule: str) -> Tensor:
    """The pool [..., V] after adding one model logp [..., V] at weight b [...] (>= 0; weight 0
    adds nothing, whatever logp holds) to pooled [..., V]."""
    b = b.unsqueeze(-1)
    if rule == "linear":
        return torch.logaddexp(pooled, torch.where(b > 0, b.log() + logp, float("-inf")))
    return pooled + torch.where(b > 0, b * logp, 0.0)


def normalise(pooled: Tensor, total: Tensor, rule: str, log_ref: Tensor) -> Tensor:
    """log q [..., V] (nats, -inf where q is 0) from a pool [..., V] of total weight total [...].

    log_ref [..., V]: the reference model's law, returned where total is 0 and, for the
    log-linear rule, where the pool rules out every token (see the module docstring).
    """
    total = total.unsqueeze(-1)
    if rule == "linear":
        logq = pooled - total.log()
        ok = total > 0
    else:
        s = pooled / total
        lse = torch.logsumexp(s, dim=-1, keepdim=True)
        logq = s - lse
        ok = (total > 0) & torch.isfinite(lse)
    return torch.where(ok, logq, log_ref)


def others(logp: Tensor, w: Tensor, rule: str) -> tuple[Tensor, Tensor]:
    """For every slot i, the pool of all the *other* models and its total weight.

    logp [..., m, V], w [..., m]; the first n = m - 1 rows are the advertisers, the last the
    reference model (never left out). Returns (pool_-i [..., n, V], W_-i [..., n]). Computed
    directly over the others ([..., n, m, V] temporary), not by subtracting i from the full pool,
    which would cancel catastrophically when i's weight dominates.
    """
    m = w.shape[-1]
    keep = ~torch.eye(m - 1, m, dtype=torch.bool, device=w.device)  # [n, m]: j != i
    w_minus = torch.where(keep, w.unsqueeze(-2), 0.0)  # [..., n, m]
    return pool(logp.unsqueeze(-3), w_minus, rule), w_minus.sum(-1)


def divergence(logp: Tensor, logq: Tensor, rule: str) -> Tensor:
    """D [...] in nats: KL(p || q) for the linear rule, KL(q || p) for the log-linear one.

    logp, logq [..., V] log-probabilities (broadcastable; -inf allowed). 0 log 0 counts as 0; a
    support violation (+inf) and anything above DIVERGENCE_CAP count as DIVERGENCE_CAP; rounding
    below 0 counts as 0.
    """
    first, second = (logp, logq) if rule == "linear" else (logq, logp)
    terms = torch.where(first > float("-inf"), first.exp() * (first - second), 0.0)
    return terms.sum(-1).clamp(0.0, DIVERGENCE_CAP)


def entropy(logq: Tensor) -> Tensor:
    """Shannon entropy [...] in nats of the laws logq [..., V] (0 log 0 = 0)."""
    return -torch.where(logq > float("-inf"), logq.exp() * logq, 0.0).sum(-1)


def token_of(logq: Tensor, uniform: Tensor) -> Tensor:
    """Stable sampling: the token [...] (long) drawn from logq [..., V] with uniforms [...] in
    [0, 1): the smallest id v with cumsum(q)[v] > u * sum(q), in token id order, so that the
    same u gives the same token wherever the cumulative law does not cross u."""
    return sample(logq.exp(), uniform)
