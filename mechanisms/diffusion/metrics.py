"""The diffusion image auction's per-round metrics and what they mean (metric specifications).

Money is in value units per auction: a value m_i is money per unit of alignment, alignment a
cosine in [-1, 1]. Averages over "entrants" weigh each auction an advertiser took part in once.
The incentive metrics re-draw each auction for every deviation-grid bid on the same noise (one
re-run of n + 1 runs of k images per advertiser and grid point, collection rounds only): they
are Monte Carlo estimates with the scenario's k samples per run.
"""

from __future__ import annotations

import torch
from torch import Tensor

from genmarket.market.engine.seam import MetricSpec, Panel
from genmarket.mechanisms.diffusion.mechanism import regret as paper_regret

__all__ = ["METRICS", "PANELS", "round_metrics"]

PANELS = (
    Panel("revenue", "Revenue and welfare", "money"),
    Panel("welfare_gain", "Welfare gain over the single-winner VCG baseline (same noise)", "money"),
    Panel("alignment", "Alignment of the kept image with each group's prompt", "cosine"),
    Panel("bids", "Bids per unit of alignment", "bid"),
    Panel("bid_ratio", "Bids", "bid / value"),
    Panel("incentives", "Incentives: gain from misbidding (Monte Carlo, k samples)", "money"),
    Panel("entry", "Entry (unraveling: relevant advertisers leaving)",
          "share of advertisers entering"),
    Panel("quality", "Image quality (cosine with the quality prompt)", "cosine"),
)


def _truthful(scenario) -> dict[str, float]:
    """Bidding one's value per unit of alignment (multiplier 1): the VCG bid, truthful up to the
    Monte Carlo error of k samples."""
    return {"truthful bid": 1.0}


MC = "Monte Carlo, k samples"
METRICS = (
    MetricSpec("revenue", "revenue (payments)", "money", "revenue", compared=True),
    MetricSpec("welfare", "welfare, sum of m_i alpha_i over entrants", "money", "revenue",
               compared=True),
    MetricSpec("baseline_welfare", "single-winner baseline's welfare", "money", "revenue"),
    MetricSpec("baseline_revenue", "single-winner baseline's revenue", "money", "revenue"),
    MetricSpec("welfare_gain", "welfare gain over the single-winner baseline", "money",
               "welfare_gain", compared=True),
    MetricSpec("alignment_{group}", "{group}", "", "alignment", per_group=True),
    MetricSpec("bid_{group}", "{group}", "", "bids", per_group=True),
    MetricSpec("mean_bid_ratio", "bid / value", "ratio", "bid_ratio", _truthful, compared=True),
    MetricSpec("misreport_gain", f"gain of the best fixed bid multiplier over truthful ({MC})",
               "money", "incentives", compared=True),
    MetricSpec("regret_truthful", f"regret of truthful bidding, per auction ({MC})", "money",
               "incentives"),
    MetricSpec("regret_truthful_relative",
               f"regret of truthful bidding relative to its utility, the paper's ({MC})", "ratio",
               None),
    MetricSpec("regret", f"regret of the bids placed against the best fixed multiplier ({MC})",
               "money", "incentives"),
    MetricSpec("entry_gain", "gain from entering (utility in minus value of the image without)",
               "money", None),
    MetricSpec("entry_rate", "entry rate", "share", "entry", compared=True),
    MetricSpec("entry_rate_relevant", "entry rate (relevant)", "share", "entry",
               unraveling=True, compared=True),
    MetricSpec("entry_rate_irrelevant", "entry rate (irrelevant)", "share", "entry",
               compared=True),
    MetricSpec("quality", "quality of the kept image", "", "quality", compared=True),
    MetricSpec("baseline_quality", "quality of the baseline's image", "", "quality"),
    MetricSpec("clamped_share", "share of entrants' payments clamped", "share", None),
    MetricSpec("utility", "utility", "money", None, compared=True),
)


def round_metrics(adapter, rnd, cleared, dev: Tensor) -> dict[str, Tensor]:
    """The round's metrics, [R] each, in the order of METRICS (per-group columns once per
    group). dev [R, B, n, G + 1]: every advertiser's utility on the deviation grid, forced in,
    truthful last (`DiffusionAdapter.deviation_utility`)."""
    spec = adapter.spec
    R, B, n = spec.R, spec.B, spec.n
    e = cleared.extra
    run, mask, m, bids = e["run"], e["mask"], e["m"], e["bids"]
    dt = m.dtype
    nan = torch.full((R,), float("nan"), dtype=dt, device=m.device)
    w = mask.to(dt).view(R, B, n)
    ent = rnd.entered.to(dt)

    def per_replica(x):  # [RB] -> [R]
        return x.view(R, B).mean(1)

    def over_entrants(x):  # [R, B, n] -> [R], NaN with no entrant
        return (x * w).sum((1, 2)) / w.sum((1, 2))

    out = run.outcome
    welfare = (m * out.alignment).sum(-1)  # out.alignment is 0 for those out
    res = {"revenue": per_replica(out.payment.sum(-1)), "welfare": per_replica(welfare)}
    if run.baseline is not None:
        b_welfare = (m * run.baseline.alignment).sum(-1)
        res.update(baseline_welfare=per_replica(b_welfare),
                   baseline_revenue=per_replica(run.baseline.payment.sum(-1)),
                   welfare_gain=per_replica(welfare - b_welfare))
    else:
        res.update(baseline_welfare=nan, baseline_revenue=nan, welfare_gain=nan)
    align = e["alignment"].view(R, B, n)
    for name, x in (("alignment", align), ("bid", bids.view(R, B, n))):
        for g in spec.groups:  # NaN for a group out all round
            wg = w[..., g.cols]
            res[f"{name}_{g.name}"] = (x[..., g.cols] * wg).sum((1, 2)) / wg.sum((1, 2))
    ratio = bids / m.clamp_min(1e-30)
    res["mean_bid_ratio"] = over_entrants(ratio.view(R, B, n))

    truthful = dev[..., -1]
    fixed_best = dev[..., :-1].mean(1).amax(-1)  # [R, n]: the best fixed multiplier's mean
    n_in = ent.sum(-1)
    res["misreport_gain"] = ((fixed_best - truthful.mean(1)) * ent).sum(-1) / n_in
    best = dev.amax(-1)  # per auction, truthful included: >= truthful
    res["regret_truthful"] = over_entrants(best - truthful)
    index = torch.full(truthful.shape, dev.shape[-1] - 1, dtype=torch.long, device=dev.device)
    relative, _ = paper_regret(dev, index)  # NaN where truthful utility <= 0
    rel = torch.where(w > 0, relative, torch.full_like(relative, float("nan")))
    res["regret_truthful_relative"] = torch.nanmean(rel.reshape(R, -1), -1)
    realised = cleared.gross.mean(1)  # [R, n]
    res["regret"] = ((fixed_best - realised) * ent).sum(-1) / n_in
    res["entry_gain"] = over_entrants(torch.nan_to_num(e["gain"], nan=0.0).view(R, B, n))

    def share(cols):  # share of these advertisers entering; NaN if there are none
        return ent[:, cols].mean(-1) if adapter.has_relevance and cols.any() else nan

    res.update(entry_rate=ent.mean(-1), entry_rate_relevant=share(adapter.relevant),
               entry_rate_irrelevant=share(~adapter.relevant))
    res["quality"] = per_replica(run.quality.to(dt))
    res["baseline_quality"] = (per_replica(run.baseline_quality.to(dt))
                               if run.baseline_quality is not None else nan)
    clamped = (out.payment != out.payment_raw).to(dt).view(R, B, n)
    res["clamped_share"] = over_entrants(clamped)
    res["utility"] = (realised - ent * spec.entry_cost).mean(-1)
    return res
