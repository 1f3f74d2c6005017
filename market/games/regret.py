"""Mixtures, deviation payoffs and regret: of a mixture (`regret`) and of each pure profile.

A mixture is one probability vector per role, concatenated [S]; deviation payoffs are exact
expectations over the multinomial distribution of the opponents' profile. `_deviations` lists
every single-player switch between profiles, which dominance and the response graph also use.
"""

from __future__ import annotations

import numpy as np

from genmarket.market.games.game import Game, _lookup


def _role_sum(game: Game, x: np.ndarray) -> np.ndarray:
    """Sum over each role's strategies: [..., S] -> [..., R]."""
    return np.add.reduceat(x, game.starts, axis=-1)


def _normalize(game: Game, x) -> np.ndarray:
    x = np.maximum(np.asarray(x, float), 0.0)
    return x / _role_sum(game, x)[..., game.role_index]


def _require_complete(game: Game):
    if not game.is_complete():
        miss = game._missing_ids
        raise ValueError(f"game is incomplete: {len(miss)} profiles missing, e.g. {miss[:5]}")


def _devpay(game: Game, mix: np.ndarray, pays: np.ndarray | None = None) -> np.ndarray:
    """Deviation payoffs [..., S] against mixtures mix [..., S], from mean payoffs pays
    [..., P, S] (default: the game's). Exact: sums over the opponents' profiles."""
    pays = game.payoffs if pays is None else pays
    on = mix > 0
    logx = np.log(np.where(on, mix, 1.0))
    out = []
    for (opp, logc, idx), sl in zip(game._opponents, game.role_slices, strict=True):
        logp = np.where((~on).astype(float) @ opp.T > 0, -np.inf, logc + logx @ opp.T)  # [..., M]
        out.append(np.einsum("...m,...ms->...s", np.exp(logp), pays[..., idx, np.arange(sl.start, sl.stop)]))
    return np.concatenate(out, -1)


def mixture_deviation_payoffs(game: Game, mix) -> np.ndarray:
    """Expected payoff of each pure strategy when all other players play `mix`: [..., S].

    mix [..., S]: one probability vector per role, concatenated (batches allowed). Exact
    expectation over the multinomial distribution of the opponents' profile, using the
    game's mean payoffs; the game must be complete (ValueError naming missing profiles).
    """
    _require_complete(game)
    return _devpay(game, _normalize(game, mix))


def _regret(game: Game, mix: np.ndarray, dev: np.ndarray) -> np.ndarray:
    gains = dev - _role_sum(game, mix * dev)[..., game.role_index]
    return gains.max(-1)


def regret(game: Game, mix):
    """Largest gain of one player switching from `mix` [..., S] to a pure strategy of its role
    (over roles and strategies): float, or [...] for a batch of mixtures."""
    mix = _normalize(game, mix)
    out = _regret(game, mix, mixture_deviation_payoffs(game, mix))
    return float(out) if out.ndim == 0 else out


def _deviations(game: Game):
    """Every single-player switch s -> t (same role) out of every profile where s is played.

    Returns src [K], dst [K] (-1 where the profile moved to is missing), s [K], t [K] and
    gain [K] = u_t(dst) - u_s(src) (NaN where dst is missing).
    """
    S = game.num_strategies
    a, b = np.nonzero((game.role_index[:, None] == game.role_index[None, :]) & ~np.eye(S, dtype=bool))
    src, k = np.nonzero(game.profiles[:, a] > 0)
    s, t = a[k], b[k]
    eye = np.eye(S, dtype=int)
    dst = _lookup(game.profiles, game.profiles[src] - eye[s] + eye[t])
    gain = np.where(dst >= 0, game.payoffs[dst, t] - game.payoffs[src, s], np.nan)
    return src, dst, s, t, gain


PURE_REGRET_NOTE = ("a pure profile's regret is the best gain of one player switching to "
                    "another strategy; negative: every unilateral deviation loses at least |regret| "
                    "(a strict equilibrium); 0: some deviation is as good (a weak equilibrium); "
                    "positive: not an equilibrium. A mixture's regret also counts the strategies it "
                    "plays, so it is never below 0.")


def pure_regrets(game: Game) -> np.ndarray:
    """Best gain of any single player switching strategy, per profile: [P].

    Signed: only switches to another strategy count, so it is negative where every unilateral
    deviation loses (by at least -regret: a strict equilibrium), 0 where the best one breaks
    even, positive where one pays (PURE_REGRET_NOTE). A mixture's `regret` instead also counts
    switching to a strategy it already plays (gain 0) and is never below 0. NaN where a profile
    it could move to is missing; 0 where nobody can switch."""
    src, _, _, _, gain = _deviations(game)
    out = np.full(len(game.profiles), -np.inf)
    with np.errstate(invalid="ignore"):  # NaN gains (missing profiles) propagate on purpose
        np.maximum.at(out, src, gain)
    return np.where(np.isneginf(out), 0.0, out)
