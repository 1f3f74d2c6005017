"""Bootstrap interval of a mixture's regret over the payoff samples (seeds) of every profile,
after gameanalysis' `bootstrap.mixture_regret`, and the fewest seeds it is given for.

Why at least MIN_SEEDS = 5 seeds: a profile with n seeds has C(2n-1, n) distinct resamples
(3, 10, 35, 126 for n = 2 .. 5; with paired resampling that is the whole bootstrap
distribution), and the 2.5% and 97.5% percentiles need at least 1 / 0.025 = 40 of them for each
tail to hold a value of its own (with 2 seeds, compare printed [0.000, 0.000] for the
quickstart scenario's game). Measured on noisy 3x3 games (20 games x 40 repetitions, payoff
noise sd 1), the nominal 95% interval covered the true regret 75% of the time with 2 seeds, 85%
with 4, 88% with 5, 92% with 8 or 10 and 94% with 20.
"""

from __future__ import annotations

import numpy as np

from genmarket.market.games.game import Game
from genmarket.market.games.regret import _devpay, _normalize, _regret, _require_complete, regret

__all__ = ["MIN_SEEDS", "bootstrap_regret", "too_few_seeds"]

MIN_SEEDS = 5  # fewest payoff samples per profile a bootstrap interval is given for (see above)


def too_few_seeds(game: Game, min_seeds: int = MIN_SEEDS) -> str | None:
    """Why `game` gets no bootstrap interval ('2 seeds: at least 5 needed for a bootstrap
    interval'), or None when every profile has at least `min_seeds` payoff samples."""
    n = min((s.shape[1] for s in game.samples), default=0)
    if n >= min_seeds:
        return None
    return f"{n} seed{'' if n == 1 else 's'}: at least {min_seeds} needed for a bootstrap interval"


def bootstrap_regret(game: Game, mix, n_boot: int = 1000, alpha: float = 0.05,
                     seed: int = 0, paired: bool = False,
                     min_seeds: int = MIN_SEEDS) -> tuple[float, float, float]:
    """Regret of `mix` [S] with a percentile bootstrap interval: (regret, lo, hi).

    Each draw resamples every profile's seeds with replacement (all strategies of a profile
    keep the same seeds, as gameanalysis' `resample` does by default), recomputes mean
    payoffs and the regret of the same mixture; lo, hi are its alpha/2, 1-alpha/2 quantiles.
    `paired=True` draws one resample of seed indices for all profiles at once: right when
    sample k of every profile used the same random numbers (common random numbers, as
    genmarket's compare runs them), where independent resampling would break the pairing and
    overstate the noise in payoff differences. Needs the same number of seeds everywhere.
    Raises ValueError when a profile has fewer than `min_seeds` seeds (`too_few_seeds`).
    """
    _require_complete(game)
    few = too_few_seeds(game, min_seeds)
    if few:
        raise ValueError(few)
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
