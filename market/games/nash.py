"""Role-symmetric equilibria: replicator dynamics, regret matching+, support enumeration,
Newton polishing on a support, and `equilibria`, which runs them all, keeps the ones with low
regret, merges those that are the same up to MERGE_TOL and reports each connected set of them
(a continuum, as degenerate games have) once (`Equilibrium`: mixture, regret, support, points).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import root
from scipy.sparse.csgraph import connected_components

from genmarket.market.games.game import Game, _cartesian
from genmarket.market.games.regret import _devpay, _normalize, _regret, _require_complete, _role_sum

_SUPPORT = 1e-3  # probabilities below this are not counted in an equilibrium's support
REGRET_TOL = 1e-3  # payoff units: a mixture with regret at most this is an equilibrium
MERGE_TOL = 1e-2  # L1 distance (over all roles' probabilities) within which two are the same
SEGMENT_CHECKS = 9  # evenly spaced inner points of a segment that must all be equilibria
SEGMENT_NOISE = 1e-9  # share of the payoff scale a segment's inner regret may exceed its ends'


@dataclass
class Equilibrium:
    """A role-symmetric mixture [S], its regret (payoff units) and support (role -> strategies).

    A continuum (kind "continuum") is a connected set of equilibria: `points` [K, S] are the
    K >= 2 distinct equilibria found on it (pairwise more than the merge tolerance apart),
    `mixture` the one of them with the least regret, `regret` its regret and `support` the
    strategies any point plays. An isolated equilibrium has points = [mixture].
    """

    mixture: np.ndarray
    regret: float
    support: dict[str, list[str]]
    points: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self):
        if self.points is None:
            self.points = self.mixture[None]

    @property
    def kind(self) -> str:
        return "continuum" if len(self.points) > 1 else "point"

    @property
    def low(self) -> np.ndarray:
        """Each strategy's least probability over the points found: [S]."""
        return self.points.min(0)

    @property
    def high(self) -> np.ndarray:
        """Each strategy's largest probability over the points found: [S]."""
        return self.points.max(0)

    def extremes(self) -> np.ndarray:
        """The points found that reach some strategy's least or largest probability: [E, S]
        (a segment's two ends; on a larger set, the points found at each strategy's bounds)."""
        hit = (np.isclose(self.points, self.low) | np.isclose(self.points, self.high))
        ext = self.points[(hit & (self.high - self.low > _SUPPORT)).any(1)]
        return ext if len(ext) else self.points[:1]


def replicator_dynamics(game: Game, start, iters: int = 10_000, tol: float = 1e-10) -> np.ndarray:
    """Discrete-time replicator dynamics x_s <- x_s (dev_s - min_r + slack), renormalised per role.

    start [..., S] (a batch runs at once). min_r is the role's lowest payoff in the game, so
    fitness stays positive. Stops when no entry moves more than `tol`. Returns mixtures [..., S];
    in games such as rock-paper-scissors it cycles and what it returns is not an equilibrium.
    """
    _require_complete(game)
    x = _normalize(game, start)
    pays = game.payoffs
    low = np.fmin.reduceat(np.nanmin(pays, 0), game.starts)[game.role_index]
    slack = 1e-3 * max(np.nanmax(pays) - np.nanmin(pays), 1e-9)
    for _ in range(iters):
        new = _normalize(game, x * (_devpay(game, x) - low + slack))
        if np.abs(new - x).max() < tol:
            return new
        x = new
    return x


def regret_matching(game: Game, start, iters: int = 10_000) -> np.ndarray:
    """Regret matching+ in self-play (Tammelin 2014), returning the linearly weighted average.

    Each role keeps cumulative regrets R_s <- max(R_s + dev_s(x) - E_r(x), 0) against the
    current population mixture x and plays x proportional to R (keeping x when a role has no
    positive regret). The average converges to an equilibrium in zero-sum-like games
    (rock-paper-scissors, matching pennies); elsewhere check the result's regret.
    start [..., S] (batched); returns mixtures [..., S].
    """
    _require_complete(game)
    x = _normalize(game, start)
    cum, avg = np.zeros_like(x), np.zeros_like(x)
    for k in range(1, iters + 1):
        dev = _devpay(game, x)
        cum = np.maximum(cum + dev - _role_sum(game, x * dev)[..., game.role_index], 0.0)
        avg += k * x
        tot = _role_sum(game, cum)[..., game.role_index]
        x = np.where(tot > 0, cum / np.where(tot > 0, tot, 1.0), x)
    return _normalize(game, avg)


def support_enumeration(game: Game, tol: float = 1e-8) -> np.ndarray:
    """All role-symmetric equilibria with a nondegenerate support, exactly: [K, S].

    Only for games with two players in all (one role of 2 players: symmetric equilibria of a
    symmetric game; or two roles of 1 player: a bimatrix game), where deviation payoffs are
    linear in the opponent's mixture, dev = A x. For every support (one non-empty subset per
    role; in a bimatrix game only supports of equal size, as in Nash's nondegenerate case)
    it solves indifference on the support + x = 0 off it + sum x = 1 per role, and keeps
    solutions with x >= 0 and regret <= tol * (1 + payoff range). In degenerate games it may
    miss equilibria (a continuum gives its least-norm solution; unequal supports are skipped).
    """
    _require_complete(game)
    if sum(game.players) != 2:
        raise ValueError(f"support enumeration needs 2 players in all, this game has {game.players}")
    S, R, ri = game.num_strategies, len(game.roles), game.role_index
    probe = np.tile(_normalize(game, np.ones(S)), (S, 1))  # row t: e_t in role(t), uniform elsewhere
    probe[(ri[:, None] == ri[None, :])] = np.eye(S)[(ri[:, None] == ri[None, :])]
    opp = ri if R == 1 else 1 - ri
    A = np.where(opp[:, None] == ri[None, :], _devpay(game, probe).T, 0.0)  # A[s, t]
    E = np.eye(R)[ri]  # [S, R]
    masks = _cartesian([((np.arange(1, 2**k)[:, None] >> np.arange(k)) & 1).astype(bool)
                        for k in game.sizes])  # [C, S]
    if R == 2:
        masks = masks[_role_sum(game, masks.astype(int)) @ [1, -1] == 0]
    on = np.concatenate([A, -E], 1)
    off = np.concatenate([np.eye(S), np.zeros((S, R))], 1)
    bottom = np.concatenate([E.T, np.zeros((R, R))], 1)
    rhs = np.concatenate([np.zeros(S), np.ones(R)])
    scale = tol * (1 + np.nanmax(game.payoffs) - np.nanmin(game.payoffs))
    M = np.concatenate([np.where(masks[:, :, None], on, off), np.broadcast_to(bottom, (len(masks), R, S + R))], 1)
    try:
        z = np.linalg.solve(M, np.broadcast_to(rhs, (len(M), S + R))[..., None])[..., 0]
    except np.linalg.LinAlgError:  # some support is singular: least-norm solutions instead
        z = np.einsum("cij,j->ci", np.linalg.pinv(M), rhs)
    ok = (np.abs(np.einsum("cij,cj->ci", M, z) - rhs).max(1) < scale) & (z[:, :S] > -scale).all(1)
    x = _normalize(game, np.clip(z[ok, :S], 0, None))
    return x[_regret(game, x, _devpay(game, x)) <= scale]


def _pure_mixtures(game: Game) -> np.ndarray:
    """Mixtures where each role plays one strategy: [prod |S_r|, S]."""
    return _cartesian([np.eye(k) for k in game.sizes])


def _polish(game: Game, X: np.ndarray) -> np.ndarray:
    """Newton-polish approximate equilibria X [K, S]: on each one's support (entries > 1e-3)
    solve 'all supported strategies of a role earn the same, shares sum to 1'. Rows whose
    solve fails or leaves the simplex come back trimmed but otherwise unchanged."""
    out = _normalize(game, np.where(X < _SUPPORT, 0.0, X))
    for row in out:
        idx = np.flatnonzero(row)
        r = game.role_index[idx]
        lead = idx[np.r_[True, r[1:] != r[:-1]]][np.searchsorted(np.unique(r), r)]  # first of role
        rest = idx != lead

        def gaps(z, idx=idx, lead=lead, rest=rest):
            y = np.zeros(game.num_strategies)
            y[idx] = z
            dev = _devpay(game, y)
            return np.concatenate([(dev[idx] - dev[lead])[rest], _role_sum(game, y) - 1])

        sol = root(gaps, row[idx])
        if sol.success and (sol.x >= 0).all():
            row[idx] = sol.x
    return out


def _segments_hold(game: Game, X: np.ndarray, ends: np.ndarray, checks: int = SEGMENT_CHECKS
                   ) -> np.ndarray:
    """[K, K] bool: the segment between X[i] and X[j] is made of equilibria as good as its ends,
    as far as `checks` evenly spaced inner points can tell: each has regret at most the larger
    of the ends' regrets `ends` [K], up to float noise (SEGMENT_NOISE of the payoff scale). Two
    strict equilibria with a mixed one between them (their interior has a small positive
    regret, below REGRET_TOL but above their ends') are not one continuum; two strategies that
    pay exactly the same are."""
    K = len(X)
    i, j = np.triu_indices(K, 1)
    ok = np.zeros((K, K), bool)
    t = np.linspace(0, 1, checks + 2)[1:-1, None, None]  # [C, 1, 1]
    pays = game.payoffs
    scale = float(np.nanmax(np.abs(pays))) if np.isfinite(pays).any() else 1.0
    noise = SEGMENT_NOISE * (1.0 + scale)
    chunk = max(1, 200_000 // (checks * max(game.num_strategies, 1)))
    for a in range(0, len(i), chunk):
        ii, jj = i[a:a + chunk], j[a:a + chunk]
        mid = (1 - t) * X[ii] + t * X[jj]  # [C, pairs, S]
        bound = np.maximum(ends[ii], ends[jj]) + noise  # [pairs]
        ok[ii, jj] = (_regret(game, mid, _devpay(game, mid)) <= bound).all(0)
    return ok | ok.T


def equilibria(game: Game, starts: int = 50, seed: int = 0, tol: float = REGRET_TOL,
               iters: int = 3_000, merge_tol: float = MERGE_TOL) -> list[Equilibrium]:
    """Role-symmetric equilibria with regret <= tol (payoff units), best first.

    Candidates: every pure mixture; replicator dynamics and regret matching+ (`iters` steps)
    from `starts` random mixtures plus the uniform one, each also Newton-polished on its
    support; and support enumeration where the game has 2 players in all. Those with regret
    <= tol, taken best first, are merged into an earlier one within `merge_tol` L1 distance
    (summed over roles): the same equilibrium. Then two of what is left belong together when
    the segment between them is made of equilibria as good as its ends (SEGMENT_CHECKS inner
    points, none with more regret than the worse end, up to float noise): each connected group of two or more is one continuum (a degenerate game,
    e.g. two strategies that pay the same, has whole segments of equilibria, which the
    searches hit at many points), the others are isolated equilibria. Pure profiles that are
    not a mixture (players of one role on different strategies) are covered by
    `pure_regrets`, not here.
    """
    _require_complete(game)
    rng = np.random.default_rng(seed)
    x0 = np.concatenate([np.ones((1, game.num_strategies)),
                         rng.exponential(size=(starts, game.num_strategies))])
    x0 = _normalize(game, x0)
    found = _normalize(game, np.unique(np.concatenate([replicator_dynamics(game, x0, iters),
                                                       regret_matching(game, x0, iters)]).round(4), axis=0))
    cands = [_pure_mixtures(game), found, _polish(game, found)]
    if sum(game.players) == 2:
        cands.append(support_enumeration(game))
    X = _normalize(game, np.concatenate(cands))
    reg = _regret(game, X, _devpay(game, X))
    order = np.argsort(reg, kind="stable")
    kept: list[int] = []
    for i in order[reg[order] <= tol]:
        if all(np.abs(X[i] - X[j]).sum() > merge_tol for j in kept):
            kept.append(i)
    if not kept:
        return []
    Xk, rk = X[kept], reg[kept]
    _, comp = connected_components(_segments_hold(game, Xk, rk), directed=False)
    labels = [st for ss in game.strategies for st in ss]
    out = []
    for c in dict.fromkeys(comp):  # components in the order of their best point
        members = np.flatnonzero(comp == c)  # best first, as kept is
        best = members[0]
        played = Xk[members].max(0)
        out.append(Equilibrium(
            Xk[best], float(rk[best]),
            {r: [labels[k] for k in range(sl.start, sl.stop) if played[k] > _SUPPORT]
             for r, sl in zip(game.roles, game.role_slices, strict=True)},
            Xk[members]))
    return out
