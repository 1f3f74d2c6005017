"""The token auction for one generation step, batched over B auctions (SPEC section 2; seeds 003
and 004: Duetting, Mirrokni, Paes Leme, Xu and Zuo, "Mechanism design for large language
models", WWW 2024).

Each of the n advertiser slots reports its LLM's next-token law p_i and a bid b_i >= 0 (money per
nat of divergence); the platform's reference model joins with the fixed weight b_0 (the setting
`reference_weight`, default 0). The mechanism aggregates the laws of the entrants (mask True) at
weights b_i and the reference at b_0 (`aggregate`: linear or log-linear by the kind), draws the
step's token by stable sampling from one uniform u, and charges each entrant by the `payment`
rule (`payments`: pay-as-bid, VCG, second price). Advertiser i's true value for the step is
-m_i D_i(q), D_i the divergence matching the rule, in nats, m_i its value per nat.

Kinds: "token_linear" (TokenLinear) and "token_loglinear" (TokenLogLinear), the rule in the
kind, the payment rule and b_0 as settings.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from genmarket.mechanisms.base import register_mechanism
from genmarket.mechanisms.token.aggregate import (
    divergence,
    entropy,
    join,
    normalise,
    others,
    pool,
    token_of,
)
from genmarket.mechanisms.token.payments import PAYMENTS, payments

__all__ = ["TokenAuction", "TokenBatch", "TokenLinear", "TokenLogLinear", "TokenOutcome",
           "deviation_utilities"]


@dataclass(frozen=True)
class TokenBatch:
    """One generation step of B token auctions among n advertiser slots, over V token ids.

    logp    [B, n, V] float — reported next-token log-probabilities (nats; -inf allowed).
    bids    [B, n] float    — b_i >= 0, money per nat of divergence.
    mask    [B, n] bool     — True where advertiser i takes part in auction b.
    log_ref [B, V] float    — the reference model's next-token log-probabilities.
    uniform [B] float       — the step's uniform in [0, 1) for stable sampling; None draws it
                              from the generator passed to the mechanism.
    """

    logp: Tensor
    bids: Tensor
    mask: Tensor
    log_ref: Tensor
    uniform: Tensor | None = None


@dataclass(frozen=True)
class TokenOutcome:
    """What one step of each auction gives.

    logq       [B, V] — the aggregate law q, nats (-inf for tokens q rules out).
    token      [B] long — the token drawn by stable sampling.
    payment    [B, n] — money for this step (0 where mask is False or the bid is 0).
    divergence [B, n] — D_i(q) with the reported p_i, nats (capped, see `aggregate`), every slot
                        (absent ones too: what they would lose at the reported law).
    entropy    [B] — entropy of q, nats.
    weight     [B] — the total weight sum_i b_i + b_0 (0: q is the reference law).
    """

    logq: Tensor
    token: Tensor
    payment: Tensor
    divergence: Tensor
    entropy: Tensor
    weight: Tensor


def _stack(batch: TokenBatch, reference_weight: float) -> tuple[Tensor, Tensor]:
    """(log-probabilities [B, n + 1, V], weights [B, n + 1]): the entrants at their bids (0
    where absent), then the reference model at b_0."""
    w = torch.where(batch.mask, batch.bids, 0.0)
    w_all = torch.cat([w, torch.full_like(w[:, :1], reference_weight)], -1)
    return torch.cat([batch.logp, batch.log_ref.unsqueeze(-2)], -2), w_all


def deviation_utilities(batch: TokenBatch, true_logp: Tensor, values: Tensor, alt_bids: Tensor,
                        rule: str, payment: str, reference_weight: float = 0.0,
                        report_logp: Tensor | None = None) -> Tensor:
    """Exact step utilities [B, n, K] (money) of unilateral deviations.

    For each slot i and k, i bids alt_bids[b, i, k] (money per nat; i takes part even where
    batch.mask[b, i] is False) with its reported law batch.logp unchanged — or, when
    report_logp [B, n, K, V] is given, reporting the law report_logp[b, i, k] instead (an LLM
    misreport) — everyone else as in `batch`, the same uniform: i's utility -m_i D_i(q') - pay_i
    with D_i measured against its TRUE law true_logp [B, n, V] (nats), m_i = values [B, n] (money
    per nat). batch.uniform must be given. Memory: [B, n, K, V] tensors, [B, n, K, SCAN, V] for
    log-linear second price.
    """
    logp_all, w_all = _stack(batch, reference_weight)
    pooled, total = others(logp_all, w_all, rule)  # [B, n, V], [B, n]
    logp_i = batch.logp.unsqueeze(-2) if report_logp is None else report_logp
    pooled, total = pooled.unsqueeze(-2), total.unsqueeze(-1)
    log_ref = batch.log_ref[:, None, None]
    b = alt_bids.to(batch.bids.dtype)
    logq = normalise(join(pooled, logp_i, b, rule), total + b, rule, log_ref)  # [B, n, K, V]
    u = batch.uniform[:, None, None]
    token = token_of(logq, u)
    pay = payments(payment, rule, b=b, logq=logq, token=token, u=u, logp_i=logp_i,
                   pooled_minus=pooled, total_minus=total, log_ref=log_ref)
    d = divergence(true_logp.unsqueeze(-2), logq, rule)
    return -values.unsqueeze(-1) * d - pay


@dataclass(frozen=True)
class TokenAuction:
    """The token auction of one aggregation rule (the subclass's `rule`).

    payment — "pay_as_bid", "vcg" or "second_price" (default); reference_weight — b_0 >= 0,
    the reference model's fixed weight (0: it only writes the reply when nobody bids).
    """

    payment: str = "second_price"
    reference_weight: float = 0.0
    rule: ClassVar[str]
    name: ClassVar[str]
    batch_type: ClassVar[type] = TokenBatch

    def __post_init__(self) -> None:
        if self.payment not in PAYMENTS:
            raise ValueError(f"payment = {self.payment!r}: not one of {', '.join(PAYMENTS)}")
        b0 = self.reference_weight
        if (isinstance(b0, bool) or not isinstance(b0, numbers.Real) or not math.isfinite(b0)
                or b0 < 0):
            raise ValueError(f"reference_weight = {b0!r}: must be a finite number >= 0")
        object.__setattr__(self, "reference_weight", float(b0))

    def run(self, batch: TokenBatch, generator: torch.Generator | None = None) -> TokenOutcome:
        """Aggregate, draw and charge one step of every auction in `batch`."""
        rule = self.rule
        logp_all, w_all = _stack(batch, self.reference_weight)
        weight = w_all.sum(-1)
        logq = normalise(pool(logp_all, w_all, rule), weight, rule, batch.log_ref)
        u = batch.uniform
        if u is None:
            u = torch.rand(weight.shape, generator=generator, device=weight.device,
                           dtype=weight.dtype)
        token = token_of(logq, u)
        w = w_all[:, :-1]
        if self.payment == "pay_as_bid":
            pay = torch.where(w > 0, w, 0.0)
        else:
            pooled, total = others(logp_all, w_all, rule)
            pay = payments(self.payment, rule, b=w, logq=logq.unsqueeze(-2),
                           token=token.unsqueeze(-1), u=u.unsqueeze(-1), logp_i=batch.logp,
                           pooled_minus=pooled, total_minus=total,
                           log_ref=batch.log_ref.unsqueeze(-2))
        d = divergence(batch.logp, logq.unsqueeze(-2), rule)
        return TokenOutcome(logq, token, pay, d, entropy(logq), weight)

    def divergence(self, logp: Tensor, logq: Tensor) -> Tensor:
        """D [...] (nats) of the rule: KL(p || q) linear, KL(q || p) log-linear; logp, logq
        [..., V] broadcastable."""
        return divergence(logp, logq, self.rule)

    def deviation_utilities(self, batch: TokenBatch, true_logp: Tensor, values: Tensor,
                            alt_bids: Tensor, report_logp: Tensor | None = None) -> Tensor:
        """See the module-level `deviation_utilities`: [B, n, K] (money) from true_logp
        [B, n, V], values [B, n], alt_bids [B, n, K] and, optionally, the deviators' reported
        laws report_logp [B, n, K, V]."""
        return deviation_utilities(batch, true_logp, values, alt_bids, self.rule, self.payment,
                                   self.reference_weight, report_logp)


@register_mechanism("token_linear")
class TokenLinear(TokenAuction):
    """Linear aggregation, q = sum_i b_i p_i / sum_i b_i; D_i = KL(p_i || q)."""

    rule: ClassVar[str] = "linear"


@register_mechanism("token_loglinear")
class TokenLogLinear(TokenAuction):
    """Log-linear aggregation, q ∝ exp(sum_i b_i log p_i / sum_i b_i); D_i = KL(q || p_i)."""

    rule: ClassVar[str] = "loglinear"
