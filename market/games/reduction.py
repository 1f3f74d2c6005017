"""Deviation-preserving reduction (Wiedenbeck & Wellman 2012): which full-game profiles a
reduced game needs, and the reduced game built from them."""

from __future__ import annotations

import numpy as np

from genmarket.market.games.game import Game, Roles, _lookup, all_profiles, profile_id


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
