"""The response graph of profitable single-player deviations, and α-Rank on it."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd

from genmarket.market.games.game import Game
from genmarket.market.games.regret import _deviations


def deviation_graph(game: Game) -> nx.DiGraph:
    """Profitable single-player deviations: node = profile id (attributes counts [S],
    payoffs [S]); edge p -> q when one player switching moves p to q and gains (attributes
    gain (payoff units), role, from, to)."""
    g = nx.DiGraph()
    g.add_nodes_from((i, {"counts": c, "payoffs": u}) for i, c, u in zip(game.ids, game.profiles, game.payoffs, strict=True))
    src, dst, s, t, gain = _deviations(game)
    labels = [st for ss in game.strategies for st in ss]
    g.add_edges_from((game.ids[a], game.ids[b], {"gain": float(x), "role": game.roles[game.role_index[f]],
                                                 "from": labels[f], "to": labels[o]})
                     for a, b, f, o, x in zip(src, dst, s, t, gain, strict=True) if b >= 0 and x > 0)
    return g


def _fixation(gain: np.ndarray, alpha: float, m: int) -> np.ndarray:
    """Fermi fixation probability of one mutant in a population of m with fitness gain `gain`:
    (1 - e^{-alpha gain}) / (1 - e^{-m alpha gain}), 1/m at gain 0 (computed without overflow)."""
    y = alpha * np.abs(gain)
    with np.errstate(invalid="ignore", divide="ignore"):
        up = np.expm1(-y) / np.expm1(-m * y)
    return np.where(y == 0, 1.0 / m, np.where(gain > 0, up, np.exp(-(m - 1) * y) * up))


def alpha_rank(game: Game, alpha: float = 10.0, population: int = 50) -> pd.Series:
    """α-Rank (Omidshafiei et al. 2019, Sci. Rep. 9:9937) on the game's response graph.

    Markov chain over the profiles present: from p, a role is picked uniformly, one of its
    players uniformly (so strategy s with probability c_s/N_r) and another strategy t of the
    role uniformly; the switch to q = p - e_s + e_t is adopted with the Fermi fixation
    probability rho(u_t(q) - u_s(p)) of a mutant in a population of `population` with
    selection intensity `alpha`, as in OpenSpiel's multi-population α-Rank (whose states are
    pure profiles with one player per population: the case N_r = 1). Switches to missing
    profiles are never adopted. Returns the stationary distribution over profile ids (sums to 1).
    """
    src, dst, s, _, gain = _deviations(game)
    ok = dst >= 0
    r = game.role_index[s]
    prob = (game.profiles[src, s] / np.array(game.players)[r] / (game.sizes[r] - 1)
            / len(game.roles) * _fixation(gain, alpha, population))
    P = len(game.profiles)
    T = np.zeros((P, P))
    np.add.at(T, (src[ok], dst[ok]), prob[ok])
    T[np.diag_indices(P)] = 1 - T.sum(1)
    A = T.T - np.eye(P)
    A[-1] = 1.0
    pi = np.linalg.lstsq(A, np.eye(P)[-1], rcond=None)[0].clip(0)
    return pd.Series(pi / pi.sum(), index=pd.Index(game.ids, name="profile"), name="alpha_rank")
