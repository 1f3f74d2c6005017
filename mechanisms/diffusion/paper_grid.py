"""The paper's bid grid on an image backend (seed 000, Section 3 and Table 1), independent of
the scenario: every base prompt with its two advertisers, every (b1, b2) of the grid, every noise
seed, one number of samples k at a time; the auction and the single-winner baseline on common
noise (`run_auction`), then the truthful-bidding regret from the same cells.

Noise: seed s of base prompt p starts every one of its auctions from the same k_max initial
noises (noise[s, p, :k] for k samples: the first k of them), so every bid of the grid, the
leave-one-out re-runs and the baseline are compared on the same draws (common random numbers),
and the runs at k = 25 use the first 25 of the 50 draws of k = 50.

Regret (Section 3.4): advertiser 2 bids its true value m2 (a value of the b2 grid) and
advertiser 1, of true value m1 (a value of the b1 grid), may bid any b1 of the grid; its utility
is m1 alpha_1(kept image) - payment_1 at each of them, on the same noise. Regret = (max over b1 of
u - u(truthful)) / u(truthful) (NaN where u(truthful) <= 0, e.g. m1 = 0), distance = |best b1 -
m1| (the lowest best bid on ties).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from genmarket.mechanisms.backends.image.base import ImageBackend
from genmarket.mechanisms.diffusion.auction import run_auction
from genmarket.mechanisms.diffusion.mechanism import regret as regret_of

__all__ = ["IMAGE_BIDS", "draw_noise", "grid_index", "grid_table", "image_row", "regret_table",
           "share"]

# Fig. 5's bids (advertiser 1, advertiser 2)
IMAGE_BIDS = ((0.0, 1.0), (0.3, 0.7), (0.5, 0.5), (0.7, 0.3), (1.0, 0.0))
# numbers (noise and images, per call) that one run_auction call may hold: 2^24 (64 MiB float32)
CALL_NUMBERS = 1 << 24


def draw_noise(seed: int, seeds: int, prompts: int, k: int, shape: tuple[int, ...],
               dtype: torch.dtype) -> Tensor:
    """Standard normal initial noise [seeds, prompts, k, *shape] (CPU), from a torch generator
    seeded with `seed`: the same for every grid point, run and k (the module docstring)."""
    g = torch.Generator().manual_seed(int(seed))
    return torch.randn(seeds, prompts, k, *shape, generator=g, dtype=torch.float64).to(dtype)


def grid_index(grid: list[float], value: float, name: str) -> int:
    """The index of `value` in `grid` (to 1e-9). Raises ValueError naming `name` if it is not
    on the grid."""
    for i, g in enumerate(grid):
        if abs(g - value) <= 1e-9:
            return i
    raise ValueError(f"{name} = {value!r}: not on the bid grid {grid}")


def share(b1, b2):
    """Advertiser 1's normalised bid b1 / (b1 + b2) (the paper's Fig. 1 axis); NaN where both
    bids are 0."""
    b1, b2 = np.asarray(b1, float), np.asarray(b2, float)
    total = b1 + b2
    return np.where(total > 0, b1 / np.where(total > 0, total, 1.0), np.nan)


def grid_table(backend: ImageBackend, pairs: list[tuple[int, int, int]], bids1: list[float],
               bids2: list[float], k: int, noise: Tensor, *, clamp: bool = True,
               method: str = "closed_form", dtype: torch.dtype = torch.float64,
               progress=None) -> pd.DataFrame:
    """One row per auction (base prompt p, seed s, b1, b2) at k samples, run with its baseline.

    pairs — (base prompt, advertiser 1, advertiser 2) indices into backend.world, one per base
    prompt of the experiment; noise [seeds, len(pairs), >= k, *backend.shape]; progress(n) is
    called with the auctions done after each backend call. Columns: prompt (the index of the
    pair in `pairs`), seed, i1, i2 (grid indices), b1, b2, share, k; align1, align2 (cosines of the kept image), welfare (bid-welfare
    sum_i b_i alpha_i, bid units: the true welfare when both bid truthfully), pay1, pay2 (bid
    units), quality; the baseline's base_align1, base_align2, base_welfare, base_quality and
    base_winner (the slot whose prompt drew the kept image); gain = welfare / base_welfare - 1
    where base_welfare > 0, else NaN.
    """
    S, P = noise.shape[0], len(pairs)
    G1, G2 = len(bids1), len(bids2)
    p, s, i2, i1 = (x.reshape(-1) for x in np.meshgrid(np.arange(P), np.arange(S), np.arange(G2),
                                                          np.arange(G1), indexing="ij"))
    pair = np.asarray(pairs, dtype=np.int64)
    b = np.stack([np.asarray(bids1, float)[i1], np.asarray(bids2, float)[i2]], 1)
    B = len(p)
    per = 5 * k * math.prod(backend.shape) * 2  # rows x samples x numbers, noise and images
    step = max(1, CALL_NUMBERS // per)
    cols: dict[str, list] = {c: [] for c in (
        "align1", "align2", "welfare", "pay1", "pay2", "quality", "base_align1", "base_align2",
        "base_welfare", "base_quality", "base_winner")}
    for lo in range(0, B, step):
        sl = slice(lo, min(B, lo + step))
        bids = torch.tensor(b[sl], dtype=dtype)
        mask = torch.ones_like(bids, dtype=torch.bool)
        run = run_auction(backend, torch.as_tensor(pair[p[sl], 0]),
                          torch.as_tensor(pair[p[sl], 1:]), bids, mask,
                          noise[torch.as_tensor(s[sl]), torch.as_tensor(p[sl]), :k],
                          clamp=clamp, method=method)
        out, base = run.outcome, run.baseline
        for name, x in (("align1", out.alignment[:, 0]), ("align2", out.alignment[:, 1]),
                        ("welfare", out.welfare), ("pay1", out.payment[:, 0]),
                        ("pay2", out.payment[:, 1]), ("quality", run.quality),
                        ("base_align1", base.alignment[:, 0]),
                        ("base_align2", base.alignment[:, 1]), ("base_welfare", base.welfare),
                        ("base_quality", run.baseline_quality), ("base_winner", base.chosen // k)):
            cols[name].append(x.detach().double().cpu().numpy())
        if progress is not None:
            progress(sl.stop - sl.start)
    df = pd.DataFrame({"prompt": p, "seed": s, "i1": i1, "i2": i2, "b1": b[:, 0], "b2": b[:, 1],
                       "share": share(b[:, 0], b[:, 1]), "k": k,
                       **{c: np.concatenate(v) for c, v in cols.items()}})
    df["base_winner"] = df["base_winner"].astype(np.int64)
    bw = df["base_welfare"].to_numpy()
    df["gain"] = np.where(bw > 0, df["welfare"] / np.where(bw > 0, bw, 1.0) - 1, np.nan)
    return df


def regret_table(auctions: pd.DataFrame, bids1: list[float], values1: list[float],
                 values2: list[float], bids2: list[float]) -> pd.DataFrame:
    """Advertiser 1's regret of truthful bidding (module docstring) from the grid's auctions at
    one k: one row per (prompt, seed, m1, m2). Columns: prompt, seed, k, m1, m2, u_truthful,
    u_best (money: value units, m alpha - payment), best_bid, regret (relative; NaN where
    u_truthful <= 0), distance = |best_bid - m1|."""
    P, S = auctions["prompt"].nunique(), auctions["seed"].nunique()
    G1, G2 = len(bids1), len(bids2)
    df = auctions.sort_values(["prompt", "seed", "i2", "i1"])
    align = torch.tensor(df["align1"].to_numpy().reshape(P, S, G2, G1))
    pay = torch.tensor(df["pay1"].to_numpy().reshape(P, S, G2, G1))
    t1 = torch.tensor([grid_index(bids1, m, "experiment.values1") for m in values1])
    t2 = [grid_index(bids2, m, "experiment.values2") for m in values2]
    m1 = torch.tensor(values1, dtype=align.dtype)
    # u [P, S, V2, V1, G1]: advertiser 2 truthful at m2, advertiser 1 of value m1 bidding b1
    u = m1.view(-1, 1) * align[:, :, t2].unsqueeze(3) - pay[:, :, t2].unsqueeze(3)
    truthful = t1.view(1, 1, 1, -1).expand(u.shape[:-1])
    rel, best = regret_of(u, truthful)
    u_true = u.gather(-1, truthful.unsqueeze(-1)).squeeze(-1)
    best_bid = torch.tensor(bids1, dtype=align.dtype)[best]
    V2, V1 = len(values2), len(values1)
    pp, ss, v2, v1 = (x.reshape(-1) for x in np.meshgrid(np.arange(P), np.arange(S),
                                                           np.arange(V2), np.arange(V1),
                                                           indexing="ij"))
    prompts = np.sort(auctions["prompt"].unique())
    seeds = np.sort(auctions["seed"].unique())
    m1v, m2v = np.asarray(values1, float)[v1], np.asarray(values2, float)[v2]
    return pd.DataFrame({
        "prompt": prompts[pp], "seed": seeds[ss], "k": int(auctions["k"].iloc[0]),
        "m1": m1v, "m2": m2v, "u_truthful": u_true.reshape(-1).numpy(),
        "u_best": u.amax(-1).reshape(-1).numpy(), "best_bid": best_bid.reshape(-1).numpy(),
        "regret": rel.reshape(-1).numpy(),
        "distance": np.abs(best_bid.reshape(-1).numpy() - m1v)})


def image_row(backend: ImageBackend, pair: tuple[int, int, int], bids, noise: Tensor, *,
              clamp: bool = True, method: str = "closed_form",
              dtype: torch.dtype = torch.float64) -> tuple[list[bytes], pd.DataFrame]:
    """Fig. 5: the kept image of one auction at each (b1, b2) of `bids` for base prompt and
    advertisers `pair`, all from noise [k, *backend.shape]. Returns (PNG bytes per bid pair, a
    table of b1, b2, align1, align2, quality of each kept image)."""
    bids_t = torch.tensor([list(x) for x in bids], dtype=dtype)
    n = len(bids_t)
    run = run_auction(backend, torch.full((n,), pair[0], dtype=torch.long),
                      torch.tensor([list(pair[1:])] * n, dtype=torch.long), bids_t,
                      torch.ones(n, 2, dtype=torch.bool), noise.unsqueeze(0).expand(n, *noise.shape),
                      baseline=False, clamp=clamp, method=method)
    pngs = [backend.to_png(img) for img in run.images]
    table = pd.DataFrame({"b1": bids_t[:, 0].numpy(), "b2": bids_t[:, 1].numpy(),
                          "align1": run.outcome.alignment[:, 0].double().cpu().numpy(),
                          "align2": run.outcome.alignment[:, 1].double().cpu().numpy(),
                          "quality": run.quality.double().cpu().numpy()})
    return pngs, table
