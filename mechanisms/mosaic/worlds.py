"""MOSAIC's counterfactual worlds and reply-quality formulas, shared by the market adapter and
the one-shot experiment.

In the world of advertiser i only i's participation is flipped (`flipped_masks`); running the
mechanism there on re-generated candidates gives i's outside option (or its utility of entering,
for one who stayed out). Rewards and payments are in reward units; qualities in nats.
`flipped_masks` and `pearson` live in `genmarket.mechanisms.base` (the token auction uses them
too) and are re-exported here.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from genmarket.mechanisms.base import flipped_masks, pearson
from genmarket.mechanisms.mosaic.mechanism import MosaicBatch

__all__ = ["flipped_masks", "own_world_outcomes", "pearson", "reply_quality"]


def own_world_outcomes(mechanism, cand, flipped: Tensor, noise: Tensor, value: Tensor,
                       report: Tensor, shift: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Run the n flipped worlds of `flipped_masks` and keep each advertiser's own.

    cand — the worlds' candidates, world-major [n * B, ...]; noise [B]; value, report [B, n] —
    true and reported reward scales (reports are report * r + shift, shift [n] or None).
    Returns (reward, gross) [B, n]: advertiser i's expected true reward of the reply shown in
    world i, and that minus its payment there (0 when it is out), in reward units.
    """
    B, n = value.shape
    true = value.repeat(n, 1).unsqueeze(-1) * cand.rewards
    reported = report.repeat(n, 1).unsqueeze(-1) * cand.rewards
    if shift is not None:
        reported = reported + shift.view(1, -1, 1)
    out = mechanism.run(MosaicBatch(reported, flipped, cand.log_ref, cand.log_gen, noise.repeat(n)))
    reward = (out.allocation.unsqueeze(1) * true).sum(-1).view(n, B, n)
    gross = reward - out.payment.view(n, B, n)
    idx = torch.arange(n, device=value.device)
    return reward[idx, :, idx].T, gross[idx, :, idx].T


def reply_quality(p: Tensor, cand, total: Tensor, log_z: Tensor) -> tuple[Tensor, Tensor]:
    """Quality of the returned reply, per auction [B]: (sum_j p_j log pi_r(y_j), the estimated
    KL(outcome law || pi_ref)), in nats. p [B, M] allocation; total [B, M] sum of the
    participants' true rewards / tau; log_z [B]. The KL is the sampling-importance-resampling
    estimate: the outcome's density at y_j is about M p_j pi_gen(y_j) (exact for M = 1, tending
    to KL(pi_r || pi_ref) as M grows)."""
    M = p.shape[-1]
    logp_opt = (p * (cand.log_ref + total - log_z.unsqueeze(-1))).sum(-1)
    kl = (torch.xlogy(p, p) + p * (math.log(M) + cand.log_gen - cand.log_ref)).sum(-1)
    return logp_opt, kl
