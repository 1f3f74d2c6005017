"""Bootstrap interval of a mixture's regret over the payoff samples (seeds) of every profile,
after gameanalysis' `bootstrap.mixture_regret`."""

from __future__ import annotations

import numpy as np

from genmarket.market.games.game import Game
from genmarket.market.games.regret import _devpay, _normalize, _regret, _require_complete, regret


def bootstrap_regret(game: Game, mix, n_boot: int = 1000, alpha: float = 0.05,
                     seed: int = 0, paired: bool = False) -> tuple[float, float, float]:
    """Regret of `mix` [S] with a percentile bootstrap interval: (regret, lo, hi).

    Each draw resamples every profile's seeds with replacement (all strategies of a profile
    keep the same seeds, as gameanalysis' `resample` does by default), recomputes mean
    payoffs and the regret of the same mixture; lo, hi are its alpha/2, 1-alpha/2 quantiles.
    `paired=True` draws one resample of seed indices for all profiles at once: right when
    sample k of every profile used the same random numbers (common random numbers, as
    genmarket's compare runs them), where independent resampling would break the pairing and
    overstate the noise in payoff differences. Needs the same number of seeds everywhere.
    """
    _require_complete(game)
    mix = _normalize(game, mix)
    pad, n = game._padded
    P, _, n_max = pad.shape
    if paired and (n != n_max).any():
        raise ValueError("paired bootstrap needs the same number of seeds in every profile")
    vals = np.nan_to_num(pad)
    rng = np.random.default_rng(seed)
    block = max(1, 2_000_000 // max(P * n_max, 1))
    boot = []
    for lo in range(0, n_boot, block):
        B = min(block, n_boot - lo)
        u = rng.random((B, 1 if paired else P, n_max))
        draw = (np.broadcast_to(u, (B, P, n_max)) * n[None, :, None]).astype(int)
        use = np.broadcast_to(np.arange(n_max) < n[:, None], draw.shape)
        flat = (np.arange(B)[:, None, None] * P + np.arange(P)[None, :, None]) * n_max + draw
        picks = np.bincount(flat[use], minlength=B * P * n_max).reshape(B, P, n_max)
        means = np.einsum("bpk,psk->bps", picks, vals) / n[None, :, None]
        dev = _devpay(game, mix, means)
        boot.append(_regret(game, mix, dev))
    lo_, hi_ = np.quantile(np.concatenate(boot), [alpha / 2, 1 - alpha / 2])
    return regret(game, mix), float(lo_), float(hi_)
