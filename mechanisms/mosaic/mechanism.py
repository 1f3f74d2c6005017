"""MOSAIC: the aggregation auction over LLM replies (SPEC section 1; seed 001, Section 5).

B auctions, n advertiser slots, M candidate replies y_1..y_M per auction, tau > 0 the
platform's KL weight. Rewards and payments are in reward units; scores are log-weights.

    s_j       = sum_{i present} r_hat_i(y_j) / tau + log pi_ref(y_j) - log pi_gen(y_j)
    p         = softmax(s),  j* ~ p
    beta_-i,j = s_j without i's own term (the others' reports and the generator correction)
    U_i       = tau * logsumexp(r_hat_i / tau + beta_-i) + C_i       (interim utility)
    pay_i     = p . r_hat_i - U_i
    C_i       = -tau * logsumexp(beta_-i) with the offset (Section 5.3), 0 without it

Everything stays in log space, so rewards of any finite magnitude give finite numbers. Payments
can be negative. Advertisers outside the mask contribute nothing, pay nothing and get 0.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from genmarket.mechanisms.base import register_mechanism, sample

__all__ = [
    "Mosaic",
    "MosaicBatch",
    "MosaicOutcome",
    "absent_rewards",
    "allocation",
    "deviation_utilities",
    "offsets",
    "others_scores",
    "payments",
    "sample",
    "scores",
    "utilities",
]


@dataclass(frozen=True)
class MosaicBatch:
    """B auctions, each over M candidate replies, among n advertiser slots.

    rewards [B, n, M] float — reported rewards r_hat_i(y_j), finite.
    mask    [B, n] bool     — True where advertiser i takes part in auction b.
    log_ref [B, M] float    — log pi_ref(y_j | x).
    log_gen [B, M] float    — log pi_gen(y_j | x; c); equal to log_ref for the baseline generator.
    noise   [B] float       — uniforms in [0, 1) that pick the outcome j* by inverse CDF; None
                              draws them from the generator passed to the mechanism.
    """

    rewards: Tensor
    mask: Tensor
    log_ref: Tensor
    log_gen: Tensor
    noise: Tensor | None = None


@dataclass(frozen=True)
class MosaicOutcome:
    """What each auction returns and what each advertiser gets (all 0 where mask is False).

    allocation   [B, M] — p, the law of the outcome over the candidates.
    choice       [B] long — the sampled candidate j*.
    payment      [B, n] — pay_i, in reward units (can be negative).
    utility      [B, n] — interim utility at the reported rewards, p . r_hat_i - pay_i.
    offset       [B, n] — C_i as applied (zeros when the mechanism has offset=False).
    offset_value [B, n] — -tau * logsumexp(beta_-i) whatever the setting, so that
                          payment without offset = payment with offset + offset_value.
    scores       [B, M] — s_j.
    """

    allocation: Tensor
    choice: Tensor
    payment: Tensor
    utility: Tensor
    offset: Tensor
    offset_value: Tensor
    scores: Tensor


def _terms(rewards: Tensor, mask: Tensor, tau: float) -> Tensor:
    """r_hat_i / tau where present, exactly 0 elsewhere (whatever a masked-out row holds)."""
    return torch.where(mask.unsqueeze(-1), rewards / tau, 0.0)


def _scores_and_others(
    rewards: Tensor, mask: Tensor, log_ref: Tensor, log_gen: Tensor, tau: float
) -> tuple[Tensor, Tensor]:
    t = _terms(rewards, mask, tau)
    s = t.sum(-2) + (log_ref - log_gen)
    # s - own term: the rounding error is eps * |s|, i.e. float eps on the scale of the summed
    # rewards / tau, the resolution the scores themselves have.
    return s, s.unsqueeze(-2) - t


def scores(rewards: Tensor, mask: Tensor, log_ref: Tensor, log_gen: Tensor, tau: float) -> Tensor:
    """Candidate scores s [B, M] (log-weights) from rewards [B, n, M], mask [B, n],
    log_ref and log_gen [B, M]."""
    return _terms(rewards, mask, tau).sum(-2) + (log_ref - log_gen)


def others_scores(
    rewards: Tensor, mask: Tensor, log_ref: Tensor, log_gen: Tensor, tau: float
) -> Tensor:
    """beta_-i [B, n, M]: the scores without advertiser i's own term, for every slot i (a slot
    outside the mask gets the full scores s). Same inputs as `scores`."""
    return _scores_and_others(rewards, mask, log_ref, log_gen, tau)[1]


def allocation(scores: Tensor) -> Tensor:
    """p = softmax over candidates. scores [..., M] -> p [..., M], rows summing to 1."""
    return torch.softmax(scores, dim=-1)


def offsets(others: Tensor, tau: float) -> Tensor:
    """The offset C_i = -tau * logsumexp(beta_-i) [...] from others [..., M]: minus i's
    utility for reporting all-zero rewards, in reward units."""
    return -tau * torch.logsumexp(others, dim=-1)


def utilities(rewards: Tensor, others: Tensor, tau: float, offset: Tensor | float = 0.0) -> Tensor:
    """Interim utility at the reported rewards, U_i = tau * logsumexp(r_hat_i / tau + beta_-i)
    + C_i [...], from rewards [..., M], others [..., M] and offset C [...] (or a number)."""
    return tau * torch.logsumexp(rewards / tau + others, dim=-1) + offset


def payments(
    p: Tensor, rewards: Tensor, others: Tensor, tau: float, offset: Tensor | float = 0.0
) -> Tensor:
    """pay_i = p . r_hat_i - U_i [...], in reward units, from the allocation p [..., M] (the
    softmax of r_hat_i / tau + beta_-i), rewards and others [..., M], offset C [...]."""
    return torch.linalg.vecdot(p, rewards) - utilities(rewards, others, tau, offset)


def _others(batch: MosaicBatch, tau: float) -> Tensor:
    return others_scores(batch.rewards, batch.mask, batch.log_ref, batch.log_gen, tau)


def deviation_utilities(
    batch: MosaicBatch, true_rewards: Tensor, alt_reports: Tensor, tau: float, offset: bool
) -> Tensor:
    """Expected utility [B, n, K] of advertiser i at its true rewards when it reports
    alt_reports[b, i, k] instead, p' . r_i - pay_i(alt), everyone else's reports, the mask
    and the candidates staying as in `batch`; i takes part even where batch.mask[b, i] is False.

    true_rewards [B, n, M], alt_reports [B, n, K, M]. Exact in expectation over j* given the
    candidates; differentiable in alt_reports.
    """
    beta = _others(batch, tau)  # [B, n, M]
    # One [B, n, K, M] temporary, reused in place (the ops here are memory-bound at market
    # sizes): x = alt / tau + beta, then exp(x - max x). The shift is detached: it cancels in
    # every quantity below, gradients included.
    e = torch.add(beta.unsqueeze(-2), alt_reports, alpha=1 / tau)
    m = e.detach().amax(-1, keepdim=True)
    e = e.sub_(m).exp_()
    total = e.sum(-1)
    lse = m.squeeze(-1) + total.log()
    # p' . (r - alt) = (e @ r - e . alt) / total, without a [B, n, K, M] difference
    gain = (e @ true_rewards.unsqueeze(-1)).squeeze(-1)
    gain = gain - torch.einsum("...m,...m->...", e, alt_reports)
    u = gain / total + tau * lse
    if offset:
        u = u + offsets(beta, tau).unsqueeze(-1)
    return u


def absent_rewards(batch: MosaicBatch, true_rewards: Tensor, tau: float) -> Tensor:
    """Advertiser i's expected true reward p^{-i} . r_i [B, n] when it stays out, on the same
    candidates: p^{-i} = softmax(beta_-i). true_rewards [B, n, M]."""
    return torch.linalg.vecdot(allocation(_others(batch, tau)), true_rewards)


@register_mechanism("mosaic")
@dataclass(frozen=True)
class Mosaic:
    """The MOSAIC auction with KL weight tau > 0, with or without the offset of Section 5.3.

    Both generators of the paper use this class: the baseline passes log_gen = log_ref.
    """

    tau: float = 1.0
    offset: bool = True
    name: ClassVar[str]
    batch_type: ClassVar[type] = MosaicBatch

    def __post_init__(self) -> None:
        tau = self.tau
        if isinstance(tau, bool) or not isinstance(tau, numbers.Real):
            raise ValueError(f"tau = {tau!r}: must be a finite number > 0")
        if not math.isfinite(tau) or tau <= 0:
            raise ValueError(f"tau = {tau!r}: must be a finite number > 0")
        object.__setattr__(self, "tau", float(tau))
        object.__setattr__(self, "offset", bool(self.offset))

    def run(self, batch: MosaicBatch, generator: torch.Generator | None = None) -> MosaicOutcome:
        """Allocation, sampled outcome, payments and utilities of every auction in `batch`."""
        tau, rewards, mask = self.tau, batch.rewards, batch.mask
        s, beta = _scores_and_others(rewards, mask, batch.log_ref, batch.log_gen, tau)
        p = allocation(s)
        noise = batch.noise
        if noise is None:
            noise = torch.rand(s.shape[:-1], generator=generator, device=s.device, dtype=s.dtype)
        # For a participant r_hat_i / tau + beta_-i = s, so U_i = tau * logsumexp(s) + C_i: without
        # the offset every participant gets the same utility (Section 5.3.2). One reduction for
        # s and every beta_-i: a zero-reward participant's beta_-i is s bit for bit, so its
        # utility and payment come out exactly 0 (Lemma 5.2).
        lse = torch.logsumexp(torch.cat([s.unsqueeze(-2), beta], -2), -1)  # [B, 1 + n]
        zero = torch.zeros((), dtype=s.dtype, device=s.device)
        c_value = torch.where(mask, -tau * lse[..., 1:], zero)
        c = c_value if self.offset else torch.zeros_like(c_value)
        u = torch.where(mask, tau * lse[..., :1] + c, zero)
        pay = torch.where(mask, torch.linalg.vecdot(p.unsqueeze(-2), rewards) - u, zero)
        return MosaicOutcome(p, sample(p, noise), pay, u, c, c_value, s)

    def deviation_utilities(
        self, batch: MosaicBatch, true_rewards: Tensor, alt_reports: Tensor
    ) -> Tensor:
        """See the module-level `deviation_utilities`: [B, n, K] from true_rewards [B, n, M]
        and alt_reports [B, n, K, M]."""
        return deviation_utilities(batch, true_rewards, alt_reports, self.tau, self.offset)

    def absent_rewards(self, batch: MosaicBatch, true_rewards: Tensor) -> Tensor:
        """See the module-level `absent_rewards`: [B, n] from true_rewards [B, n, M]."""
        return absent_rewards(batch, true_rewards, self.tau)
