"""Per-round market metrics, one value per replica.

All money amounts are in value units per auction (the unit of the advertisers' values).
`round_metrics` returns a dict of numpy arrays [R]:

- revenue: platform revenue per auction (sum of payments).
- welfare: value created per auction, sum_i v_i * units_i (true values, entry costs excluded).
- optimal_welfare: the best slot assignment of all advertisers' true values (entered or not).
- entry_rate, entry_rate_<group>: share of advertisers (of the group) in the market this round.
- mean_bid_ratio: mean bid / true value over entered bids with a positive value.
- misreport_gain: mean over advertisers of (best utility over the deviation grid) minus (utility of
  the truthful report), both on the same auctions and random numbers. For an advertiser who bids,
  the grid is bid multipliers of its value; for one who delegates, report multipliers handed to its
  autobidder.
- regret: mean over entered advertisers of (best grid utility) minus (realised utility).
- utility: mean utility per advertiser and auction (entry costs included).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def optimal_welfare(v: Tensor, ctrs: Tensor) -> Tensor:
    """v [R, B, n] true values, ctrs [S] -> mean over B of the best assignment value [R]."""
    S = min(ctrs.numel(), v.shape[-1])
    top = v.topk(S, dim=-1).values
    return (top * ctrs[:S]).sum(-1).mean(-1)


def round_metrics(model, v, bids, entered, alloc, pay, gross, dev) -> dict[str, np.ndarray]:
    """Metrics of one round. v, bids, alloc, pay, gross [R, B, n]; entered [R, n];
    dev = (allocation, payment) [R, B, n, G+1] at the deviation grid, truthful last."""
    dt = v.dtype
    ent = entered.to(dt)
    ctrs = torch.as_tensor(model.slot_ctrs, device=v.device, dtype=dt)

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

    out = {
        "revenue": pay.sum(-1).mean(-1),
        "welfare": (v * alloc).sum(-1).mean(-1),
        "optimal_welfare": optimal_welfare(v, ctrs),
        "entry_rate": ent.mean(-1),
        "mean_bid_ratio": bid_ratio,
        "misreport_gain": misreport,
        "regret": regret,
        "utility": (realised - ent * model.entry_cost).mean(-1),
    }
    for g in model.groups:
        out[f"entry_rate_{g.name}"] = ent[:, g.cols].mean(-1)
    arrays = {k: x.double().cpu().numpy() for k, x in out.items()}
    arrays["step"] = np.full(model.R, model.steps, dtype=np.int64)
    return arrays

