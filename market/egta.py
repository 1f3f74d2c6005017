"""Empirical role-symmetric games: payoff tables, regret, equilibria, bootstrap, α-Rank, DPR.

A profile says, for each role r (advertiser group) with N_r players and strategies S_r, how many
players play each strategy. Strategies of all roles are concatenated in role order into one axis
of size S, so a profile is an int vector [S] and a role-symmetric mixture a float vector [S]
(one probability vector per role). Payoff samples (one per seed) are kept per profile as
gameanalysis' SampleGame keeps them, so regret comes with a bootstrap interval
(`bootstrap_regret`, after gameanalysis' `bootstrap.mixture_regret`). Every payoff, regret and
gain is in the payoff units of the game, whatever the compare command measured.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from functools import cached_property

import networkx as nx
import numpy as np
import pandas as pd
from scipy.optimize import root
from scipy.special import gammaln

Roles = dict[str, tuple[list[str], int]]  # role -> (strategies, players), in role order
_SUPPORT = 1e-3  # probabilities below this are not counted in an equilibrium's support


def _cartesian(blocks: list[np.ndarray]) -> np.ndarray:
    """Every combination of one row per block: blocks [n_i, k_i] -> [prod n_i, sum k_i]."""
    grids = np.meshgrid(*[np.arange(len(b)) for b in blocks], indexing="ij")
    return np.concatenate([b[g.ravel()] for b, g in zip(blocks, grids, strict=True)], axis=1)


def _compositions(n: int, k: int) -> np.ndarray:
    """All ways to put n players on k strategies (stars and bars): [C(n+k-1, k-1), k]."""
    bars = np.array(list(itertools.combinations(range(n + k - 1), k - 1)), int).reshape(-1, k - 1)
    ends = np.full((len(bars), 1), -1), np.full((len(bars), 1), n + k - 1)
    return (np.diff(np.concatenate([ends[0], bars, ends[1]], axis=1), axis=1) - 1)[::-1]


def all_profiles(roles: Roles) -> np.ndarray:
    """Every profile of the role-symmetric game: counts [P, S], P = prod_r C(N_r+|S_r|-1, N_r)."""
    return _cartesian([_compositions(n, len(s)) for s, n in roles.values()])


def profile_id(roles: Roles, counts) -> str:
    """Stable id of a profile, e.g. 'bidders: shade=1 truthful=2; sellers: fixed=1'.

    Strategies with count 0 are left out; roles and strategies keep the order of `roles`.
    """
    counts, parts, i = np.asarray(counts), [], 0
    for role, (strats, _) in roles.items():
        c = counts[i : i + len(strats)]
        i += len(strats)
        parts.append(f"{role}: " + " ".join(f"{s}={int(n)}" for s, n in zip(strats, c, strict=True) if n > 0))
    return "; ".join(parts)


def _lookup(table: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Row of `table` [P, S] equal to each query [Q, S]: [Q] int, -1 where absent."""
    if len(queries) == 0:
        return np.zeros(0, int)
    _, inv = np.unique(np.concatenate([table, queries]), axis=0, return_inverse=True)
    inv = inv.ravel()
    pos = np.full(inv.max() + 1, -1)
    pos[inv[: len(table)]] = np.arange(len(table))
    return pos[inv[len(table) :]]


@dataclass(eq=False)
class Game:
    """Sampled payoffs of a role-symmetric game (treated as immutable once built).

    profiles [P, S] int: players per strategy, roles' strategies concatenated in role order.
    samples: P arrays [S, n_p] of payoff samples (one column per seed; NaN where count is 0).
    ids: P profile ids; seeds: P int arrays [n_p] (default 0..n_p-1).
    """

    roles: list[str]
    strategies: list[list[str]]
    players: list[int]
    profiles: np.ndarray
    samples: list[np.ndarray]
    ids: list[str]
    seeds: list[np.ndarray] | None = field(default=None)

    def __post_init__(self):
        S = sum(len(s) for s in self.strategies)
        self.profiles = np.asarray(self.profiles, int).reshape(-1, S)
        self.samples = [np.asarray(s, float).reshape(S, -1) for s in self.samples]
        self.seeds = [np.arange(s.shape[1]) for s in self.samples] if self.seeds is None else self.seeds
        if not len(self.samples) == len(self.ids) == len(self.profiles):
            raise ValueError("profiles, samples and ids must have one entry per profile")
        self.num_strategies = S
        self.sizes = np.array([len(s) for s in self.strategies])  # |S_r|: [R]
        self.starts = np.concatenate([[0], np.cumsum(self.sizes)[:-1]])  # first strategy of each role: [R]
        self.role_index = np.repeat(np.arange(len(self.roles)), self.sizes)  # role of each strategy: [S]
        self.role_slices = [slice(a, a + k) for a, k in zip(self.starts, self.sizes, strict=True)]

    @property
    def role_dict(self) -> Roles:
        return {r: (list(s), n) for r, s, n in zip(self.roles, self.strategies, self.players, strict=True)}

    @cached_property
    def _padded(self) -> tuple[np.ndarray, np.ndarray]:
        """Samples NaN-padded to [P, S, n_max] and the number of samples n_p [P]."""
        n = np.array([s.shape[1] for s in self.samples], int)
        out = np.full((len(n), self.num_strategies, max(n, default=0)), np.nan)
        if len(n):
            p = np.repeat(np.arange(len(n)), n)
            j = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
            out[p, :, j] = np.concatenate(self.samples, axis=1).T
        return out, n

    @cached_property
    def payoffs(self) -> np.ndarray:
        """Mean payoff of one player of each strategy: [P, S], NaN where the count is 0."""
        pad, n = self._padded
        return np.where(self.profiles > 0, np.nansum(pad, -1) / np.maximum(n, 1)[:, None], np.nan)

    def missing_profiles(self) -> np.ndarray:
        """Profiles of the role-symmetric game with no data: [M, S]."""
        full = all_profiles(self.role_dict)
        return full[_lookup(self.profiles, full) < 0]

    @cached_property
    def _missing_ids(self) -> list[str]:
        return [profile_id(self.role_dict, m) for m in self.missing_profiles()]

    def is_complete(self) -> bool:
        """True when every profile of the role-symmetric game has data."""
        return not self._missing_ids

    def restrict(self, keep) -> Game:
        """The game on strategies `keep` [S] bool only (profiles that use no other strategy)."""
        keep = np.asarray(keep, bool)
        rows = np.flatnonzero((self.profiles[:, ~keep] == 0).all(1))
        strats = [[s for s, k in zip(ss, keep[sl], strict=True) if k] for ss, sl in zip(self.strategies, self.role_slices, strict=True)]
        return Game(self.roles, strats, self.players, self.profiles[rows][:, keep],
                    [self.samples[p][keep] for p in rows], [self.ids[p] for p in rows],
                    [self.seeds[p] for p in rows])

    # -- constructors -----------------------------------------------------------------------
    @classmethod
    def from_tidy(cls, df: pd.DataFrame, roles: Roles) -> Game:
        """Game from rows (profile, role, strategy, count, seed, payoff), one per count > 0.

        Profile ids and their order are taken from `df`. Raises ValueError on unknown roles or
        strategies, counts that do not add up to N_r, inconsistent counts within a profile,
        duplicate rows, or a (profile, seed) lacking the payoff of a strategy it plays.
        """
        df = df[df["count"] > 0]
        names = pd.MultiIndex.from_tuples([(r, s) for r, (ss, _) in roles.items() for s in ss])
        col = names.get_indexer(pd.MultiIndex.from_arrays([df["role"], df["strategy"]]))
        if (col < 0).any():
            bad = df.loc[col < 0, ["role", "strategy"]].drop_duplicates().to_numpy().tolist()
            raise ValueError(f"unknown (role, strategy) pairs: {bad}")
        d = df.assign(col=col)
        if d.duplicated(["profile", "seed", "col"]).any():
            raise ValueError("duplicate rows for one (profile, seed, role, strategy)")
        if (d.groupby(["profile", "col"])["count"].nunique() > 1).any():
            raise ValueError("a profile's count of a strategy differs between seeds")
        ids = list(pd.unique(d["profile"]))
        S = len(names)
        counts = (d.groupby(["profile", "col"])["count"].first().unstack(fill_value=0)
                  .reindex(index=ids, columns=range(S), fill_value=0).to_numpy(int))
        sizes = [len(s) for s, _ in roles.values()]
        sums = np.add.reduceat(counts, np.cumsum([0, *sizes[:-1]]), axis=1)
        bad = np.flatnonzero((sums != [n for _, n in roles.values()]).any(1))
        if len(bad):
            raise ValueError(f"counts do not add up to the players of each role in {[ids[i] for i in bad[:5]]}")
        if len(np.unique(counts, axis=0)) < len(ids):
            raise ValueError("two profile ids have the same counts")
        wide = d.pivot(index=["profile", "seed"], columns="col", values="payoff").reindex(columns=range(S))
        pos = pd.Index(ids).get_indexer(wide.index.get_level_values(0))
        seed = wide.index.get_level_values(1).to_numpy()
        order = np.lexsort((seed, pos))
        pay, pos, seed = wide.to_numpy(float)[order], pos[order], seed[order]
        lacking = np.isnan(pay) & (counts[pos] > 0)
        if lacking.any():
            r = np.flatnonzero(lacking.any(1))[:5]
            raise ValueError(f"missing payoffs for (profile, seed) {[(ids[pos[i]], seed[i]) for i in r]}")
        cut = np.cumsum(np.bincount(pos, minlength=len(ids)))[:-1]
        return cls(list(roles), [list(s) for s, _ in roles.values()], [n for _, n in roles.values()],
                   counts, [a.T for a in np.split(pay, cut)], ids, np.split(seed, cut))

    @classmethod
    def from_payoff_function(cls, roles: Roles, fn) -> Game:
        """Complete game with one sample per profile: fn(counts [S]) -> payoffs [S]."""
        profiles = all_profiles(roles)
        pays = np.array([fn(p) for p in profiles], float).reshape(profiles.shape)
        pays[profiles == 0] = np.nan
        return cls(list(roles), [list(s) for s, _ in roles.values()], [n for _, n in roles.values()],
                   profiles, list(pays[:, :, None]), [profile_id(roles, p) for p in profiles])

    @classmethod
    def from_matrix(cls, A, strategies: list[str] | None = None, role: str = "players") -> Game:
        """Symmetric 2-player game from the row player's payoffs A [k, k] (one role, 2 players)."""
        A = np.asarray(A, float)
        strategies = strategies or [f"s{i}" for i in range(len(A))]
        return cls.from_payoff_function({role: (list(strategies), 2)}, lambda c: A @ c - np.diag(A))

    def to_tidy(self) -> pd.DataFrame:
        """Rows (profile, role, strategy, count, seed, payoff), ordered by profile, seed, strategy."""
        pad, n = self._padded
        use = (self.profiles > 0)[:, :, None] & (np.arange(pad.shape[2]) < n[:, None, None])
        p, s, j = np.nonzero(use)
        order = np.lexsort((s, j, p))
        p, s, j = p[order], s[order], j[order]
        seeds = np.zeros((len(n), pad.shape[2]), int)
        seeds[np.repeat(np.arange(len(n)), n), np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)] = \
            np.concatenate(self.seeds)
        labels = np.array([st for ss in self.strategies for st in ss], object)
        return pd.DataFrame({
            "profile": np.array(self.ids, object)[p], "role": np.array(self.roles, object)[self.role_index[s]],
            "strategy": labels[s], "count": self.profiles[p, s], "seed": seeds[p, j],
            "payoff": pad[p, s, j]})

    # -- deviation weights ------------------------------------------------------------------
    @cached_property
    def _opponents(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per role r, what one r-player faces: every profile O [M, S] of its opponents
        (N_r - 1 others in r, all players of other roles), the log multinomial coefficient
        of each, logc [M], and the game's row of O + e_s for each strategy s of r, idx [M, |S_r|]
        (-1 where missing)."""
        out, S = [], self.num_strategies
        for r, sl in enumerate(self.role_slices):
            n = np.array(self.players) - np.eye(len(self.roles), dtype=int)[r]
            opp = all_profiles({k: (s, int(m)) for (k, (s, _)), m in zip(self.role_dict.items(), n, strict=True)})
            logc = gammaln(n + 1).sum() - gammaln(opp + 1).sum(1)
            idx = _lookup(self.profiles, (opp[:, None, :] + np.eye(S, dtype=int)[sl]).reshape(-1, S))
            out.append((opp, logc, idx.reshape(len(opp), -1)))
        return out


# -- exports ---------------------------------------------------------------------------------
def to_gameanalysis_json(game: Game) -> dict:
    """gameanalysis' sample-game JSON ('samplegame.1', what `SampleGame.to_json` writes):

        {"type": "samplegame.1",
         "roles": [{"name": role, "strategies": [...], "count": N_r}, ...],
         "profiles": [{role: [[strategy, count, [payoff per seed, ...]], ...], ...}, ...]}

    Only strategies with count > 0 are listed. `gameanalysis.gamereader.loadj` reads it back
    (it sorts roles and strategies by name itself); profile ids are not part of that format.
    """
    out = []
    for counts, samp in zip(game.profiles, game.samples, strict=True):
        out.append({role: [[st, int(counts[i]), samp[i].tolist()]
                           for i, st in zip(range(sl.start, sl.stop), strats, strict=True) if counts[i] > 0]
                    for role, strats, sl in zip(game.roles, game.strategies, game.role_slices, strict=True)})
    return {"type": "samplegame.1",
            "roles": [{"name": r, "strategies": list(s), "count": int(n)}
                      for r, s, n in zip(game.roles, game.strategies, game.players, strict=True)],
            "profiles": out}


def to_openspiel_hpt(game: Game) -> pd.DataFrame:
    """OpenSpiel's heuristic payoff table: one row per profile (index = profile id).

    Columns: 'count:<strategy>' for every strategy, then 'payoff:<strategy>' (mean payoff of
    one player of it; 0 where its count is 0, as OpenSpiel stores it). With more than one
    role every column is prefixed '<role>:'. For a one-role game `df.to_numpy()` is the
    [P, 2S] array `open_spiel.python.egt.heuristic_payoff_table.from_heuristic_payoff_table`
    takes; a multi-role table has no single OpenSpiel counterpart.
    """
    pre = [f"{game.roles[r]}:" if len(game.roles) > 1 else "" for r in game.role_index]
    labels = [st for ss in game.strategies for st in ss]
    data = {f"{p}count:{s}": game.profiles[:, i] for i, (p, s) in enumerate(zip(pre, labels, strict=True))}
    pays = np.nan_to_num(game.payoffs)
    data |= {f"{p}payoff:{s}": pays[:, i] for i, (p, s) in enumerate(zip(pre, labels, strict=True))}
    return pd.DataFrame(data, index=pd.Index(game.ids, name="profile"))


# -- mixtures and regret ---------------------------------------------------------------------
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


def pure_regrets(game: Game) -> np.ndarray:
    """Best gain of any single player switching strategy, per profile: [P].

    NaN where a profile it could move to is missing; 0 where nobody can switch."""
    src, _, _, _, gain = _deviations(game)
    out = np.full(len(game.profiles), -np.inf)
    with np.errstate(invalid="ignore"):  # NaN gains (missing profiles) propagate on purpose
        np.maximum.at(out, src, gain)
    return np.where(np.isneginf(out), 0.0, out)


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


# -- equilibrium finders ---------------------------------------------------------------------
@dataclass
class Equilibrium:
    """A role-symmetric mixture [S], its regret (payoff units) and support (role -> strategies)."""

    mixture: np.ndarray
    regret: float
    support: dict[str, list[str]]


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


def equilibria(game: Game, starts: int = 50, seed: int = 0, tol: float = 1e-3,
               iters: int = 3_000) -> list[Equilibrium]:
    """Role-symmetric equilibria with regret <= tol (payoff units), best first.

    Candidates: every pure mixture; replicator dynamics and regret matching+ (`iters` steps)
    from `starts` random mixtures plus the uniform one, each also Newton-polished on its
    support; and support enumeration where the game has 2 players in all. Candidates within
    1e-2 L1 distance of a better one are merged. Pure profiles that are not a mixture
    (players of one role on different strategies) are covered by `pure_regrets`, not here.
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
        if all(np.abs(X[i] - X[j]).sum() > 1e-2 for j in kept):
            kept.append(i)
    labels = [st for ss in game.strategies for st in ss]
    return [Equilibrium(X[i], float(reg[i]),
                        {r: [labels[k] for k in range(sl.start, sl.stop) if X[i, k] > _SUPPORT]
                         for r, sl in zip(game.roles, game.role_slices, strict=True)})
            for i in kept]


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


# -- response graph --------------------------------------------------------------------------
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


# -- deviation-preserving reduction ----------------------------------------------------------
def _dpr_map(roles_full: Roles, reduced: dict[str, int]):
    """Reduced roles, reduced profiles [Pr, S], the full profile behind each (profile,
    deviator) [Pr, S, S] and which deviators are played [Pr, S]."""
    N = np.array([n for _, n in roles_full.values()])
    n = np.array([reduced[r] for r in roles_full])
    multi = len(N) > 1
    bad = [r for r, a, b in zip(roles_full, N, n, strict=True)
           if not 1 <= b <= a or (b == 1 and a > 1) or (b > 1 and (a - 1) % (b - 1))
           or (multi and a % b)]
    if bad:
        raise ValueError(f"DPR needs (N_r-1)/(n_r-1) integral (and N_r/n_r with several roles), "
                         f"n_r >= 2 unless N_r = 1: not so for roles {bad}")
    red_roles = {r: (list(s), int(k)) for (r, (s, _)), k in zip(roles_full.items(), n, strict=True)}
    red = all_profiles(red_roles)
    ri = np.repeat(np.arange(len(N)), [len(s) for s, _ in roles_full.values()])
    own = np.where(n > 1, (N - 1) // np.maximum(n - 1, 1), 0)[ri]
    other = (N // n)[ri]
    scale = np.where(ri[:, None] == ri[None, :], own[None, :], other[None, :])  # [s, t]
    eye = np.eye(len(ri), dtype=int)
    return red_roles, red, scale[None] * (red[:, None, :] - eye[None]) + eye[None], red > 0


def dpr_profiles(roles_full: Roles, reduced: dict[str, int]) -> dict[str, np.ndarray]:
    """Full-game profiles that deviation-preserving reduction (Wiedenbeck & Wellman 2012)
    needs: reduced profile id -> full profiles [k, S] (one per strategy the reduced profile
    plays). The union of all values is what the compare command must simulate."""
    red_roles, red, full, valid = _dpr_map(roles_full, reduced)
    return {profile_id(red_roles, p): np.unique(f[v], axis=0) for p, f, v in zip(red, full, valid, strict=True)}


def dpr_game(full_game: Game, reduced_players: dict[str, int]) -> Game:
    """The DPR game with n_r players per role (Wiedenbeck & Wellman 2012).

    The payoff of s in reduced profile p is the full game's payoff of s in the profile where
    one player plays s and the other n_r-1 players of its role count (N_r-1)/(n_r-1) each,
    players of other roles N_r'/n_r' each (both must be integers: ValueError otherwise).
    Samples are truncated to the fewest seeds among the full profiles behind a reduced one
    (the reduced samples are numbered 0..n-1); reduced profiles whose full profiles are not
    all present are left out.
    """
    red_roles, red, full, valid = _dpr_map(full_game.role_dict, reduced_players)
    p, s = np.nonzero(valid)
    idx = _lookup(full_game.profiles, full[p, s])
    keep = np.bincount(p[idx < 0], minlength=len(red)) == 0
    pad, n = full_game._padded
    nmin = np.full(len(red), np.iinfo(int).max)
    np.minimum.at(nmin, p, np.where(idx >= 0, n[idx], 0))
    out = np.full((len(red), full_game.num_strategies, pad.shape[2]), np.nan)
    out[p, s] = np.where((idx >= 0)[:, None], pad[idx, s], np.nan)
    rows = np.flatnonzero(keep)
    return Game(list(red_roles), [list(st) for st, _ in red_roles.values()],
                [k for _, k in red_roles.values()], red[rows], [out[i, :, : nmin[i]] for i in rows],
                [profile_id(red_roles, red[i]) for i in rows])
