"""MOSAIC's per-round metrics and what they mean (metric specifications).

Money and rewards are in reward units per auction; log-probabilities and KL in nats. Gains are
eq. 19's of the paper, averaged over entrants: reward when in minus reward when out (the out
world re-generated), and the same for utility (which pays).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from genmarket.market.engine.seam import MetricSpec, Panel
from genmarket.mechanisms.mosaic.worlds import pearson, reply_quality

__all__ = ["METRICS", "PANELS", "round_metrics"]

PANELS = (
    Panel("revenue", "Revenue and advertisers' reward", "money"),
    Panel("entry", "Entry (unraveling: relevant advertisers leaving)", "share of advertisers entering"),
    Panel("report_ratio", "Reports", "report multiplier"),
    Panel("incentives", "Incentives: gain from misreporting", "money"),
    Panel("gains", "Gain from participating (the paper's eq. 19)", "money"),
    Panel("quality", "Reply quality: log-probability of the returned reply under π_r",
          "log π_r (nats)"),
    Panel("kl", "Reply distribution: KL divergence to the reference π_ref", "KL (nats)"),
)


def _truthful(scenario) -> dict[str, float]:
    """Reporting the true reward scale (multiplier 1), a dominant strategy of MOSAIC with its
    DSIC payments (Theorem 5.1 of the paper), whatever the world or entry."""
    return {"truthful report (dominant strategy)": 1.0}


METRICS = (
    MetricSpec("revenue", "revenue (payments)", "money", "revenue", compared=True),
    MetricSpec("welfare", "advertisers' reward", "money", "revenue"),
    MetricSpec("logp_opt", "log π_r(returned reply)", "nats", "quality", compared=True),
    MetricSpec("kl_ref", "KL to reference", "nats", "kl"),
    MetricSpec("reward_gain", "reward gain", "money", "gains"),
    MetricSpec("utility_gain", "utility gain", "money", "gains", compared=True),
    MetricSpec("gain_correlation", "corr(reward gain, utility gain), offset", "r", None),
    MetricSpec("gain_correlation_no_offset", "corr(reward gain, utility gain), no offset", "r",
               None),
    MetricSpec("ir_share", "share of entrants with utility gain >= 0", "share", None),
    MetricSpec("entry_rate", "entry rate", "share", "entry", compared=True),
    MetricSpec("entry_rate_relevant", "entry rate (relevant)", "share", "entry",
               unraveling=True, compared=True),
    MetricSpec("entry_rate_irrelevant", "entry rate (irrelevant)", "share", "entry", compared=True),
    MetricSpec("mean_report_ratio", "reported / true reward scale", "ratio", "report_ratio",
               _truthful, compared=True),
    MetricSpec("misreport_gain", "misreport gain, others' reports held fixed", "money", "incentives", compared=True),
    MetricSpec("regret", "regret", "money", "incentives"),
    MetricSpec("utility", "utility", "money", None, compared=True),
)


def round_metrics(adapter, q, cand, true, batch, out, reward, gross, gain, out_reward, m, scale,
                  entered, grid_u) -> dict[str, Tensor]:
    """The round's metrics, [R] each, in the order of METRICS. grid_u [R, B, n, G+1] is every
    advertiser's utility on the deviation grid (truthful last); the others as in the adapter."""
    spec = adapter.spec
    R, B, n = spec.R, spec.B, spec.n
    dt = true.dtype
    mask = batch.mask
    w = mask.to(dt).view(R, B, n)
    reward_gain = (reward - out_reward).view(R, B, n)  # entrants' (others are weighted 0)
    utility_gain = gain.view(R, B, n)
    C = out.offset_value.view(R, B, n)
    offset_on = spec.scenario.mechanism.offset
    gain_with = utility_gain if offset_on else utility_gain + C
    gain_without = utility_gain - C if offset_on else utility_gain

    total = (true * mask.unsqueeze(-1)).sum(1) / adapter.tau  # [RB, M]
    exact = getattr(adapter.backend, "log_partition", None)
    if exact is not None:
        log_z = exact(q, adapter.slots, m.reshape(R * B, n) * mask.to(dt) / adapter.tau)
    else:  # importance sampling over the round's candidates
        log_z = torch.logsumexp(total + cand.log_ref - cand.log_gen, -1) - math.log(adapter.M)
    logp_opt, kl = reply_quality(out.allocation, cand, total, log_z)

    best = grid_u[..., :-1].amax(-1).mean(1)  # [R, n]
    misreport = (best - grid_u[..., -1].mean(1)).mean(-1)
    ent = entered.to(dt)
    n_in = ent.sum(-1)
    realised = gross.view(R, B, n).mean(1)
    regret = ((best - realised) * ent).sum(-1) / n_in

    mean_gain = (utility_gain * w).sum(1) / w.sum(1)  # [R, n], NaN when out all round
    ir = torch.where(entered, (mean_gain >= 0).to(dt), torch.nan)

    def per_replica(x):  # [RB] -> [R]
        return x.view(R, B).mean(1)

    def share(cols):  # share of these advertisers entering; NaN if there are none
        return ent[:, cols].mean(-1) if cols.any() else torch.full_like(n_in, float("nan"))

    return {
        "revenue": out.payment.sum(-1).view(R, B).mean(-1),
        "welfare": reward.sum(-1).view(R, B).mean(-1),
        "logp_opt": per_replica(logp_opt),
        "kl_ref": per_replica(kl),
        "reward_gain": (reward_gain * w).sum((1, 2)) / w.sum((1, 2)),
        "utility_gain": (utility_gain * w).sum((1, 2)) / w.sum((1, 2)),
        "gain_correlation": pearson(reward_gain, gain_with, w),
        "gain_correlation_no_offset": pearson(reward_gain, gain_without, w),
        "ir_share": torch.nanmean(ir, -1),
        "entry_rate": ent.mean(-1),
        "entry_rate_relevant": share(adapter.relevant),
        "entry_rate_irrelevant": share(~adapter.relevant),
        "mean_report_ratio": ((scale / m.clamp_min(1e-30)) * w).sum((1, 2)) / w.sum((1, 2)),
        "misreport_gain": misreport,
        "regret": regret,
        "utility": (realised - ent * spec.entry_cost).mean(-1),
    }
