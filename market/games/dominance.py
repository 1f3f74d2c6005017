"""Strictly dominated strategies, found from single-player switches (optionally iterated)."""

from __future__ import annotations

import numpy as np

from genmarket.market.games.game import Game
from genmarket.market.games.regret import _deviations, _role_sum


def dominated_strategies(game: Game, iterated: bool = False) -> dict[str, list[str]]:
    """Strategies strictly dominated by another pure strategy of their role.

    s is dominated by t when, for every profile p with s played whose switch target
    q = p - e_s + e_t is present, u_t(q) > u_s(p) (and at least one such pair exists).
    With `iterated`, dominated strategies are removed and the test repeated on what is left.
    """
    out: dict[str, list[str]] = {r: [] for r in game.roles}
    while True:
        S = game.num_strategies
        _, dst, s, t, gain = _deviations(game)
        ok = dst >= 0
        worst = np.full(S * S, np.inf)
        np.minimum.at(worst, (s * S + t)[ok], gain[ok])
        seen = np.bincount((s * S + t)[ok], minlength=S * S) > 0
        dom = ((worst > 0) & seen).reshape(S, S).any(1)
        dom &= _role_sum(game, ~dom)[game.role_index] > 0  # never empty a role
        labels = [(r, st) for r, ss in zip(game.roles, game.strategies, strict=True) for st in ss]
        for i in np.flatnonzero(dom):
            out[labels[i][0]].append(labels[i][1])
        if not (iterated and dom.any()):
            return out
        game = game.restrict(~dom)
