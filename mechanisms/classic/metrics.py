"""The classic auctions' per-round metrics and what they mean (metric specifications).

All money amounts are in value units per auction (the unit of the advertisers' values).
`round_metrics` returns a dict of [R] tensors, one value per replica:

- revenue: platform revenue per auction (sum of payments).
- welfare: value created per auction, sum_i v_i * units_i (true values, entry costs excluded).
- optimal_welfare: the best slot assignment of all advertisers' true values (entered or not).
- entry_rate: share of advertisers in the market this round.
- mean_bid_ratio: mean bid / true value over entered bids with a positive value.
- misreport_gain: mean over advertisers of (best utility over the deviation grid) minus (utility of
  the truthful report), both on the same auctions and random numbers, with every policy held
  fixed. For an advertiser who bids, the grid is bid multipliers of its value; for one who
  delegates, report multipliers handed to its autobidder, whose policy stays as it is: the gain
  of a misreport the autobidder does not re-learn for (compare measures the learning answer).
- regret: mean over entered advertisers of (best grid utility) minus (realised utility).
- utility: mean utility per advertiser and auction (entry costs included).
"""

from __future__ import annotations

import torch
from torch import Tensor

from genmarket.market.engine.seam import MetricSpec, Panel

__all__ = ["METRICS", "PANELS", "optimal_welfare", "round_metrics"]


def _uniform_bidders(scenario) -> int | None:
    """n when the scenario is the textbook case: one slot, no reserve, everyone always in, values
    U[0, 1] for all; else None (no theory line is drawn)."""
    mech = scenario.mechanism
    if getattr(mech, "reserve", 0) or len(getattr(mech, "ctrs", None) or [1.0]) != 1:
        return None
    for g in scenario.advertisers:
        d = g.value_dist
        if g.entry.kind != "always" or g.report is not None or d.dist != "uniform" or d.support != (0.0, 1.0):
            return None
    return scenario.n_advertisers


def _revenue_theory(scenario) -> dict[str, float]:
    n = _uniform_bidders(scenario)
    if n is None or n < 2 or scenario.mechanism.kind not in ("first_price", "second_price"):
        return {}
    return {"theory (n-1)/(n+1)": (n - 1) / (n + 1)}


def _bid_theory(scenario) -> dict[str, float]:
    out = {"truthful": 1.0}
    n = _uniform_bidders(scenario)
    if n is not None and n >= 2 and scenario.mechanism.kind == "first_price":
        out["Bayes-Nash (n-1)/n"] = (n - 1) / n
    return out


PANELS = (
    Panel("revenue", "Revenue and welfare", "money"),
    Panel("entry", "Entry", "share of advertisers entering"),
    Panel("bid_ratio", "Bid shading", "bid / true value"),
    Panel("incentives", "Incentives: gain from deviating on the grid", "money"),
)

METRICS = (
    MetricSpec("revenue", "revenue", "money", "revenue", _revenue_theory, compared=True),
    MetricSpec("welfare", "welfare", "money", "revenue", compared=True),
    MetricSpec("optimal_welfare", "optimal welfare", "money", "revenue"),
    MetricSpec("entry_rate", "entry rate", "share", "entry", compared=True),
    MetricSpec("mean_bid_ratio", "bid / value", "ratio", "bid_ratio", _bid_theory, compared=True),
    MetricSpec("misreport_gain", "misreport gain, policies held fixed", "money", "incentives", compared=True),
    MetricSpec("regret", "regret", "money", "incentives", compared=True),
    MetricSpec("utility", "utility", "money", None, compared=True),
)


def optimal_welfare(v: Tensor, ctrs: Tensor) -> Tensor:
    """v [R, B, n] true values, ctrs [S] -> mean over B of the best assignment value [R]."""
    S = min(ctrs.numel(), v.shape[-1])
    top = v.topk(S, dim=-1).values
    return (top * ctrs[:S]).sum(-1).mean(-1)


def round_metrics(v, bids, entered, alloc, pay, gross, dev, slot_ctrs, entry_cost
                  ) -> dict[str, Tensor]:
    """Metrics of one round, [R] each. v, bids, alloc, pay, gross [R, B, n]; entered [R, n];
    dev = (allocation, payment) [R, B, n, G+1] at the deviation grid, truthful last;
    slot_ctrs — click-through rate per slot; entry_cost [n]."""
    dt = v.dtype
    ent = entered.to(dt)
    ctrs = torch.as_tensor(slot_ctrs, device=v.device, dtype=dt)

    a_k, p_k = dev
    u_k = (v.unsqueeze(-1) * a_k - p_k).mean(dim=1)  # [R, n, G+1]
    best = u_k[..., :-1].max(dim=-1).values
    misreport = (best - u_k[..., -1]).mean(dim=-1)
    realised = gross.mean(dim=1)
    n_in = ent.sum(-1)
    regret = ((best - realised) * ent).sum(-1) / n_in  # NaN when nobody entered

    counted = entered.unsqueeze(1) & (v > 0)
    ratio = torch.where(counted, bids / v.clamp_min(1e-30), torch.zeros_like(v))
    bid_ratio = ratio.sum((1, 2)) / counted.sum((1, 2))

    return {
        "revenue": pay.sum(-1).mean(-1),
        "welfare": (v * alloc).sum(-1).mean(-1),
        "optimal_welfare": optimal_welfare(v, ctrs),
        "entry_rate": ent.mean(-1),
        "mean_bid_ratio": bid_ratio,
        "misreport_gain": misreport,
        "regret": regret,
        "utility": (realised - ent * entry_cost).mean(-1),
    }
