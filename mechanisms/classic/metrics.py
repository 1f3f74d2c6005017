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

__all__ = ["METRICS", "PANELS", "bid_theory", "optimal_welfare", "revenue_theory", "round_metrics",
           "uniform_bidders"]


def uniform_bidders(scenario) -> tuple[int, float] | None:
    """(n, h) when the scenario is the textbook case of the closed forms: one slot of click rate
    1, no reserve, every advertiser always in and bidding for itself (no delegation), values iid
    U[0, h] for all n of them (the same h > 0); else None, and no theory line is drawn."""
    mech = scenario.mechanism
    if getattr(mech, "reserve", 0) or (getattr(mech, "ctrs", None) or [1.0]) != [1.0]:
        return None
    highs = set()
    for g in scenario.advertisers:
        d = g.value_dist
        if g.entry.kind != "always" or g.report is not None or d.dist != "uniform" or d.low != 0:
            return None
        highs.add(d.high)
    n = scenario.n_advertisers
    if len(highs) != 1 or n < 2 or not highs.pop() > 0:
        return None
    return n, scenario.advertisers[0].value_dist.high


def _truthful_is_dominant(scenario) -> bool:
    """Bidding one's value is a dominant strategy: VCG (any slots), or second price and GSP with
    one slot (GSP is second price there), whatever the values, reserve or entry; not when an
    autobidder bids for the advertiser (the bid is then the autobidder's, not the value's)."""
    mech = scenario.mechanism
    one_slot = len(getattr(mech, "ctrs", None) or [1.0]) == 1
    if any(g.report is not None for g in scenario.advertisers):
        return False
    return mech.kind == "vcg" or (one_slot and mech.kind in ("second_price", "gsp"))


def revenue_theory(scenario) -> dict[str, float]:
    """{label: expected revenue per auction} for n iid U[0, h] bidders (see `uniform_bidders`):
    h(n-1)/(n+1), the expected second-highest value, which first price reaches at its Bayes-Nash
    equilibrium and second price (GSP, VCG with one slot) under truthful bidding (revenue
    equivalence; Vickrey, 1961). Empty elsewhere."""
    case = uniform_bidders(scenario)
    if case is None:
        return {}
    n, h = case
    y = h * (n - 1) / (n + 1)
    if scenario.mechanism.kind == "first_price":
        return {f"Bayes-Nash revenue h(n-1)/(n+1) (n={n}, h={h:g})": y}
    if scenario.mechanism.kind in ("second_price", "gsp", "vcg"):
        return {f"truthful-bidding revenue h(n-1)/(n+1) (n={n}, h={h:g})": y}
    return {}


def bid_theory(scenario) -> dict[str, float]:
    """{label: bid / value}: 1 where truthful bidding is dominant (`_truthful_is_dominant`);
    (n-1)/n, the Bayes-Nash bid b(v) = v(n-1)/n, in first price with n iid U[0, h] bidders (see
    `uniform_bidders`). Empty elsewhere."""
    if _truthful_is_dominant(scenario):
        return {"truthful bidding (dominant strategy)": 1.0}
    case = uniform_bidders(scenario)
    if case is None or scenario.mechanism.kind != "first_price":
        return {}
    n = case[0]
    return {f"Bayes-Nash bid (n-1)/n (n={n})": (n - 1) / n}


PANELS = (
    Panel("revenue", "Revenue and welfare", "money"),
    Panel("entry", "Entry", "share of advertisers entering"),
    Panel("bid_ratio", "Bid shading", "bid / true value"),
    Panel("incentives", "Incentives: gain from deviating on the grid", "money"),
)

METRICS = (
    MetricSpec("revenue", "revenue", "money", "revenue", revenue_theory, compared=True),
    MetricSpec("welfare", "welfare", "money", "revenue", compared=True),
    MetricSpec("optimal_welfare", "optimal welfare", "money", "revenue"),
    MetricSpec("entry_rate", "entry rate", "share", "entry", compared=True),
    MetricSpec("mean_bid_ratio", "bid / value", "ratio", "bid_ratio", bid_theory, compared=True),
    MetricSpec("misreport_gain", "misreport gain, policies held fixed", "money", "incentives",
               compared=True),
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
