"""Profiles and the `Game` that holds sampled payoffs, with exports to gameanalysis and OpenSpiel.

`all_profiles` and `profile_id` enumerate and name the profiles of a role-symmetric game (see
the package docstring for how counts and mixtures are laid out); `Game` keeps each profile's
payoff samples (one per seed) and builds from a tidy table, a payoff function or a matrix;
`to_gameanalysis_json` and `to_openspiel_hpt` write it in those libraries' formats.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
from scipy.special import gammaln

Roles = dict[str, tuple[list[str], int]]  # role -> (strategies, players), in role order


def _cartesian(blocks: list[np.ndarray]) -> np.ndarray:
    """Every combination of one row per block: blocks [n_i, k_i] -> [prod n_i, sum k_i]."""
    grids = np.meshgrid(*[np.arange(len(b)) for b in blocks], indexing="ij")
    return np.concatenate([b[g.ravel()] for b, g in zip(blocks, grids, strict=True)], axis=1)


def _compositions(n: int, k: int) -> np.ndarray:
    """All ways to put n players on k strategies (stars and bars): [C(n+k-1, k-1), k]."""
    if k == 1:  # no bars to place: everyone plays the one strategy
        return np.array([[n]], int)
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
